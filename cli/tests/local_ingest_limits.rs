//! Local mode applies its ingest-limit flags: attributes per point, points per request and the
//! retention window (all four `--retention-*` flags, the longest setting it) reach the OTLP receiver, refusals are named in `partial_success` and counted
//! per reason in `/api/pipeline`.

mod support;

use flowscope_cli::local;
use serde_json::{json, Value};
use support::*;

const DAY_NANOS: u64 = 86_400 * 1_000_000_000;

fn point(time: u64, attributes: Value, value: f64) -> Value {
    json!({ "timeUnixNano": time.to_string(), "asDouble": value, "attributes": attributes })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_limit_flags_reach_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &[
            "--max-attributes-per-point",
            "1",
            "--max-points-per-request",
            "3",
            "--retention-1m",
            "1h",
            "--retention-5m",
            "2h",
            "--retention-1h",
            "1d",
            "--retention-1d",
            "1d",
        ],
    ))
    .await
    .unwrap();
    let now = now_nanos();
    let kv = |k: &str| json!({ "key": k, "value": { "stringValue": "x" } });
    let body = json!({ "resourceMetrics": [{
        "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "limits" } }] },
        "scopeMetrics": [{ "metrics": [{ "name": "depth", "gauge": { "dataPoints": [
            point(now, json!([kv("a"), kv("b")]), 1.0),
            point(now - 3 * DAY_NANOS, json!([]), 2.0),
            point(now, json!([kv("a")]), 3.0),
            point(now, json!([]), 4.0),
        ] } }] }]
    }] });
    let (status, reply) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/json",
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        reply["partialSuccess"]["rejectedDataPoints"], "3",
        "{reply}"
    );
    let message = reply["partialSuccess"]["errorMessage"].as_str().unwrap();
    for expected in [
        r#"metric "depth": 2 attributes exceed the limit of 1 per point"#,
        "older than the retention window of 1 d",
        "more than 3 data points",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }

    let (status, pipeline) = get_json(&handle, "/api/pipeline").await;
    assert_eq!(status, 200);
    let ingest = &pipeline["ingest"];
    assert_eq!(ingest["accepted_data_points"], 1, "{pipeline}");
    assert_eq!(ingest["rejected_by_reason"]["too_many_attributes"], 1);
    assert_eq!(ingest["rejected_by_reason"]["too_old"], 1);
    assert_eq!(ingest["rejected_by_reason"]["too_many_in_request"], 1);
    handle.shutdown().await.unwrap();
}
