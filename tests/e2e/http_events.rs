//! The sample HTTP API v2 events (`events/ingest.json`, `events/query.json`) through the functions'
//! routers — the core's axum routers the `ingest` and `query` functions serve with
//! `lambda_http::run` — with lambda_http's own event → request and response conversions, and no
//! network: in-process stream, the real aggregator, embedded stores.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::alerts::RuleSet;
use flowscope_core::auth::ApiKeys;
use flowscope_core::embedded::{RedbAlertStore, RedbStore};
use flowscope_core::http::ApiState;
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::model::Retention;
use flowscope_core::ports::{
    SequenceNumber, ShardBatch, StreamEntry, StreamError, StreamRecord, StreamSink,
};
use flowscope_integration_tests::events::{ingest_function, json_body, query_function};
use flowscope_integration_tests::now_unix_s;
use serde_json::Value;

/// The key the sample events carry.
const DEV_KEY: &str = "flowscope-dev-key";
/// The service of the sample points.
const SERVICE: &str = "checkout";

fn read_event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("an event is JSON")
}

fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("an HTTP API v2 event")
}

/// `events/ingest.json` with its points stamped a minute ago (the file's own timestamps age out of
/// the retention window; the event's shape is fed unchanged).
fn fresh_ingest_event() -> Value {
    let mut event = read_event("ingest.json");
    let mut body: Value =
        serde_json::from_str(event["body"].as_str().expect("a text body")).expect("OTLP/JSON");
    let stamp = ((now_unix_s() - 60) * 1_000_000_000).to_string();
    for metric in body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
        .as_array_mut()
        .expect("metrics")
    {
        for point in metric["gauge"]["dataPoints"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            point["timeUnixNano"] = Value::String(stamp.clone());
        }
    }
    let text = body.to_string();
    event["headers"]["content-length"] = Value::String(text.len().to_string());
    event["body"] = Value::String(text);
    event
}

#[derive(Default)]
struct Stream {
    entries: Mutex<Vec<StreamEntry>>,
}

#[async_trait]
impl StreamSink for Stream {
    async fn put_all(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError> {
        self.entries.lock().expect("lock").extend(entries);
        Ok(())
    }
}

#[tokio::test]
async fn the_sample_http_events_are_served_by_the_functions_routers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = ApiKeys::from_clear_keys([DEV_KEY]);
    let stream = Arc::new(Stream::default());
    let sink: Arc<dyn StreamSink> = stream.clone();
    let ingest = Arc::new(Ingest::new(sink, IngestLimits::default()));

    // events/ingest.json → the ingest function's router: 200, the points are on the stream.
    let response = ingest_function(&ingest, &keys, request(&fresh_ingest_event())).await;
    let body = String::from_utf8_lossy(response.body().as_ref()).to_string();
    assert_eq!(response.status(), 200, "{body}");
    assert!(!body.contains("rejected"), "no point refused: {body}");
    assert!(ingest.stats().accepted_data_points > 0);

    // The same event without its key: 401 with a google.rpc.Status in the request's format (JSON).
    let mut keyless = fresh_ingest_event();
    keyless["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("authorization");
    let response = ingest_function(&ingest, &keys, request(&keyless)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json_body(&response)["code"], 16);

    // What the stream holds, through the aggregator into the store.
    let records: Vec<StreamRecord> = stream
        .entries
        .lock()
        .expect("lock")
        .iter()
        .enumerate()
        .map(|(i, entry)| StreamRecord {
            shard_id: "shard-0".into(),
            sequence_number: SequenceNumber::from_u128(i as u128 + 1),
            partition_key: entry.partition_key.clone(),
            data: entry.data.clone(),
            arrival_unix_ms: now_unix_s() * 1000,
        })
        .collect();
    let store = Arc::new(RedbStore::open(&dir.path().join("buckets.redb")).expect("opens"));
    let outcome = Aggregator::new(store.clone(), Retention::default())
        .process(&ShardBatch {
            shard_id: "shard-0".into(),
            records,
        })
        .await;
    assert!(outcome.poison.is_empty() && outcome.retry_from.is_none());

    // events/query.json → the query function's router: the service is listed.
    let state = ApiState::new(
        store,
        Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).expect("opens")),
        Arc::new(RuleSet::shipped().expect("the shipped rules are valid")),
    );
    let query = read_event("query.json");
    let response = query_function(&state, &keys, request(&query)).await;
    assert_eq!(response.status(), 200, "{}", json_body(&response));
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "the JSON content type reaches API Gateway"
    );
    assert_eq!(json_body(&response)["services"][0]["name"], SERVICE);

    // A wrong key: 401 with the reason and the challenge.
    let mut wrong = query.clone();
    wrong["headers"]["x-api-key"] = Value::String("not-the-key".into());
    let response = query_function(&state, &keys, request(&wrong)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        flowscope_core::auth::CHALLENGE
    );
    assert_eq!(json_body(&response)["error"], "invalid credential");

    // A metric path with a query string and an escaped segment, as API Gateway forwards it.
    let metric = json_body(
        &query_function(
            &state,
            &keys,
            request(&with_path(&query, "/api/services/checkout/metrics", "")),
        )
        .await,
    )["metrics"][0]["name"]
        .as_str()
        .expect("a metric")
        .to_string();
    let escaped: String = metric
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let now = now_unix_s();
    let path = format!("/api/services/{SERVICE}/metrics/{escaped}");
    let raw_query = format!("from={}&to={}&resolution=1m", now - 600, now + 60);
    let response = query_function(
        &state,
        &keys,
        request(&with_path(&query, &path, &raw_query)),
    )
    .await;
    assert_eq!(response.status(), 200, "{path}: {}", json_body(&response));
    let history = json_body(&response);
    assert_eq!(history["metric"], metric.as_str());
    assert_eq!(history["from"], now - 600);
    assert!(
        !history["buckets"].as_array().expect("buckets").is_empty(),
        "{history}"
    );

    // Another method on a read route: 405 with `Allow`, through lambda_http's response conversion.
    let mut post = query.clone();
    post["requestContext"]["http"]["method"] = Value::String("POST".into());
    let response = query_function(&state, &keys, request(&post)).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    assert_eq!(
        json_body(&response)["error"],
        "POST is not allowed on /api/services"
    );
}

/// `event` for another path and query string.
fn with_path(event: &Value, path: &str, raw_query: &str) -> Value {
    let mut event = event.clone();
    event["rawPath"] = Value::String(path.into());
    event["rawQueryString"] = Value::String(raw_query.into());
    event["requestContext"]["http"]["path"] = Value::String(path.into());
    event
}
