//! Local mode's own metrics: `GET /metrics` in the Prometheus/OpenMetrics text format
//! (`prometheus-client`, the Prometheus project's Rust client).
//!
//! Everything is registered here, in one place:
//! - **Events** (batch sizes and latencies, store writes, alert evaluations, scrapes, probes, messages
//!   pushed): process-wide counters and histograms in [`events`], incremented where the event
//!   happens with one call.
//! - **Running totals that already exist** (the receiver's counters, the aggregator's, the live
//!   connections of `/api/pipeline`) and gauges (stream lag): read at scrape time by a
//!   [`Collector`], so the hot paths keep their single atomic add and the two views never disagree.
//!
//! Names follow Prometheus conventions: `flowscope_` prefix, `_total` counters, base units
//! (`_seconds`, `_bytes`), labels for dimensions (`signal`, `outcome`, `reason`, `shard`).

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use flowscope_core::embedded::EmbeddedStream;
use flowscope_core::ingest::Ingest;
use flowscope_core::live::LiveHub;
use flowscope_core::ports::{
    ApplyOutcome, MetricStore, StoreError, StoreHooks, StreamSink, Wrapped,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::connections::LocalConnections;
use super::stats::AggregatorStats;

/// The `Content-Type` of `GET /metrics` for a client that accepts OpenMetrics (Prometheus asks for it).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` for everyone else (curl, `promtool check metrics`): Prometheus text 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format an `Accept` header asks for: OpenMetrics only when it names it (as
/// Prometheus does), else the classic text format, as the Go client negotiates.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics text as Prometheus text 0.0.4: a counter family `x` (samples `x_total`) is
/// described as `x_total`, and the `# UNIT` / `# EOF` lines, which the classic format does not
/// have, are left out. Everything else is the same in both formats.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# HELP ") {
            if let Some(pending) = help.replace(line) {
                out.push_str(pending);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let counter = kind == "counter";
            if let Some(pending) = help.take() {
                match pending
                    .strip_prefix("# HELP ")
                    .and_then(|h| h.split_once(' '))
                {
                    Some((help_name, text)) if counter && help_name == name => {
                        out.push_str(&format!("# HELP {name}_total {text}\n"));
                    }
                    _ => {
                        out.push_str(pending);
                        out.push('\n');
                    }
                }
            }
            if counter {
                out.push_str(&format!("# TYPE {name}_total counter\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(pending) = help.take() {
            out.push_str(pending);
            out.push('\n');
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(pending) = help {
        out.push_str(pending);
        out.push('\n');
    }
    out
}

/// A label set of fixed keys and values (`outcome="applied"`).
type Labels = Vec<(&'static str, String)>;

/// Process-wide event metrics (one local mode per process in production; tests that start several
/// see them summed).
pub struct Events {
    pub batch_records: Histogram,
    pub batch_seconds: Histogram,
    pub store_write_seconds: Histogram,
    pub store_bucket_writes: Family<Labels, Counter>,
    pub store_sync_seconds: Histogram,
    pub alert_evaluations: Family<Labels, Counter>,
    pub alert_evaluation_seconds: Histogram,
    pub alert_transitions: Counter,
    pub scrapes: Family<Labels, Counter>,
    pub scrape_seconds: Histogram,
    pub probes: Family<Labels, Counter>,
    pub ws_messages_sent: Counter,
    pub ws_bytes_sent: Counter,
    pub flushes: Counter,
}

/// Latency buckets from 0.5 ms to ~16 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

static EVENTS: LazyLock<Events> = LazyLock::new(|| Events {
    // 1 … 16384 records (the batch bound is 10,000).
    batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
    batch_seconds: latency_buckets(),
    store_write_seconds: latency_buckets(),
    store_bucket_writes: Family::default(),
    store_sync_seconds: latency_buckets(),
    alert_evaluations: Family::default(),
    alert_evaluation_seconds: latency_buckets(),
    alert_transitions: Counter::default(),
    scrapes: Family::default(),
    scrape_seconds: latency_buckets(),
    probes: Family::default(),
    ws_messages_sent: Counter::default(),
    ws_bytes_sent: Counter::default(),
    flushes: Counter::default(),
});

/// The process-wide event metrics.
pub fn events() -> &'static Events {
    &EVENTS
}

fn outcome(value: &str) -> Labels {
    vec![("outcome", value.to_string())]
}

impl Events {
    /// One aggregator batch of `records` stream records that took `took`.
    pub fn batch(&self, records: usize, took: Duration) {
        self.batch_records.observe(records as f64);
        self.batch_seconds.observe(took.as_secs_f64());
    }

    /// One alert evaluation round.
    pub fn alert_evaluation(&self, ok: bool, transitions: usize, took: Duration) {
        self.alert_evaluations
            .get_or_create(&outcome(if ok { "ok" } else { "failed" }))
            .inc();
        self.alert_transitions.inc_by(transitions as u64);
        self.alert_evaluation_seconds.observe(took.as_secs_f64());
    }

    /// One scrape of a Prometheus target.
    pub fn scrape(&self, up: bool, took: Duration) {
        self.scrapes
            .get_or_create(&outcome(if up { "up" } else { "down" }))
            .inc();
        self.scrape_seconds.observe(took.as_secs_f64());
    }

    /// One round of health probes.
    pub fn probe_round(&self, probed: usize, up: usize) {
        self.probes.get_or_create(&outcome("up")).inc_by(up as u64);
        self.probes
            .get_or_create(&outcome("down"))
            .inc_by(probed.saturating_sub(up) as u64);
    }

    /// A WebSocket message of `bytes` handed to the socket.
    pub fn ws_sent(&self, bytes: usize) {
        self.ws_messages_sent.inc();
        self.ws_bytes_sent.inc_by(bytes as u64);
    }

    fn register(&self, registry: &mut Registry) {
        // Every outcome shows from the start (as 0), so a rate over it has a baseline.
        for (family, outcomes) in [
            (
                &self.store_bucket_writes,
                &["applied", "already_applied", "error"][..],
            ),
            (&self.alert_evaluations, &["ok", "failed"][..]),
            (&self.scrapes, &["up", "down"][..]),
            (&self.probes, &["up", "down"][..]),
        ] {
            for name in outcomes {
                let _ = family.get_or_create(&outcome(name));
            }
        }
        registry.register(
            "flowscope_aggregator_batch_records",
            "Stream records per aggregator batch",
            self.batch_records.clone(),
        );
        registry.register(
            "flowscope_aggregator_batch_seconds",
            "Time to fold one aggregator batch (decode, buckets, traces, store writes)",
            self.batch_seconds.clone(),
        );
        registry.register(
            "flowscope_store_write_seconds",
            "Time of one metric-store bucket write call (one call carries a batch's buckets)",
            self.store_write_seconds.clone(),
        );
        registry.register(
            "flowscope_store_bucket_writes",
            "Bucket writes by outcome: applied, already_applied (a redelivery's conflict on the watermark), error",
            self.store_bucket_writes.clone(),
        );
        registry.register(
            "flowscope_store_sync_seconds",
            "Time to make the metric store durable before a stream checkpoint (fsync)",
            self.store_sync_seconds.clone(),
        );
        registry.register(
            "flowscope_alert_evaluations",
            "Alert evaluation rounds by outcome",
            self.alert_evaluations.clone(),
        );
        registry.register(
            "flowscope_alert_evaluation_seconds",
            "Time of one alert evaluation round",
            self.alert_evaluation_seconds.clone(),
        );
        registry.register(
            "flowscope_alert_transitions",
            "Alert state transitions (firing, resolved, …)",
            self.alert_transitions.clone(),
        );
        registry.register(
            "flowscope_scrapes",
            "Prometheus scrapes by outcome (up, down)",
            self.scrapes.clone(),
        );
        registry.register(
            "flowscope_scrape_seconds",
            "Time of one Prometheus scrape",
            self.scrape_seconds.clone(),
        );
        registry.register(
            "flowscope_probes",
            "Health probes by outcome (up, down)",
            self.probes.clone(),
        );
        registry.register(
            "flowscope_websocket_messages_sent",
            "WebSocket messages handed to client sockets",
            self.ws_messages_sent.clone(),
        );
        registry.register(
            "flowscope_websocket_sent_bytes",
            "Bytes of WebSocket messages handed to client sockets",
            self.ws_bytes_sent.clone(),
        );
        registry.register(
            "flowscope_live_flushes",
            "Live update flushes fanned out to WebSocket clients",
            self.flushes.clone(),
        );
    }
}

/// What `GET /metrics` reads: the event metrics and this local mode's running totals.
pub struct Endpoint {
    registry: Registry,
}

impl Endpoint {
    pub fn new(sources: Sources) -> Endpoint {
        let mut registry = Registry::default();
        events().register(&mut registry);
        registry.register_collector(Box::new(sources));
        Endpoint { registry }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial answer.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "encoding /metrics failed");
        }
        text
    }
}

/// The running totals read at scrape time.
pub struct Sources {
    pub ingest: Arc<Ingest<dyn StreamSink>>,
    pub aggregator: Arc<AggregatorStats>,
    pub connections: Arc<LocalConnections>,
    pub hub: Arc<LiveHub>,
    /// The embedded stream (its per-shard consumer lag); `None` with `--aws`.
    pub stream: Option<Arc<EmbeddedStream>>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("metrics::Sources")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, u64)],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, f64)],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let ingest = self.ingest.stats();
        counter(
            &mut encoder,
            "flowscope_ingest_points",
            "OTLP data points by signal and outcome (accepted, rejected), in requests answered 200",
            &[
                (
                    labels(&[("signal", "metrics"), ("outcome", "accepted")]),
                    ingest.accepted_data_points,
                ),
                (
                    labels(&[("signal", "metrics"), ("outcome", "rejected")]),
                    ingest.rejected_data_points,
                ),
            ],
        )?;
        counter(
            &mut encoder,
            "flowscope_ingest_spans",
            "OTLP spans by outcome (accepted, rejected), in requests answered 200",
            &[
                (
                    labels(&[("signal", "traces"), ("outcome", "accepted")]),
                    ingest.accepted_spans,
                ),
                (
                    labels(&[("signal", "traces"), ("outcome", "rejected")]),
                    ingest.rejected_spans,
                ),
            ],
        )?;
        // Every reason the receiver counts, whatever it adds later (read from its serialized form).
        let reasons: Vec<(Labels, u64)> = match serde_json::to_value(ingest.rejected_by_reason) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter_map(|(reason, n)| n.as_u64().map(|n| (vec![("reason", reason)], n)))
                .collect(),
            _ => Vec::new(),
        };
        counter(
            &mut encoder,
            "flowscope_ingest_rejected",
            "Rejected data points and spans together, by reason",
            &reasons,
        )?;
        counter(
            &mut encoder,
            "flowscope_ingest_log_records",
            "OTLP log records received (counted, not stored)",
            &[(Vec::new(), ingest.log_records)],
        )?;
        counter(
            &mut encoder,
            "flowscope_ingest_refused_requests",
            "OTLP requests answered with anything but 200",
            &[(Vec::new(), ingest.refused_requests)],
        )?;
        counter(
            &mut encoder,
            "flowscope_stream_records_written",
            "Stream records written by the receiver",
            &[(Vec::new(), ingest.stream_records)],
        )?;
        counter(
            &mut encoder,
            "flowscope_stream_written_bytes",
            "Bytes of stream record data written by the receiver",
            &[(Vec::new(), ingest.stream_bytes)],
        )?;

        let agg = self.aggregator.snapshot();
        counter(
            &mut encoder,
            "flowscope_aggregator_batches",
            "Aggregator batches by outcome (retried: part of it is delivered again)",
            &[
                (
                    outcome("done"),
                    agg.batches.saturating_sub(agg.retried_batches),
                ),
                (outcome("retried"), agg.retried_batches),
            ],
        )?;
        counter(
            &mut encoder,
            "flowscope_aggregator_records",
            "Stream records delivered to the aggregator (redeliveries included)",
            &[(Vec::new(), agg.records)],
        )?;
        counter(
            &mut encoder,
            "flowscope_aggregator_poison_records",
            "Stream records that could not be decoded and were skipped",
            &[(Vec::new(), agg.poison_records)],
        )?;
        counter(
            &mut encoder,
            "flowscope_aggregator_points",
            "Data points folded by the aggregator, by outcome",
            &[
                (outcome("applied"), agg.points_applied),
                (outcome("duplicate"), agg.points_duplicate),
                (outcome("noop"), agg.points_noop),
                (outcome("expired"), agg.points_expired),
            ],
        )?;
        counter(
            &mut encoder,
            "flowscope_aggregator_spans",
            "Spans folded into RED metrics, the service graph and kept traces",
            &[(Vec::new(), agg.spans)],
        )?;
        counter(
            &mut encoder,
            "flowscope_aggregator_trace_events",
            "Trace events published to live clients",
            &[(Vec::new(), agg.trace_events)],
        )?;

        if let Some(stream) = &self.stream {
            let lag: Vec<(Labels, f64)> = stream
                .shard_names()
                .into_iter()
                .map(|shard| {
                    let lag = stream.consumer_lag(&shard).unwrap_or_default();
                    (vec![("shard", shard)], lag.as_secs_f64())
                })
                .collect();
            gauge(
                &mut encoder,
                "flowscope_stream_lag_seconds",
                "How long the oldest record the aggregator has not processed has waited, per shard",
                &lag,
            )?;
        }

        let live = self.connections.stats();
        gauge(
            &mut encoder,
            "flowscope_websocket_connections",
            "Open WebSocket connections",
            &[(Vec::new(), live.connections as f64)],
        )?;
        gauge(
            &mut encoder,
            "flowscope_websocket_queued_bytes",
            "Bytes queued for all WebSocket connections",
            &[(Vec::new(), live.queued_bytes as f64)],
        )?;
        counter(
            &mut encoder,
            "flowscope_websocket_closed_behind",
            "WebSocket connections closed for falling behind",
            &[(Vec::new(), live.closed_behind)],
        )?;
        counter(
            &mut encoder,
            "flowscope_websocket_resyncs",
            "Send-queue overflows answered with a fresh snapshot",
            &[(Vec::new(), live.resyncs)],
        )?;
        let replay = self.hub.replay_stats();
        gauge(
            &mut encoder,
            "flowscope_live_replay_bytes",
            "Bytes held in the live replay buffer",
            &[(Vec::new(), replay.bytes as f64)],
        )?;
        gauge(
            &mut encoder,
            "flowscope_live_sequence",
            "The live sequence number (flushes since start)",
            &[(Vec::new(), self.hub.current_seq() as f64)],
        )?;
        Ok(())
    }
}

