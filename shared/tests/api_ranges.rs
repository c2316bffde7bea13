//! Checked ranges and limits on every `/api/*` route (issue 10 item 4): out-of-range, overflowing or
//! inverted `from`/`to`/`limit` answer 400 with a reason naming the parameter, never a panic or the
//! whole history.

use std::sync::Arc;

#[path = "support/http.rs"]
mod http;

use flowscope_core::alerts::RuleSet;
use flowscope_core::embedded::{RedbAlertStore, RedbStore, RedbTraceStore};
use flowscope_core::http::{api, ApiState};
use flowscope_core::ports::{AlertStore, MetricStore};
use flowscope_core::query::MAX_TIMESTAMP;
use serde_json::Value;

const NOW: i64 = 1_760_000_000;
const I64_MIN: &str = "-9223372036854775808";
const I64_MAX: &str = "9223372036854775807";

struct Api {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetricStore> =
        Arc::new(RedbStore::open(&dir.path().join("buckets.redb")).unwrap());
    let traces = Arc::new(RedbTraceStore::open(&dir.path().join("traces")).unwrap());
    let alerts: Arc<dyn AlertStore> =
        Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap());
    let rules = Arc::new(RuleSet::shipped().unwrap());
    Api {
        router: api::router(
            ApiState::new(store, alerts, rules)
                .with_traces(traces)
                .with_clock(Arc::new(|| NOW)),
        ),
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: &str, path: &str, query: &str, body: &str) -> (u16, Value) {
        let answer = http::call(&self.router, method, &http::uri(path, query), body).await;
        (answer.status, answer.body)
    }

    async fn get(&self, path: &str, query: &str) -> (u16, Value) {
        self.call("GET", path, query, "").await
    }
}

/// Asserts a 400 whose reason names `parameter`.
fn refused(answer: (u16, Value), parameter: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(status, 400, "{what}: {body}");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("`{parameter}`")),
        "{what}: the reason should name `{parameter}`: {reason}"
    );
}

#[tokio::test]
async fn metric_and_series_history_refuse_extreme_and_inverted_ranges() {
    let api = api();
    for path in [
        "/api/services/checkout/metrics/cpu",
        "/api/series/00000000000000ff",
    ] {
        refused(
            api.get(path, &format!("from={I64_MIN}")).await,
            "from",
            path,
        );
        refused(
            api.get(path, &format!("from={I64_MIN}&to={I64_MAX}")).await,
            "to",
            path,
        );
        refused(api.get(path, &format!("to={I64_MAX}")).await, "to", path);
        refused(api.get(path, "to=-1").await, "to", path);
        refused(
            api.get(path, &format!("from={}", MAX_TIMESTAMP + 1)).await,
            "from",
            path,
        );
        refused(api.get(path, "from=2000&to=1000").await, "from", path);
        // The whole accepted range still meets the bucket budget check, not an overflow.
        let (status, body) = api
            .get(path, &format!("from=0&to={MAX_TIMESTAMP}&resolution=1h"))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("buckets"),
            "{body}"
        );
        // A sane range passes the checks (and finds nothing here).
        let (status, body) = api.get(path, &format!("from={}", NOW - 600)).await;
        assert_eq!(status, 404, "{body}");
    }
}

#[tokio::test]
async fn the_service_graph_and_trace_lists_refuse_extremes() {
    let api = api();
    refused(
        api.get("/api/graph", &format!("from={I64_MIN}")).await,
        "from",
        "graph",
    );
    refused(
        api.get("/api/graph", &format!("from={I64_MIN}&to={I64_MAX}"))
            .await,
        "to",
        "graph",
    );
    refused(
        api.get("/api/graph", &format!("to={I64_MAX}")).await,
        "to",
        "graph",
    );
    refused(api.get("/api/graph", "from=5&to=5").await, "from", "graph");
    let (status, body) = api.get("/api/graph", &format!("from={}", NOW - 3600)).await;
    assert_eq!(status, 200, "{body}");

    let traces = "/api/services/checkout/traces";
    for limit in ["0", "-1", "201", "18446744073709551616", "x"] {
        refused(
            api.get(traces, &format!("limit={limit}")).await,
            "limit",
            limit,
        );
    }
    assert_eq!(api.get(traces, "limit=200").await.0, 200);
}

#[tokio::test]
async fn alert_history_and_silences_refuse_extremes() {
    let api = api();
    let history = "/api/alerts/history";
    refused(
        api.get(history, &format!("from={I64_MIN}")).await,
        "from",
        "history",
    );
    refused(
        api.get(history, &format!("from={I64_MIN}&to={I64_MAX}"))
            .await,
        "to",
        "history",
    );
    refused(
        api.get(history, &format!("to={I64_MAX}")).await,
        "to",
        "history",
    );
    refused(
        api.get(history, &format!("to={I64_MIN}")).await,
        "to",
        "history",
    );
    refused(api.get(history, "from=10&to=3").await, "from", "history");
    for limit in ["0", "5001", "-3", "99999999999999999999"] {
        refused(
            api.get(history, &format!("limit={limit}")).await,
            "limit",
            limit,
        );
    }
    let (status, body) = api
        .get(history, &format!("from=0&to={MAX_TIMESTAMP}&limit=10"))
        .await;
    assert_eq!(status, 200, "{body}");
    refused(
        api.get("/api/alerts/dead-letters", "limit=0").await,
        "limit",
        "dead letters",
    );

    // A silence stamped at the extremes is refused instead of overflowing `ends_at - starts_at`.
    let silence = |starts_at: &str, ends_at: &str| {
        format!(
            r#"{{"matchers":[{{"name":"service","value":"api"}}],"starts_at":{starts_at},"ends_at":{ends_at},"created_by":"test"}}"#
        )
    };
    refused(
        api.call(
            "POST",
            "/api/silences",
            "",
            &silence(I64_MIN, &(NOW + 60).to_string()),
        )
        .await,
        "starts_at",
        "silence",
    );
    refused(
        api.call(
            "POST",
            "/api/silences",
            "",
            &silence(&NOW.to_string(), I64_MAX),
        )
        .await,
        "ends_at",
        "silence",
    );
    let (status, body) = api
        .call(
            "POST",
            "/api/silences",
            "",
            &silence(&NOW.to_string(), &(NOW + 60).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
