//! The core's one HTTP router (`flowscope_core::http`), driven with `tower::ServiceExt::oneshot` as
//! local mode's server and lambda_http drive it: names that need escaping survive the whole way —
//! OTLP in through `POST /v1/metrics`, the real record codec and aggregator, and back out through
//! `/api/*` — with path segments decoded per RFC 3986 (`+` stays `+`, `%2F` is a `/` inside the
//! segment).

#[path = "support/http.rs"]
mod http;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flowscope_core::aggregate::Aggregator;
use flowscope_core::alerts::RuleSet;
use flowscope_core::auth::ApiKeys;
use flowscope_core::embedded::{RedbAlertStore, RedbStore};
use flowscope_core::http::{api, ingest_router, otlp, query_router, ApiState};
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::model::Retention;
use flowscope_core::ports::{
    SequenceNumber, ShardBatch, StreamEntry, StreamError, StreamRecord, StreamSink,
};
use serde_json::json;

/// A service and a metric whose names contain `+`, `/`, `%`, spaces and non-ASCII.
const SERVICE: &str = "a+b/c 100% café";
const METRIC: &str = "http.server/dur+ation 50% ü";

/// Keeps what the receiver wrote, for the aggregator to read back as one shard.
#[derive(Default)]
struct Stream {
    entries: Mutex<Vec<StreamEntry>>,
}

#[async_trait]
impl StreamSink for Stream {
    async fn put_all(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError> {
        self.entries.lock().unwrap().extend(entries);
        Ok(())
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One gauge point of `SERVICE`/`METRIC` a minute ago, as OTLP/JSON.
fn export_body() -> String {
    let time_ns = (now_s() - 60) * 1_000_000_000;
    json!({
        "resourceMetrics": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": SERVICE } }
            ] },
            "scopeMetrics": [{ "metrics": [{
                "name": METRIC,
                "unit": "ms",
                "gauge": { "dataPoints": [{
                    "asDouble": 42.5,
                    "timeUnixNano": time_ns.to_string()
                }] }
            }] }]
        }]
    })
    .to_string()
}

/// RFC 3986 percent-encoding of one path segment: everything but the unreserved characters.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Deployment {
    _dir: tempfile::TempDir,
    stream: Arc<Stream>,
    store: Arc<RedbStore>,
    otlp: axum::Router,
    api: axum::Router,
}

fn deployment() -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("buckets.redb")).unwrap());
    let alerts = Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap());
    let stream = Arc::new(Stream::default());
    let sink: Arc<dyn StreamSink> = stream.clone();
    let ingest = Arc::new(Ingest::new(sink, IngestLimits::default()));
    let state = ApiState::new(store.clone(), alerts, Arc::new(RuleSet::shipped().unwrap()));
    Deployment {
        _dir: dir,
        stream,
        store,
        otlp: otlp::router(ingest),
        api: api::router(state),
    }
}

impl Deployment {
    /// Everything the receiver wrote, through the aggregator into the store.
    async fn aggregate(&self) {
        let records: Vec<StreamRecord> = self
            .stream
            .entries
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, entry)| StreamRecord {
                shard_id: "shard-0".into(),
                sequence_number: SequenceNumber::from_u128(i as u128 + 1),
                partition_key: entry.partition_key.clone(),
                data: entry.data.clone(),
                arrival_unix_ms: now_s() * 1000,
            })
            .collect();
        assert!(!records.is_empty(), "the receiver wrote records");
        let outcome = Aggregator::new(self.store.clone(), Retention::default())
            .process(&ShardBatch {
                shard_id: "shard-0".into(),
                records,
            })
            .await;
        assert!(outcome.poison.is_empty() && outcome.retry_from.is_none());
    }
}

async fn post_json(router: &axum::Router, path: &str, body: &str) -> http::Answer {
    http::call(router, "POST", path, body).await
}

