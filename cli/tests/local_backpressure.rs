//! Backpressure (`--max-aggregator-lag`): while the aggregator is behind by more than the bound, the
//! OTLP receiver answers 503 with `Retry-After` and a `google.rpc.Status` naming the reason instead
//! of accepting data it cannot aggregate in time; once the aggregator catches up it answers 200
//! again, and every point answered 200 is counted exactly once (no refused point is counted).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, Sum,
};
use serde_json::Value;
use support::{metrics_request, now_nanos};
use tokio::time::Instant;

const SERVICE: &str = "pressed";
const METRIC: &str = "bp.requests";
const MARKER: &str = "bp.marker";
/// Distinct series per request: each batch writes this many buckets per resolution, so the
/// (debug-built) aggregator is slower than the senders.
const SERIES_PER_REQUEST: usize = 1_000;
const SENDERS: usize = 4;
/// Generous: a debug build on a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(90);

/// One delta point of value 1 for each of `SERIES_PER_REQUEST` series of `METRIC`.
fn pressure_request() -> Vec<u8> {
    let now = now_nanos();
    let points = (0..SERIES_PER_REQUEST)
        .map(|i| NumberDataPoint {
            attributes: vec![KeyValue {
                key: "worker".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!("w{i}"))),
                }),
                ..Default::default()
            }],
            start_time_unix_nano: now.saturating_sub(1_000_000),
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsInt(1)),
            ..Default::default()
        })
        .collect();
    counter_request(METRIC, points)
}

fn counter_request(name: &str, points: Vec<NumberDataPoint>) -> Vec<u8> {
    metrics_request(
        SERVICE,
        vec![Metric {
            name: name.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }],
    )
}

fn marker_request() -> Vec<u8> {
    let now = now_nanos();
    counter_request(
        MARKER,
        vec![NumberDataPoint {
            start_time_unix_nano: now.saturating_sub(1_000_000),
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsInt(1)),
            ..Default::default()
        }],
    )
}

struct Answer {
    status: u16,
    retry_after: Option<u64>,
    content_type: String,
    body: Vec<u8>,
}

/// One OTLP protobuf POST; the status, `Retry-After`, content type and body.
async fn post(addr: SocketAddr, body: &[u8]) -> Answer {
    let response =
        support::http_full(addr, "POST", "/v1/metrics", "application/x-protobuf", body).await;
    Answer {
        status: response.status,
        retry_after: response.header("retry-after").and_then(|v| v.parse().ok()),
        content_type: response.header("content-type").unwrap_or_default(),
        body: response.body,
    }
}

async fn get_json(handle: &flowscope_cli::local::LocalHandle, path: &str) -> Value {
    support::get_json(handle, path).await.1
}

/// Points of `metric` counted over every 1m bucket around now (0 while the metric is unknown).
async fn counted(handle: &flowscope_cli::local::LocalHandle, metric: &str) -> u64 {
    let now = now_nanos() as i64 / 1_000_000_000;
    let (status, body) = support::get_json(
        handle,
        &format!(
            "/api/services/{SERVICE}/metrics/{metric}?resolution=1m&from={}&to={}",
            now - 600,
            now + 600
        ),
    )
    .await;
    if status == 404 {
        return 0;
    }
    assert_eq!(status, 200, "{metric}: {body}");
    body["buckets"].as_array().map_or(0, |b| {
        b.iter().map(|b| b["count"].as_u64().unwrap_or(0)).sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_aggregator_gets_503_with_retry_after_then_200_and_counts_every_accepted_point_once(
) {
    let dir = tempfile::tempdir().unwrap();
    let handle = flowscope_cli::local::start(support::args_with(
        dir.path(),
        &[
            "--max-aggregator-lag",
            "20ms",
            "--max-series-per-metric",
            "100000",
            "--max-series-per-service",
            "100000",
        ],
    ))
    .await
    .unwrap();
    let addr = handle.otlp_addr;
    let body = Arc::new(pressure_request());
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicBool::new(false));

    // Senders faster than the aggregator, until one of them is refused.
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (body, accepted, refused) = (body.clone(), accepted.clone(), refused.clone());
        senders.push(tokio::spawn(async move {
            let deadline = Instant::now() + DEADLINE;
            let mut first_refusal = None;
            while !refused.load(Ordering::SeqCst) && Instant::now() < deadline {
                let answer = post(addr, &body).await;
                match answer.status {
                    200 => {
                        accepted.fetch_add(SERIES_PER_REQUEST as u64, Ordering::SeqCst);
                    }
                    503 => {
                        refused.store(true, Ordering::SeqCst);
                        first_refusal = Some(answer);
                    }
                    other => panic!(
                        "unexpected status {other}: {}",
                        String::from_utf8_lossy(&answer.body)
                    ),
                }
            }
            first_refusal
        }));
    }
    let mut refusal = None;
    for sender in senders {
        if let Some(answer) = sender.await.unwrap() {
            refusal = Some(answer);
        }
    }
    let refusal = refusal.expect("the aggregator never fell 20ms behind four senders");
    assert!(
        refusal.retry_after.is_some_and(|s| s >= 1),
        "a 503 carries Retry-After"
    );
    assert_eq!(refusal.content_type, "application/x-protobuf");
    let reason = String::from_utf8_lossy(&refusal.body);
    assert!(
        reason.contains("the aggregator is") && reason.contains("behind"),
        "the Status names the reason: {reason}"
    );
    assert!(accepted.load(Ordering::SeqCst) > 0);

    // A client honouring Retry-After gets its data in once the aggregator has caught up.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = post(addr, &body).await;
        if answer.status == 200 {
            accepted.fetch_add(SERIES_PER_REQUEST as u64, Ordering::SeqCst);
            break;
        }
        assert_eq!(
            answer.status,
            503,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(
            Instant::now() < deadline,
            "still refused after {DEADLINE:?}"
        );
        let wait = answer.retry_after.expect("a 503 carries Retry-After");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }

    // Everything accepted is aggregated exactly once; nothing refused is.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = post(addr, &marker_request()).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the marker was refused until the deadline"
        );
        tokio::time::sleep(Duration::from_secs(answer.retry_after.unwrap_or(1))).await;
    }
    while counted(&handle, MARKER).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the aggregator did not catch up: {}",
            get_json(&handle, "/api/pipeline").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counted(&handle, METRIC).await,
        accepted.load(Ordering::SeqCst),
        "every point answered 200 is counted once, and no refused point is"
    );
    handle.shutdown().await.unwrap();
}
