//! The alerting HTTP API over the embedded store: active alerts, acknowledgements, history, silences
//! and the loaded rules.

mod alerts_support;

#[path = "support/http.rs"]
mod http;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use alerts_support::{minute, Fixture};
use flowscope_core::alerts::{RuleSet, TransitionKind};
use flowscope_core::http::{api, AlertEvents, ApiState};
use flowscope_core::model::MetricKind;
use serde_json::Value;

const RULES: &str = "settings:\n  evaluation_delay: 0s\nnotifications:\n  sinks:\n    - name: slack\n      kind: slack\n      url: http://127.0.0.1:1/secret-token\nrules:\n  - name: cpu\n    description: CPU is high\n    metric: process.cpu.utilization\n    aggregation: avg\n    scale: 100\n    unit: \"%\"\n    window: 1m\n    condition: above\n    warning: 80\n    critical: 95\n  - name: cpu-slow\n    metric: process.cpu.utilization\n    aggregation: avg\n    scale: 100\n    window: 1m\n    condition: above\n    warning: 80\n    for: 10m\n";

struct Setup {
    fx: Fixture,
    api: Api,
    firing: String,
    pending: String,
}

/// api's CPU at 97%: `cpu` fires (critical) and `cpu-slow` is pending, evaluated at minute 1.
async fn setup() -> Setup {
    let fx = Fixture::new();
    fx.record(
        "api",
        "process.cpu.utilization",
        &[],
        MetricKind::Gauge,
        0,
        &[0.97],
    )
    .await;
    let transitions = fx.engine(RULES).evaluate(minute(1)).await.unwrap();
    let find = |kind| {
        transitions
            .iter()
            .find(|t| t.kind == kind)
            .unwrap()
            .fingerprint
            .clone()
    };
    let (firing, pending) = (find(TransitionKind::Firing), find(TransitionKind::Pending));
    let rules = Arc::new(RuleSet::parse(RULES, "rules.yaml").unwrap());
    let now = Arc::new(AtomicI64::new(0));
    let clock = now.clone();
    let api = Api {
        router: api::router(
            ApiState::new(fx.metrics.clone(), fx.alerts.clone(), rules)
                .with_clock(Arc::new(move || clock.load(Ordering::SeqCst))),
        ),
        now,
    };
    Setup {
        fx,
        api,
        firing,
        pending,
    }
}

/// The core's `/api/*` router and the clock it reads.
struct Api {
    router: axum::Router,
    now: Arc<AtomicI64>,
}

/// `method path?query` with `body` at `now`, through the router.
async fn send(
    api: &Api,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
    now: i64,
) -> http::Answer {
    api.now.store(now, Ordering::SeqCst);
    http::call(&api.router, method, &http::uri(path, query), body).await
}

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
    now: i64,
) -> (u16, Value) {
    let answer = send(api, method, path, query, body, now).await;
    assert_ne!(answer.body, Value::Null, "a JSON body");
    (answer.status, answer.body)
}

#[tokio::test]
async fn active_alerts_list_firing_before_pending_with_rule_details() {
    let s = setup().await;
    let (status, body) = call(&s.api, "GET", "/api/alerts", "", "", minute(2)).await;
    assert_eq!(status, 200);
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["fingerprint"], s.firing.as_str());
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["description"], "CPU is high");
    assert_eq!(alerts[0]["labels"]["service"], "api");
    assert!((alerts[0]["value"].as_f64().unwrap() - 97.0).abs() < 1e-9);
    assert_eq!(alerts[0]["silenced"], false);
    assert_eq!(alerts[0]["threshold"], 95.0);
    assert_eq!(alerts[0]["unit"], "%");
    let summary = alerts[0]["summary"].as_str().unwrap();
    assert!(summary.contains("is 97% (critical above 95%)"), "{summary}");
    assert_eq!(alerts[1]["status"], "pending");
}

