//! `GET` and `PUT /api/alert-rules` over the embedded alert store (issue 13 item 6): rules replaced
//! through the API are validated (line:column errors, the running rules stay), versioned (`ETag`,
//! `If-Match` → 412), need an admin key, and are what the evaluator's shared view holds next.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use flowscope_core::alerts::{RuleSet, RuleSource};
use flowscope_core::auth::ApiKeys;
use flowscope_core::embedded::{RedbAlertStore, RedbStore};
use flowscope_core::http::rules::RuleWriters;
use flowscope_core::http::{api, ApiState};
use flowscope_core::ports::RuleStore;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const SEED: &str = "rules:\n  - name: seed\n    metric: m\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 1\n";
const NEW: &str = "rules:\n  - name: cpu\n    metric: process.cpu.utilization\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 80\n  - name: mem\n    metric: process.memory.usage\n    aggregation: max\n    window: 5m\n    condition: above\n    critical: 1000\n";
const ADMIN: &str = "admin-secret";

struct Setup {
    _dir: tempfile::TempDir,
    router: axum::Router,
    source: RuleSource,
    store: Arc<RedbAlertStore>,
}

fn setup(writers: RuleWriters) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(RedbStore::open(&dir.path().join("m.redb")).unwrap());
    let store = Arc::new(RedbAlertStore::open(&dir.path().join("a.redb")).unwrap());
    let seed = Arc::new(RuleSet::parse(SEED, "seed.yaml").unwrap());
    let source = RuleSource::new(store.clone(), seed.clone());
    let state = ApiState::new(metrics, store.clone(), seed)
        .with_rule_source(source.clone(), writers)
        .with_clock(Arc::new(|| 1_700_000_000));
    Setup {
        _dir: dir,
        router: api::router(state),
        source,
        store,
    }
}

fn admin_only() -> RuleWriters {
    RuleWriters::Keys(ApiKeys::from_clear_keys([ADMIN]))
}

struct Answer {
    status: u16,
    etag: Option<String>,
    body: Value,
}

async fn send(router: &axum::Router, method: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = Request::builder().method(method).uri("/api/alert-rules");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        etag,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn names(body: &Value) -> Vec<String> {
    body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_put_puts_new_rules_in_force_as_the_next_version() {
    let s = setup(admin_only());
    let before = send(&s.router, "GET", &[], "").await;
    assert_eq!(
        (before.status, before.etag.as_deref()),
        (200, Some("\"0\""))
    );
    assert_eq!(before.body["version"], 0);
    assert_eq!(names(&before.body), ["seed"]);

    let auth = ("authorization", "Bearer admin-secret");
    let put = send(&s.router, "PUT", &[auth, ("if-match", "\"0\"")], NEW).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.etag.as_deref(), Some("\"1\""));
    assert_eq!(names(&put.body), ["cpu", "mem"]);

    // What the API serves, the evaluator's shared view and the store agree.
    let after = send(&s.router, "GET", &[], "").await;
    assert_eq!(
        (after.body["version"].as_u64(), names(&after.body)),
        (Some(1), vec!["cpu".to_string(), "mem".to_string()])
    );
    let live = s.source.live().get();
    assert_eq!((live.version, live.rules.rules.len()), (1, 2));
    let stored = s.store.current().await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.text.as_str(), stored.updated_at),
        (1, NEW, 1_700_000_000)
    );

    // Without If-Match a PUT replaces whatever is current; JSON is a rule file too.
    let json = r#"{"rules": [{"name": "j", "metric": "m", "aggregation": "sum", "window": "2m", "condition": "below", "warning": 3}]}"#;
    let put = send(&s.router, "PUT", &[("x-api-key", ADMIN)], json).await;
    assert_eq!(
        (put.status, put.etag.as_deref()),
        (200, Some("\"2\"")),
        "{}",
        put.body
    );
    assert_eq!(names(&put.body), ["j"]);
}

