//! The alert engine on synthetic series in a real (temporary) store: each rule kind fires and resolves
//! at the right time, and concurrent evaluators never record a transition twice.

mod alerts_support;

use alerts_support::{brief, minute, series_key, Engine, Fixture, T0};
use flowscope_core::alerts::state::Reason;
use flowscope_core::alerts::{AlertEngine, AlertStatus, AlertTransition, RuleSet, TransitionKind};
use flowscope_core::model::MetricKind;
use flowscope_core::ports::AlertStore;
use flowscope_core::testing::FailingStore;

const LATENCY: &str = "http.server.request.duration";
const REQUESTS: &str = "http.server.requests";
const ERRORS: &str = "http.server.errors";

fn latency_rules(hysteresis: f64) -> String {
    format!(
        "settings:\n  evaluation_delay: 0s\nrules:\n  - name: latency\n    metric: {LATENCY}\n    aggregation: p95\n    unit: ms\n    window: 1m\n    condition: above\n    warning: 500\n    critical: 1000\n    for: 2m\n    keep_firing_for: 1m\n    hysteresis: {hysteresis}\n"
    )
}

/// p95 latency per minute: ok, warning for 5 minutes, a critical minute, warning again, a minute
/// just under the warning threshold (inside the hysteresis band), then ok.
fn latency_at(m: i64) -> f64 {
    match m {
        0 => 100.0,
        1..=5 => 700.0,
        6 => 1500.0,
        7 | 8 => 700.0,
        9 => 480.0,
        _ => 100.0,
    }
}

async fn record_latency(fx: &Fixture, minutes: std::ops::Range<i64>) {
    for m in minutes {
        fx.record(
            "checkout",
            LATENCY,
            &[],
            MetricKind::Histogram,
            m,
            &[latency_at(m); 20],
        )
        .await;
    }
}

/// Evaluates every 10 s over `[from, to)` and returns every transition, in order.
async fn evaluate_every_10s(engine: &Engine, from: i64, to: i64) -> Vec<AlertTransition> {
    let mut out = Vec::new();
    let mut now = from;
    while now < to {
        out.extend(engine.evaluate(now).await.unwrap());
        now += 10;
    }
    out
}

#[tokio::test]
async fn threshold_rule_waits_for_for_escalates_deescalates_and_resolves_with_hysteresis() {
    let fx = Fixture::new();
    record_latency(&fx, 0..15).await;
    let engine = fx.engine(&latency_rules(50.0));
    let transitions = evaluate_every_10s(&engine, minute(1), minute(15)).await;
    // Window = the minute before `now`. Pending when minute 1 is seen, firing 2m later; critical
    // minute 6 escalates at once; de-escalates 1m (keep_firing_for) after minute 7 came back to warning;
    // minute 9 (480 ms) stays inside the 50 ms hysteresis band, so the alert resolves only 1m after the
    // first ok minute (10).
    assert_eq!(
        brief(&transitions),
        vec![
            (minute(2), TransitionKind::Pending, Some("warning")),
            (minute(4), TransitionKind::Firing, Some("warning")),
            (minute(7), TransitionKind::Escalated, Some("critical")),
            (minute(9), TransitionKind::Deescalated, Some("warning")),
            (minute(12), TransitionKind::Resolved, Some("warning")),
        ]
    );
    let firing = &transitions[1];
    assert_eq!(
        firing.labels.get("service").map(String::as_str),
        Some("checkout")
    );
    assert!(
        firing
            .summary
            .contains("p95 of http.server.request.duration"),
        "{}",
        firing.summary
    );
    // History holds exactly what was returned, newest first.
    let mut history = fx.alerts.history(T0, minute(20), 100).await.unwrap();
    history.reverse();
    assert_eq!(brief(&history), brief(&transitions));
    let state = fx
        .alerts
        .get_state(&firing.fingerprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, AlertStatus::Resolved);
}