#[tokio::test]
async fn names_with_plus_slash_percent_spaces_and_non_ascii_are_written_and_read_back() {
    let d = deployment();
    let answer = post_json(&d.otlp, "/v1/metrics", &export_body()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    d.aggregate().await;

    let services = http::call(&d.api, "GET", "/api/services", "").await;
    assert_eq!(services.status, 200, "{}", services.body);
    assert_eq!(services.body["services"][0]["name"], SERVICE);

    let path = format!("/api/services/{}/metrics", segment(SERVICE));
    let metrics = http::call(&d.api, "GET", &path, "").await;
    assert_eq!(metrics.status, 200, "{path}: {}", metrics.body);
    assert_eq!(metrics.body["service"], SERVICE);
    assert_eq!(metrics.body["metrics"][0]["name"], METRIC);

    let path = format!(
        "/api/services/{}/metrics/{}",
        segment(SERVICE),
        segment(METRIC)
    );
    let history = http::call(&d.api, "GET", &path, "").await;
    assert_eq!(history.status, 200, "{path}: {}", history.body);
    assert_eq!(history.body["service"], SERVICE);
    assert_eq!(history.body["metric"], METRIC);
    let buckets = history.body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1, "{}", history.body);
    assert_eq!(buckets[0]["max"], 42.5);

    // `+` and the other sub-delimiters may also arrive unescaped: `+` is a plus, not a space.
    let path = "/api/services/a+b%2Fc%20100%25%20caf%C3%A9/metrics";
    let metrics = http::call(&d.api, "GET", path, "").await;
    assert_eq!(metrics.status, 200, "{path}: {}", metrics.body);
    assert_eq!(metrics.body["service"], SERVICE);
    // ... and a space is not a plus.
    let path = "/api/services/a%20b%2Fc%20100%25%20caf%C3%A9/metrics";
    assert_eq!(http::call(&d.api, "GET", path, "").await.status, 404);
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_parameters_answer_with_an_error_body() {
    let d = deployment();
    let unknown = http::call(&d.api, "GET", "/api/nothing/here", "").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"], "no route for /api/nothing/here");

    let refused = http::call(&d.api, "POST", "/api/services", "{}").await;
    assert_eq!(refused.status, 405);
    assert_eq!(refused.headers["allow"], "GET,HEAD");
    assert_eq!(
        refused.body["error"],
        "POST is not allowed on /api/services"
    );
    assert_eq!(refused.headers["content-type"], "application/json");

    let bad = http::call(&d.api, "GET", "/api/series/xyz", "").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let bad = http::call(&d.api, "GET", "/api/services/x/metrics/y?from=oops", "").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body["error"].as_str().unwrap().contains("`from`"));
    // Without a trace store, the trace routes are not served.
    let absent = http::call(&d.api, "GET", "/api/graph", "").await;
    assert_eq!(absent.status, 404, "{}", absent.body);
    // Without series limits, neither is `/api/limits`.
    assert_eq!(
        http::call(&d.api, "GET", "/api/limits", "").await.status,
        404
    );
}

#[tokio::test]
async fn the_function_routers_require_an_api_key_and_answer_in_the_callers_terms() {
    let d = deployment();
    let keys = ApiKeys::from_clear_keys(["k1"]);
    let state = ApiState::new(
        d.store.clone(),
        Arc::new(RedbAlertStore::open(&d._dir.path().join("alerts2.redb")).unwrap()),
        Arc::new(RuleSet::shipped().unwrap()),
    );
    let query = query_router(state, keys.clone());
    let refused = http::call(&query, "GET", "/api/services", "").await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.headers["www-authenticate"],
        "Bearer realm=\"flowscope\""
    );
    assert!(refused.body["error"]
        .as_str()
        .unwrap()
        .contains("missing credential"));

    let sink: Arc<dyn StreamSink> = d.stream.clone();
    let ingest = ingest_router(Arc::new(Ingest::new(sink, IngestLimits::default())), keys);
    // 401 and 404 as `google.rpc.Status` in the request's format (JSON here).
    let refused = post_json(&ingest, "/v1/metrics", &export_body()).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["code"], 16, "{}", refused.body);
    let request = axum::http::Request::post("/v1/nothing")
        .header("content-type", "application/json")
        .header("x-api-key", "k1")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(ingest, request).await.unwrap();
    assert_eq!(response.status(), 404);
}

