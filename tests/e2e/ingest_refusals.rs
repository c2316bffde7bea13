//! How the ingest function answers when it cannot take data: a missing key, a throttling stream, a
//! failing stream. Runs without emulators: a scripted Kinesis endpoint on 127.0.0.1 produces the
//! per-record failures real Kinesis returns under load.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowscope_core::aws::RetryPolicy;
use flowscope_core::ingest::IngestLimits;
use flowscope_core::otlp::response::Status;
use flowscope_core::ports::{StreamEntry, StreamSink};
use flowscope_integration_tests::events::{dyn_ingest, http_request, ingest_function, otlp_post};
use flowscope_integration_tests::fake_kinesis::FakeKinesis;
use flowscope_integration_tests::otlp::gauge_request;
use flowscope_integration_tests::{api_keys, now_unix_s, API_KEY};
use prost::Message;

const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// Four quick attempts: enough to see retries, short enough for a test.
fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_elapsed: Duration::from_secs(5),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn status_of(body: &[u8]) -> Status {
    Status::decode(body).expect("a protobuf google.rpc.Status body")
}

#[tokio::test]
async fn a_stream_that_keeps_throttling_makes_ingest_answer_429_with_retry_after() {
    let kinesis = FakeKinesis::start(|_, _, _| Some(THROTTLED)).await;
    let ingest = Arc::new(dyn_ingest(
        Arc::new(kinesis.stream(quick_retry()).await),
        IngestLimits::default(),
    ));
    let body = gauge_request("checkout", "queue.depth", &[1.0, 2.0], now_unix_s());

    let response = ingest_function(&ingest, &api_keys(), otlp_post(&body, Some(API_KEY))).await;

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let status = status_of(response.body().as_ref());
    assert_eq!(status.code, 8, "RESOURCE_EXHAUSTED");
    let calls = kinesis.calls();
    assert_eq!(
        calls.len(),
        4,
        "retried within the policy's attempts, then gave up"
    );
    assert!(
        calls.iter().all(|records| records.len() == 1),
        "each attempt re-sent the one throttled record"
    );
}

#[tokio::test]
async fn only_the_failed_entries_are_put_again_until_the_stream_takes_them() {
    // The first call throttles entries 1 and 3; every later call accepts everything.
    let kinesis = FakeKinesis::start(|call, index, _| {
        (call == 0 && (index == 1 || index == 3)).then_some(THROTTLED)
    })
    .await;
    let stream = kinesis.stream(quick_retry()).await;
    let entries: Vec<StreamEntry> = (0..5)
        .map(|i| StreamEntry {
            partition_key: "checkout".into(),
            data: Bytes::from(format!("record-{i}")),
        })
        .collect();

    stream
        .put_all(entries)
        .await
        .expect("accepted after a retry");

    let calls = kinesis.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].len(), 5);
    assert_eq!(
        calls[1],
        vec![b"record-1".to_vec(), b"record-3".to_vec()],
        "only the throttled entries are sent again"
    );
}

#[tokio::test]
async fn records_that_keep_failing_for_another_reason_answer_503() {
    let kinesis = FakeKinesis::start(|_, _, _| Some("InternalFailure")).await;
    let ingest = Arc::new(dyn_ingest(
        Arc::new(kinesis.stream(quick_retry()).await),
        IngestLimits::default(),
    ));
    let body = gauge_request("checkout", "queue.depth", &[1.0], now_unix_s());

    let response = ingest_function(&ingest, &api_keys(), otlp_post(&body, Some(API_KEY))).await;

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(status_of(response.body().as_ref()).code, 14, "UNAVAILABLE");
}

#[tokio::test]
async fn requests_without_a_valid_api_key_get_401_and_write_nothing() {
    let kinesis = FakeKinesis::start(|_, _, _| None).await;
    let ingest = Arc::new(dyn_ingest(
        Arc::new(kinesis.stream(quick_retry()).await),
        IngestLimits::default(),
    ));
    let keys = api_keys();
    let body = gauge_request("checkout", "queue.depth", &[1.0], now_unix_s());

    let missing = ingest_function(&ingest, &keys, otlp_post(&body, None)).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        status_of(missing.body().as_ref()).code,
        16,
        "UNAUTHENTICATED"
    );

    let wrong = ingest_function(&ingest, &keys, otlp_post(&body, Some("not-the-key"))).await;
    assert_eq!(wrong.status(), 401);

    let json = http_request(
        "POST",
        "/v1/metrics",
        "",
        &[("content-type", "application/json"), ("x-api-key", "wrong")],
        b"{}",
    );
    let json_refusal = ingest_function(&ingest, &keys, json).await;
    assert_eq!(json_refusal.status(), 401);
    let status: serde_json::Value = serde_json::from_slice(json_refusal.body().as_ref()).unwrap();
    assert_eq!(status["code"], 16, "a JSON request gets a JSON status");

    assert!(kinesis.calls().is_empty(), "nothing reached the stream");

    let accepted = ingest_function(&ingest, &keys, otlp_post(&body, Some(API_KEY))).await;
    assert_eq!(accepted.status(), 200, "the right key gets in");
    assert_eq!(kinesis.calls().len(), 1);
}