#[tokio::test]
async fn without_hysteresis_a_value_just_under_the_threshold_starts_the_resolve_timer() {
    let fx = Fixture::new();
    record_latency(&fx, 0..15).await;
    let engine = fx.engine(&latency_rules(0.0));
    let transitions = evaluate_every_10s(&engine, minute(1), minute(15)).await;
    let resolved = transitions
        .iter()
        .find(|t| t.kind == TransitionKind::Resolved)
        .expect("resolves");
    // Minute 9 (480 ms) already counts as ok: resolved 1m after it was seen, a minute earlier than
    // with hysteresis.
    assert_eq!(resolved.at, minute(11));
}

#[tokio::test]
async fn no_data_fires_after_the_series_is_silent_and_resolves_when_it_reports_again() {
    let fx = Fixture::new();
    let rules = format!(
        "settings:\n  evaluation_delay: 0s\nrules:\n  - name: throughput\n    metric: {REQUESTS}\n    aggregation: rate\n    window: 1m\n    condition: below\n    warning: 100\n    critical: 50\n    no_data:\n      after: 5m\n      severity: critical\n"
    );
    let engine = fx.engine(&rules);
    let reporting = |m: i64| (0..10).contains(&m) || (20..26).contains(&m);
    let mut transitions = Vec::new();
    let mut now = minute(1);
    while now < minute(26) {
        // A minute's data arrives when the minute is over.
        if now % 60 == T0 % 60 {
            let m = (now - T0) / 60 - 1;
            if reporting(m) {
                // 200 requests/s: a counter's increase per minute.
                fx.record("api", REQUESTS, &[], MetricKind::Counter, m, &[12_000.0])
                    .await;
            }
        }
        transitions.extend(engine.evaluate(now).await.unwrap());
        now += 10;
    }
    // Last point at minute 9's end (T0 + 599): silent for 5m at T0 + 899, first evaluation after
    // that fires at once (no `for`). The empty windows before it did not count as "0 req/s".
    assert_eq!(
        brief(&transitions),
        vec![
            (minute(15), TransitionKind::Firing, Some("critical")),
            (minute(21), TransitionKind::Resolved, Some("critical")),
        ]
    );
    assert_eq!(transitions[0].reason, Some(Reason::NoData));
    assert!(
        transitions[0].summary.contains("no data"),
        "{}",
        transitions[0].summary
    );
}

#[tokio::test]
async fn anomaly_rule_fires_when_the_signal_leaves_its_baseline_and_resolves_after() {
    let fx = Fixture::new();
    let rules = format!(
        "settings:\n  evaluation_delay: 0s\nrules:\n  - name: rate-anomaly\n    type: anomaly\n    metric: {REQUESTS}\n    aggregation: rate\n    unit: req/s\n    window: 1m\n    condition: outside\n    warning: 4\n    critical: 6\n    keep_firing_for: 3m\n    baseline:\n      half_life: 1h\n      warmup: 10\n      min_stddev: 1\n"
    );
    let noise = [-2.0, 1.0, 3.0, -1.0, 0.0, 2.0, -3.0];
    let rate_at = |m: i64| {
        if (40..45).contains(&m) {
            300.0
        } else {
            100.0 + noise[(m % 7) as usize]
        }
    };
    for m in 0..60 {
        fx.record(
            "api",
            REQUESTS,
            &[],
            MetricKind::Counter,
            m,
            &[rate_at(m) * 60.0],
        )
        .await;
    }
    let engine = fx.engine(&rules);
    let transitions = evaluate_every_10s(&engine, minute(1), minute(60)).await;
    let firings: Vec<&AlertTransition> = transitions
        .iter()
        .filter(|t| t.kind == TransitionKind::Firing)
        .collect();
    assert_eq!(firings.len(), 1, "{:?}", brief(&transitions));
    // Noise of ±3 around 100 never fired; the first spike minute (40) did, as soon as it was seen.
    assert_eq!(
        brief(&transitions)[0],
        (minute(41), TransitionKind::Firing, Some("critical"))
    );
    assert_eq!(firings[0].reason, Some(Reason::Anomaly));
    let resolved = transitions
        .iter()
        .find(|t| t.kind == TransitionKind::Resolved)
        .expect("resolves once the rate is back to normal");
    assert!(
        resolved.at > minute(45) && resolved.at < minute(60),
        "resolved at minute {}",
        (resolved.at - T0) / 60
    );
    // The baseline is persisted with the alert and sampled once per minute (59 windows), not once
    // per evaluation (354).
    let state = fx
        .alerts
        .get_state(&firings[0].fingerprint)
        .await
        .unwrap()
        .unwrap();
    let baseline = state.baseline.expect("baseline stored");
    assert_eq!(baseline.samples, 59);
    assert!((baseline.mean - 100.0).abs() < 30.0, "{}", baseline.mean);
}