#[tokio::test]
async fn an_invalid_body_is_refused_with_its_position_and_the_rules_stay() {
    let s = setup(admin_only());
    let auth = ("x-api-key", ADMIN);
    let broken = "rules:\n  - name: cpu\n    metric: m\n    aggregation: avg\n    window: 1m\n    condition: sideways\n    warning: 1\n";
    let refused = send(&s.router, "PUT", &[auth], broken).await;
    assert_eq!(refused.status, 400);
    let error = refused.body["error"].as_str().unwrap();
    assert!(
        error.starts_with("body:6:"),
        "line and column of the bad value: {error}"
    );
    assert!(error.contains("sideways"), "{error}");

    for garbage in ["", "rules: [", "\u{0}\u{1}", "rules:\n  - {}\n"] {
        let refused = send(&s.router, "PUT", &[auth], garbage).await;
        assert_eq!(refused.status, 400, "{garbage:?}: {}", refused.body);
    }
    let too_big = format!("{SEED}# {}\n", "x".repeat(300 * 1024));
    assert_eq!(send(&s.router, "PUT", &[auth], &too_big).await.status, 413);

    let after = send(&s.router, "GET", &[], "").await;
    assert_eq!(
        (after.body["version"].as_u64(), names(&after.body)),
        (Some(0), vec!["seed".to_string()])
    );
    assert_eq!(s.store.current().await.unwrap(), None, "nothing was stored");
    assert_eq!(s.source.live().get().version, 0);
}

#[tokio::test]
async fn a_stale_if_match_is_412_so_two_writers_do_not_clobber() {
    let s = setup(admin_only());
    let auth = ("x-api-key", ADMIN);
    assert_eq!(
        send(&s.router, "PUT", &[auth, ("if-match", "\"0\"")], NEW)
            .await
            .status,
        200
    );
    // The second writer read version 0 too.
    let late = send(&s.router, "PUT", &[auth, ("if-match", "\"0\"")], SEED).await;
    assert_eq!(late.status, 412);
    assert!(
        late.body["error"].as_str().unwrap().contains("version 1"),
        "{}",
        late.body
    );
    assert_eq!(send(&s.router, "GET", &[], "").await.body["version"], 1);
    // W/"1" and a bare 1 name the version too; a non-number is a 400.
    assert_eq!(
        send(&s.router, "PUT", &[auth, ("if-match", "W/\"1\"")], SEED)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&s.router, "PUT", &[auth, ("if-match", "2")], NEW)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&s.router, "PUT", &[auth, ("if-match", "\"latest\"")], NEW)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn only_an_admin_key_replaces_the_rules() {
    let s = setup(admin_only());
    assert_eq!(send(&s.router, "PUT", &[], NEW).await.status, 403);
    assert_eq!(
        send(&s.router, "PUT", &[("x-api-key", "reader")], NEW)
            .await
            .status,
        403
    );
    assert_eq!(send(&s.router, "GET", &[], "").await.body["version"], 0);

    let nobody = setup(RuleWriters::Nobody);
    let refused = send(&nobody.router, "PUT", &[("x-api-key", ADMIN)], NEW).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body["error"]
        .as_str()
        .unwrap()
        .contains("ADMIN_KEY_HASHES"));

    let open = setup(RuleWriters::Anyone);
    assert_eq!(send(&open.router, "PUT", &[], NEW).await.status, 200);
}

#[tokio::test]
async fn without_a_rules_store_the_rules_cannot_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(RedbStore::open(&dir.path().join("m.redb")).unwrap());
    let store = Arc::new(RedbAlertStore::open(&dir.path().join("a.redb")).unwrap());
    let seed = Arc::new(RuleSet::parse(SEED, "seed.yaml").unwrap());
    let router = api::router(ApiState::new(metrics, store, seed));
    let refused = send(&router, "PUT", &[], NEW).await;
    assert_eq!(refused.status, 405, "{}", refused.body);
    assert_eq!(send(&router, "GET", &[], "").await.body["version"], 0);
}

#[tokio::test]
async fn a_version_put_by_another_process_is_served_at_the_next_read() {
    // The query and alerts functions each keep their own view; the store is the meeting point.
    let s = setup(admin_only());
    s.store.put(0, NEW, 1_700_000_100).await.unwrap();
    let read = send(&s.router, "GET", &[], "").await;
    assert_eq!(
        (read.body["version"].as_u64(), read.etag.as_deref()),
        (Some(1), Some("\"1\""))
    );
    assert_eq!(names(&read.body), ["cpu", "mem"]);
}