/// The embedded stream behind `consumer` (its lag is a gauge); `None` with `--aws`.
pub fn embedded_stream(consumer: &super::backend::Consumer) -> Option<Arc<EmbeddedStream>> {
    match consumer {
        super::backend::Consumer::Embedded(stream, _) => Some(stream.clone()),
        #[cfg(feature = "aws")]
        _ => None,
    }
}

/// The hooks of local mode's metric store as `/metrics` sees it: bucket write time and outcomes
/// (reads are forwarded as they are).
pub struct StoreTiming;

impl StoreTiming {
    pub fn wrap(inner: Arc<dyn MetricStore>) -> Arc<dyn MetricStore> {
        Arc::new(Wrapped::new(inner, StoreTiming))
    }
}

impl StoreHooks for StoreTiming {
    fn wrote(&self, outcomes: &[Result<ApplyOutcome, StoreError>], took: Duration) {
        events().store_write_seconds.observe(took.as_secs_f64());
        let (mut applied, mut conflict, mut failed) = (0u64, 0u64, 0u64);
        for outcome in outcomes {
            match outcome {
                Ok(ApplyOutcome::Applied(_)) => applied += 1,
                Ok(ApplyOutcome::AlreadyApplied { .. }) => conflict += 1,
                Err(_) => failed += 1,
            }
        }
        let writes = &events().store_bucket_writes;
        for (name, n) in [
            ("applied", applied),
            ("already_applied", conflict),
            ("error", failed),
        ] {
            if n > 0 {
                writes.get_or_create(&outcome(name)).inc_by(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_counters_become_prometheus_text_counters_named_total() {
        let openmetrics = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 2\n# HELP b_lag Lag.\n# TYPE b_lag gauge\n# UNIT b_lag seconds\nb_lag 0.5\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 2\n# HELP b_lag Lag.\n# TYPE b_lag gauge\nb_lag 0.5\n"
        );
    }

    #[test]
    fn prometheus_asks_for_openmetrics_and_curl_gets_text() {
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
}