#[tokio::test]
async fn ratio_rule_alerts_per_service_and_a_missing_error_counter_means_zero_errors() {
    let fx = Fixture::new();
    let rules = format!(
        "settings:\n  evaluation_delay: 0s\nrules:\n  - name: error-rate\n    ratio:\n      numerator: {{ metric: {ERRORS} }}\n      denominator: {{ metric: {REQUESTS} }}\n    aggregation: rate\n    scale: 100\n    unit: \"%\"\n    window: 5m\n    condition: above\n    warning: 5\n    critical: 10\n"
    );
    for m in 0..6 {
        // api: 100 req/s, 20 errors/s. shop: 10 req/s, 0.6 errors/s. web: 50 req/s, no error series.
        fx.record("api", REQUESTS, &[], MetricKind::Counter, m, &[6000.0])
            .await;
        fx.record("api", ERRORS, &[], MetricKind::Counter, m, &[1200.0])
            .await;
        fx.record("shop", REQUESTS, &[], MetricKind::Counter, m, &[600.0])
            .await;
        fx.record("shop", ERRORS, &[], MetricKind::Counter, m, &[36.0])
            .await;
        fx.record("web", REQUESTS, &[], MetricKind::Counter, m, &[3000.0])
            .await;
    }
    let engine = fx.engine(&rules);
    let mut transitions = engine.evaluate(minute(6)).await.unwrap();
    transitions.sort_by(|a, b| a.labels.cmp(&b.labels));
    let seen: Vec<(&str, Option<&str>, f64)> = transitions
        .iter()
        .map(|t| {
            (
                t.labels["service"].as_str(),
                t.severity.map(|s| s.as_str()),
                (t.value.unwrap() * 1000.0).round() / 1000.0,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("api", Some("critical"), 20.0),
            ("shop", Some("warning"), 6.0)
        ]
    );
    assert_ne!(transitions[0].fingerprint, transitions[1].fingerprint);
}

#[tokio::test]
async fn throughput_is_summed_over_series_and_group_by_splits_alerts() {
    let fx = Fixture::new();
    let rule = |name: &str, group_by: &str| {
        format!("  - name: {name}\n    metric: {REQUESTS}\n    aggregation: rate\n    window: 1m\n    condition: below\n    warning: 100\n    critical: 50\n{group_by}")
    };
    let rules = format!(
        "settings:\n  evaluation_delay: 0s\nrules:\n{}{}",
        rule("throughput", ""),
        rule("throughput-by-route", "    group_by: [route]\n")
    );
    // 60 req/s on /a and 30 req/s on /b: 90 req/s for the service.
    fx.record(
        "api",
        REQUESTS,
        &[("route", "/a")],
        MetricKind::Counter,
        0,
        &[3600.0],
    )
    .await;
    fx.record(
        "api",
        REQUESTS,
        &[("route", "/b")],
        MetricKind::Counter,
        0,
        &[1800.0],
    )
    .await;
    let engine = fx.engine(&rules);
    let transitions = engine.evaluate(minute(1)).await.unwrap();
    let mut seen: Vec<(String, Option<String>, Option<&str>, f64)> = transitions
        .iter()
        .map(|t| {
            (
                t.rule.clone(),
                t.labels.get("route").cloned(),
                t.severity.map(|s| s.as_str()),
                t.value.unwrap().round(),
            )
        })
        .collect();
    seen.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        seen,
        vec![
            ("throughput".into(), None, Some("warning"), 90.0),
            (
                "throughput-by-route".into(),
                Some("/a".into()),
                Some("warning"),
                60.0
            ),
            (
                "throughput-by-route".into(),
                Some("/b".into()),
                Some("critical"),
                30.0
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_evaluators_record_each_transition_exactly_once() {
    let fx = Fixture::new();
    record_latency(&fx, 0..15).await;
    let engines: Vec<Engine> = (0..4).map(|_| fx.engine(&latency_rules(50.0))).collect();
    let mut all = Vec::new();
    let mut now = minute(1);
    while now < minute(15) {
        let runs = engines.iter().map(|e| e.evaluate(now));
        for result in futures::future::join_all(runs).await {
            all.extend(result.unwrap());
        }
        now += 10;
    }
    all.sort_by_key(|t| t.at);
    // The same five transitions as one evaluator records: none twice, none lost.
    let kinds: Vec<(i64, TransitionKind)> = all.iter().map(|t| (t.at, t.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (minute(2), TransitionKind::Pending),
            (minute(4), TransitionKind::Firing),
            (minute(7), TransitionKind::Escalated),
            (minute(9), TransitionKind::Deescalated),
            (minute(12), TransitionKind::Resolved),
        ]
    );
    let history = fx.alerts.history(T0, minute(20), 100).await.unwrap();
    assert_eq!(history.len(), 5);
}

#[tokio::test]
async fn an_older_evaluation_cannot_undo_a_newer_one() {
    let fx = Fixture::new();
    record_latency(&fx, 0..15).await;
    let engine = fx.engine(&latency_rules(50.0));
    // Fires (pending for 2m) by minute 4, then a late evaluator with a clock at minute 2 arrives.
    let mut fired = evaluate_every_10s(&engine, minute(1), minute(5)).await;
    assert_eq!(fired.last().unwrap().kind, TransitionKind::Firing);
    let late = engine.evaluate(minute(1)).await.unwrap();
    assert!(late.is_empty(), "{:?}", brief(&late));
    let state = fx
        .alerts
        .get_state(&fired.pop().unwrap().fingerprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, AlertStatus::Firing);
}

#[tokio::test]
async fn alerts_of_a_removed_rule_resolve() {
    let fx = Fixture::new();
    fx.record("api", REQUESTS, &[], MetricKind::Counter, 0, &[60.0])
        .await;
    let low = format!(
        "settings:\n  evaluation_delay: 0s\nrules:\n  - name: throughput\n    metric: {REQUESTS}\n    aggregation: rate\n    window: 1m\n    condition: below\n    warning: 100\n"
    );
    let fired = fx.engine(&low).evaluate(minute(1)).await.unwrap();
    assert_eq!(fired[0].kind, TransitionKind::Firing);
    let without = fx.engine("rules: []\n");
    let resolved = without.evaluate(minute(1) + 10).await.unwrap();
    assert_eq!(
        brief(&resolved),
        vec![(minute(1) + 10, TransitionKind::Resolved, Some("warning"))]
    );
    assert_eq!(resolved[0].reason, Some(Reason::RuleRemoved));
    assert!(without.evaluate(minute(1) + 20).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreadable_series_fails_only_its_own_alert() {
    let fx = Fixture::new();
    let cpu = "process.cpu.utilization";
    for service in ["api", "web", "zeta"] {
        fx.record(service, cpu, &[], MetricKind::Gauge, 0, &[0.97])
            .await;
    }
    let rules = format!(
        "settings:\n  evaluation_delay: 0s\nrules:\n  - name: cpu\n    metric: {cpu}\n    aggregation: avg\n    scale: 100\n    window: 1m\n    condition: above\n    warning: 80\n"
    );
    // Reading one series' buckets fails.
    let metrics = FailingStore::new(fx.metrics.clone());
    metrics.fail_bucket_reads(series_key("web", cpu, &[]).id());
    let rules = std::sync::Arc::new(RuleSet::parse(&rules, "rules.yaml").unwrap());
    let engine = AlertEngine::new(metrics, fx.alerts.clone(), rules);
    let report = engine.evaluate_report(minute(1)).await.unwrap();
    let mut fired: Vec<&str> = report
        .transitions
        .iter()
        .map(|t| t.labels["service"].as_str())
        .collect();
    fired.sort();
    // web's alert could not be evaluated; the other services' alerts still were.
    assert_eq!(fired, vec!["api", "zeta"]);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].rule, "cpu");
    assert_eq!(report.alerts, 3);
}