#[tokio::test]
async fn acknowledging_records_who_and_when_once_and_only_for_firing_alerts() {
    let s = setup().await;
    let now = minute(2);
    let path = format!("/api/alerts/{}/ack", s.firing);
    let answer = send(&s.api, "POST", &path, "", r#"{"by":"ann"}"#, now).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let events = &answer
        .extensions
        .get::<AlertEvents>()
        .expect("the ack's events ride on the response")
        .0;
    assert_eq!(events.len(), 1, "the ack is pushed to live clients");
    assert_eq!(events[0].kind, TransitionKind::Acknowledged);
    assert_eq!(events[0].by.as_deref(), Some("ann"));

    // A second acknowledgement keeps the first.
    let (status, body) = call(&s.api, "POST", &path, "", r#"{"by":"bob"}"#, now + 5).await;
    assert_eq!(status, 200);
    assert_eq!(body["alert"]["ack"]["by"], "ann");

    let (_, active) = call(&s.api, "GET", "/api/alerts", "", "", now + 10).await;
    assert_eq!(active["alerts"][0]["acknowledged"]["by"], "ann");
    assert_eq!(active["alerts"][0]["acknowledged"]["at"], now);

    let (_, history) = call(&s.api, "GET", "/api/alerts/history", "", "", now + 10).await;
    let kinds: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "acknowledged").count(), 1);

    let pending = format!("/api/alerts/{}/ack", s.pending);
    assert_eq!(
        call(&s.api, "POST", &pending, "", r#"{"by":"ann"}"#, now)
            .await
            .0,
        409
    );
    assert_eq!(
        call(
            &s.api,
            "POST",
            "/api/alerts/0000000000000000/ack",
            "",
            r#"{"by":"ann"}"#,
            now
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&s.api, "POST", &path, "", r#"{"who":"ann"}"#, now)
            .await
            .0,
        400
    );
    assert_eq!(
        call(&s.api, "POST", &path, "", r#"{"by":"  "}"#, now)
            .await
            .0,
        400
    );
    assert_eq!(call(&s.api, "GET", &path, "", "", now).await.0, 405);
}

#[tokio::test]
async fn history_is_filtered_by_time_and_labels() {
    let s = setup().await;
    let all = call(&s.api, "GET", "/api/alerts/history", "", "", minute(2))
        .await
        .1;
    assert_eq!(all["history"].as_array().unwrap().len(), 2);
    let before = format!("from={}&to={}", minute(0), minute(1));
    let none = call(&s.api, "GET", "/api/alerts/history", &before, "", minute(2))
        .await
        .1;
    assert!(none["history"].as_array().unwrap().is_empty());
    let by_rule = call(
        &s.api,
        "GET",
        "/api/alerts/history",
        "rule=cpu-slow",
        "",
        minute(2),
    )
    .await
    .1;
    let entries = by_rule["history"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["kind"], "pending");
    assert_eq!(
        call(
            &s.api,
            "GET",
            "/api/alerts/history",
            "from=x",
            "",
            minute(2)
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &s.api,
            "GET",
            "/api/alerts/history",
            "limit=0",
            "",
            minute(2)
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn silences_are_created_listed_shown_on_alerts_and_deleted() {
    let s = setup().await;
    let now = minute(2);
    let request = r#"{"matchers":[{"name":"service","value":"api"},{"name":"alertname","value":"cpu*","op":"=~"}],"duration":"2h","created_by":"ann","comment":"maintenance"}"#;
    let (status, created) = call(&s.api, "POST", "/api/silences", "", request, now).await;
    assert_eq!(status, 201, "{created}");
    let id = created["silence"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["silence"]["ends_at"], now + 7200);

    let (_, listed) = call(&s.api, "GET", "/api/silences", "", "", now).await;
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    let (_, active) = call(&s.api, "GET", "/api/alerts", "", "", now).await;
    assert!(active["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["silenced"] == true));

    // Ended silences are not listed unless asked for.
    let (_, later) = call(&s.api, "GET", "/api/silences", "", "", now + 7200).await;
    assert!(later["silences"].as_array().unwrap().is_empty());
    let (_, everything) = call(&s.api, "GET", "/api/silences", "all=true", "", now + 7200).await;
    assert_eq!(everything["silences"].as_array().unwrap().len(), 1);

    let path = format!("/api/silences/{id}");
    assert_eq!(call(&s.api, "DELETE", &path, "", "", now).await.0, 200);
    assert_eq!(call(&s.api, "DELETE", &path, "", "", now).await.0, 404);
    let (_, active) = call(&s.api, "GET", "/api/alerts", "", "", now).await;
    assert!(active["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["silenced"] == false));

    let no_matchers = r#"{"matchers":[],"duration":"1h","created_by":"ann"}"#;
    assert_eq!(
        call(&s.api, "POST", "/api/silences", "", no_matchers, now)
            .await
            .0,
        400
    );
    let both = r#"{"matchers":[{"name":"service","value":"api"}],"duration":"1h","ends_at":1,"created_by":"ann"}"#;
    assert_eq!(
        call(&s.api, "POST", "/api/silences", "", both, now).await.0,
        400
    );
    assert_eq!(
        call(&s.api, "POST", "/api/silences", "", "not json", now)
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn rules_are_listed_without_sink_secrets() {
    let s = setup().await;
    let (status, body) = call(&s.api, "GET", "/api/alert-rules", "", "", minute(2)).await;
    assert_eq!(status, 200);
    assert!(!body.to_string().contains("secret-token"), "{body}");
    assert_eq!(body["rules"][0]["name"], "cpu");
    assert_eq!(body["rules"][0]["window"], "1m");
    assert_eq!(body["rules"][1]["for"], "10m");
    assert_eq!(body["notifications"]["sinks"][0]["kind"], "slack");
    assert_eq!(s.fx.engine(RULES).rules().rules.len(), 2);
}

#[tokio::test]
async fn routes_are_recognised_and_unknown_ones_are_404() {
    let s = setup().await;
    assert_eq!(call(&s.api, "GET", "/api/alertsx", "", "", 0).await.0, 404);
    assert_eq!(
        call(&s.api, "GET", "/api/alerts/a/b/c", "", "", 0).await.0,
        404
    );
    let refused = send(&s.api, "PUT", "/api/silences", "", "", 0).await;
    assert_eq!(refused.status, 405);
    assert_eq!(refused.headers["allow"], "GET,HEAD,POST");
    assert!(refused.body["error"].as_str().unwrap().contains("PUT"));
}
