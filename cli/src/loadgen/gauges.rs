//! `loadgen --gauge-series N`: a benchmark shape, not a simulation. N gauge series (10 services,
//! 100 series per metric), one point each per interval, as OTLP protobuf; optionally the same samples
//! as Prometheus text to a VictoriaMetrics import endpoint, so both hold the same series at once.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::time::{Instant, MissedTickBehavior};

use super::otlp::{scope, string_attribute, unix_nanos};
use super::sender::{OtlpSender, Signal};
use super::stats::{Delivered, Stats};
use super::{LoadgenArgs, LoadgenSummary};

/// Series per service and per metric: 10k series are 10 services × 10 metrics × 100 series.
const SERIES_PER_SERVICE: u64 = 1000;
const SERIES_PER_METRIC: u64 = 100;

/// Series `i`'s (service, metric, label value); with a generation (`--new-series-each-interval`:
/// the interval's number) the label is new for every generation.
fn identity(i: u64, generation: Option<u64>) -> (String, String, String) {
    let label = match generation {
        Some(g) => format!("{g}-{}", i % SERIES_PER_METRIC),
        None => (i % SERIES_PER_METRIC).to_string(),
    };
    (
        format!("bench-{}", i / SERIES_PER_SERVICE),
        format!(
            "bench.gauge.{}",
            (i % SERIES_PER_SERVICE) / SERIES_PER_METRIC
        ),
        label,
    )
}

fn value(i: u64, tick: u64) -> f64 {
    ((i * 31 + tick * 7) % 1000) as f64 / 4.0
}

/// One OTLP request per service: its series for this tick.
fn otlp_requests(
    series: u64,
    tick: u64,
    generation: Option<u64>,
    time_unix_nano: u64,
) -> Vec<(u64, ExportMetricsServiceRequest)> {
    let services = series.div_ceil(SERIES_PER_SERVICE);
    (0..services)
        .map(|s| {
            let first = s * SERIES_PER_SERVICE;
            let last = (first + SERIES_PER_SERVICE).min(series);
            let mut metrics: Vec<Metric> = Vec::new();
            for i in first..last {
                let (_, name, label) = identity(i, generation);
                if metrics.last().map(|m| m.name != name).unwrap_or(true) {
                    metrics.push(Metric {
                        name,
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: Vec::new(),
                        })),
                        ..Default::default()
                    });
                }
                let point = NumberDataPoint {
                    attributes: vec![string_attribute("series", &label)],
                    time_unix_nano,
                    value: Some(number_data_point::Value::AsDouble(value(i, tick))),
                    ..Default::default()
                };
                if let Some(Metric {
                    data: Some(metric::Data::Gauge(gauge)),
                    ..
                }) = metrics.last_mut()
                {
                    gauge.data_points.push(point);
                }
            }
            let resource = Resource {
                attributes: vec![string_attribute("service.name", &format!("bench-{s}"))],
                ..Default::default()
            };
            let request = ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(resource),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(scope()),
                        metrics,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            (last - first, request)
        })
        .collect()
}

/// The same samples in Prometheus text format (`.` in names becomes `_`).
fn prometheus_text(series: u64, tick: u64, generation: Option<u64>, time_unix_ms: u64) -> String {
    let mut out = String::with_capacity(series as usize * 64);
    for i in 0..series {
        let (service, metric, label) = identity(i, generation);
        let _ = writeln!(
            out,
            "{}{{service=\"{service}\",series=\"{label}\"}} {} {time_unix_ms}",
            metric.replace('.', "_"),
            value(i, tick)
        );
    }
    out
}

/// Sends the gauge shape until `--duration` or Ctrl-C.
pub async fn run(
    args: LoadgenArgs,
    series: u64,
    sender: Arc<OtlpSender>,
) -> anyhow::Result<LoadgenSummary> {
    let import: Option<Uri> = match &args.prometheus_import {
        Some(base) => Some(
            format!("{}/api/v1/import/prometheus", base.trim_end_matches('/'))
                .parse()
                .map_err(|e| anyhow::anyhow!("invalid --prometheus-import {base:?}: {e}"))?,
        ),
        None => None,
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut tick = 0u64;
    let churn = args.new_series_each_interval;
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            _ = ticker.tick() => {
                let now = SystemTime::now();
                let generation = churn.then_some(tick);
                for (points, request) in otlp_requests(series, tick, generation, unix_nanos(now)) {
                    let body = sender.encode(&request)?;
                    let bytes = body.len() as u64;
                    match sender.send(Signal::Metrics, body).await {
                        Ok(delivery) => stats.record_ok(Delivered {
                            points,
                            spans: 0,
                            bytes,
                            retries: u64::from(delivery.attempts.saturating_sub(1)),
                        }),
                        Err(error) => stats.record_failure(error.to_string()),
                    }
                }
                if let Some(uri) = &import {
                    let text = prometheus_text(series, tick, generation, unix_nanos(now) / 1_000_000);
                    let request = Request::builder()
                        .method(Method::POST)
                        .uri(uri.clone())
                        .body(Full::new(Bytes::from(text)))?;
                    match client.request(request).await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.into_body().collect().await;
                        }
                        Ok(response) => stats.record_failure(format!("prometheus import: {}", response.status())),
                        Err(error) => stats.record_failure(format!("prometheus import: {error}")),
                    }
                }
                tick += 1;
            }
        }
    }
    let summary = stats.snapshot(started.elapsed());
    if !args.quiet {
        eprintln!("{summary}");
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_sent_once_per_tick_with_distinct_identities() {
        let requests = otlp_requests(2_500, 0, None, 1);
        let points: u64 = requests.iter().map(|(n, _)| n).sum();
        assert_eq!(points, 2_500);
        assert_eq!(requests.len(), 3);
        let text = prometheus_text(2_500, 0, None, 1);
        let lines: std::collections::HashSet<&str> = text
            .lines()
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(lines.len(), 2_500);
    }

    #[test]
    fn with_generations_every_interval_sends_series_never_sent_before() {
        let names = |generation| -> std::collections::HashSet<String> {
            prometheus_text(1_000, 0, generation, 1)
                .lines()
                .map(|l| l.split(' ').next().unwrap_or("").to_string())
                .collect()
        };
        let (first, second) = (names(Some(0)), names(Some(1)));
        assert_eq!((first.len(), second.len()), (1_000, 1_000));
        assert!(first.is_disjoint(&second));
        assert_eq!(names(None).len(), 1_000);
    }
}