/// The committed contract describes what the router really sends: each answer below validates
/// against the schema `docs/openapi.json` gives for its route, method and status (JSON Schema
/// 2020-12, with `boon`). A serde attribute the schema derive does not see shows up here.
#[tokio::test]
async fn answers_validate_against_the_committed_openapi_document() {
    let d = deployment();
    let answer = post_json(&d.otlp, "/v1/metrics", &export_body()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    d.aggregate().await;

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    const DOC: &str = "http://flowscope.invalid/openapi.json";
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V2020_12);
    compiler.add_resource(DOC, document.clone()).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut checked = 0;
    let mut check = |template: &str, method: &str, answer: &http::Answer| {
        let status = answer.status.to_string();
        let operation = &document["paths"][template][method.to_ascii_lowercase()];
        let schema = &operation["responses"][&status]["content"]["application/json"]["schema"];
        let reference = schema["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {template} does not document {status}"));
        let index = compiler
            .compile(&format!("{DOC}{reference}"), &mut schemas)
            .unwrap();
        if let Err(error) = schemas.validate(&answer.body, index) {
            panic!("{method} {template} {status}: {error:#}\n{}", answer.body);
        }
        checked += 1;
    };

    let services = http::call(&d.api, "GET", "/api/services", "").await;
    check("/api/services", "GET", &services);
    let path = format!("/api/services/{}/metrics", segment(SERVICE));
    let metrics = http::call(&d.api, "GET", &path, "").await;
    check("/api/services/{service}/metrics", "GET", &metrics);
    let path = format!(
        "/api/services/{}/metrics/{}",
        segment(SERVICE),
        segment(METRIC)
    );
    let history = http::call(&d.api, "GET", &path, "").await;
    check("/api/services/{service}/metrics/{metric}", "GET", &history);
    let missing = http::call(&d.api, "GET", "/api/services/nobody/metrics/none", "").await;
    check("/api/services/{service}/metrics/{metric}", "GET", &missing);
    let id = metrics.body["metrics"][0]["series"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let series = http::call(&d.api, "GET", &format!("/api/series/{id}"), "").await;
    check("/api/series/{id}", "GET", &series);

    let alerts = http::call(&d.api, "GET", "/api/alerts", "").await;
    check("/api/alerts", "GET", &alerts);
    let history = http::call(&d.api, "GET", "/api/alerts/history", "").await;
    check("/api/alerts/history", "GET", &history);
    let letters = http::call(&d.api, "GET", "/api/alerts/dead-letters", "").await;
    check("/api/alerts/dead-letters", "GET", &letters);
    let rules = http::call(&d.api, "GET", "/api/alert-rules", "").await;
    check("/api/alert-rules", "GET", &rules);
    let body =
        r#"{"matchers":[{"name":"service","value":"api"}],"duration":"1h","created_by":"test"}"#;
    let created = post_json(&d.api, "/api/silences", body).await;
    check("/api/silences", "POST", &created);
    let silences = http::call(&d.api, "GET", "/api/silences", "").await;
    check("/api/silences", "GET", &silences);
    let id = created.body["silence"]["id"].as_str().unwrap().to_string();
    let deleted = http::call(&d.api, "DELETE", &format!("/api/silences/{id}"), "").await;
    check("/api/silences/{id}", "DELETE", &deleted);
    let ack = post_json(&d.api, "/api/alerts/0000000000000000/ack", r#"{"by":"t"}"#).await;
    check("/api/alerts/{fingerprint}/ack", "POST", &ack);
    assert_eq!(checked, 13);

    // Not vacuous: a renamed field or a wrong type is refused.
    let index = compiler
        .compile(
            &format!("{DOC}#/components/schemas/ServiceList"),
            &mut schemas,
        )
        .unwrap();
    let renamed = json!({ "service_list": [] });
    let mistyped = json!({ "services": [{ "name": 1, "series": 1, "last_seen": 1 }] });
    assert!(schemas.validate(&renamed, index).is_err());
    assert!(schemas.validate(&mistyped, index).is_err());
}
