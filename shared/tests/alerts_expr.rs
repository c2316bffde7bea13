//! Alert rules written as expressions (issue 15 item 3): the same levels, `for`, `keep_firing_for`,
//! hysteresis, no-data handling and state machine as metric rules, one alert per series of the
//! expression's result, firing and resolving at exact times.

mod alerts_support;

use alerts_support::{brief, minute, Fixture};
use flowscope_core::alerts::state::Reason;
use flowscope_core::alerts::{AlertTransition, RuleSet, TransitionKind};
use flowscope_core::model::MetricKind;

const ROUTE_ERRORS: &str = r#"settings:
  evaluation_delay: 0s
rules:
  - name: route-errors
    expr: 100 * sum by (job, http_route) (rate(http_server_errors[1m])) / sum by (job, http_route) (rate(http_server_requests[1m]))
    unit: "%"
    condition: above
    warning: 5
    critical: 10
    for: 2m
    keep_firing_for: 1m
    hysteresis: 1
"#;

/// Errors per 100 requests of `/pay` in minute `m`: ok, 7% for 5 minutes, a 20% minute, 7% again, a
/// minute at 4.5% (inside the hysteresis band under 5%), then none.
fn pay_errors(m: i64) -> f64 {
    match m {
        0 => 0.0,
        1..=5 => 7.0,
        6 => 20.0,
        7 | 8 => 7.0,
        9 => 4.5,
        _ => 0.0,
    }
}

async fn evaluate_every_10s(fx: &Fixture, rules: &str, from: i64, to: i64) -> Vec<AlertTransition> {
    let engine = fx.engine(rules);
    let mut out = Vec::new();
    let mut now = from;
    while now < to {
        let report = engine.evaluate_report(now).await.unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        out.extend(report.transitions);
        now += 10;
    }
    out
}

#[tokio::test]
async fn an_expression_rule_fires_escalates_and_resolves_per_route_at_exact_times() {
    let fx = Fixture::new();
    for m in 0..15 {
        for (route, errors) in [("/pay", pay_errors(m)), ("/cart", 1.0)] {
            let attrs = [("http.route", route)];
            fx.record(
                "checkout",
                "http.server.requests",
                &attrs,
                MetricKind::Counter,
                m,
                &[100.0],
            )
            .await;
            fx.record(
                "checkout",
                "http.server.errors",
                &attrs,
                MetricKind::Counter,
                m,
                &[errors],
            )
            .await;
        }
    }
    let transitions = evaluate_every_10s(&fx, ROUTE_ERRORS, minute(1), minute(15)).await;
    // The sample at `now` is the minute before it, as for metric rules' 1m windows.
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
    for t in &transitions {
        assert_eq!(
            t.labels.get("service").map(String::as_str),
            Some("checkout")
        );
        assert_eq!(
            t.labels.get("http_route").map(String::as_str),
            Some("/pay"),
            "/cart stays at 1%"
        );
    }
    let firing = &transitions[1];
    assert!(
        (firing.value.unwrap() - 7.0).abs() < 1e-9,
        "{:?}",
        firing.value
    );
    assert!(
        firing.summary.contains("100 * sum by"),
        "{}",
        firing.summary
    );
}

#[tokio::test]
async fn an_expression_rule_without_data_fires_no_data_and_resolves_when_data_returns() {
    let fx = Fixture::new();
    for m in [0, 1, 2, 9] {
        fx.record("api", "queue.depth", &[], MetricKind::Gauge, m, &[10.0])
            .await;
    }
    let rules = "settings:\n  evaluation_delay: 0s\nrules:\n  - name: queue\n    expr: max(queue_depth)\n    condition: above\n    warning: 1000\n    no_data:\n      after: 3m\n      severity: critical\n";
    let transitions = evaluate_every_10s(&fx, rules, minute(1), minute(12)).await;
    // Minute 2 is the last sample (seen until minute 4); 3 minutes without one fire at minute 7; the
    // sample of minute 9 (seen from minute 10) resolves it.
    assert_eq!(
        brief(&transitions),
        vec![
            (minute(7), TransitionKind::Firing, Some("critical")),
            (minute(10), TransitionKind::Resolved, Some("critical")),
        ]
    );
    assert_eq!(transitions[0].reason, Some(Reason::NoData));
}

#[test]
fn expression_rules_are_validated_with_the_position_of_the_error() {
    let err = RuleSet::parse(
        "rules:\n  - name: bad\n    expr: sum(rate(x[5m])\n    condition: above\n    warning: 1\n",
        "rules.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("rules.yaml:") && err.contains("`expr`") && err.contains("at position 16"),
        "{err}"
    );
    let err = RuleSet::parse(
        "rules:\n  - name: bad\n    expr: x\n    window: 5m\n    condition: above\n    warning: 1\n",
        "rules.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`window` does not apply to an `expr` rule"),
        "{err}"
    );
    // The shipped rules carry an expression rule and still load.
    let shipped = RuleSet::shipped().unwrap();
    assert!(shipped
        .rules
        .iter()
        .any(|r| matches!(r.signal, flowscope_core::alerts::rules::Signal::Expr(_))));
}

#[tokio::test]
async fn expression_alerts_are_notified_through_the_log_sink_one_json_line_each() {
    use std::sync::{Arc, Mutex};

    use flowscope_core::alerts::log_sink::LogNotifier;
    use flowscope_core::alerts::Dispatcher;

    let fx = Fixture::new();
    for m in 0..15 {
        for (route, errors) in [("/pay", pay_errors(m)), ("/cart", 1.0)] {
            let attrs = [("http.route", route)];
            fx.record(
                "checkout",
                "http.server.requests",
                &attrs,
                MetricKind::Counter,
                m,
                &[100.0],
            )
            .await;
            fx.record(
                "checkout",
                "http.server.errors",
                &attrs,
                MetricKind::Counter,
                m,
                &[errors],
            )
            .await;
        }
    }
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let captured = lines.clone();
    let sink = LogNotifier::with_writer("log", move |line| {
        captured.lock().unwrap().push(line.to_string())
    });
    let rules = RuleSet::parse(
        &format!("notifications:\n  group_wait: 0s\n  sinks:\n    - name: log\n      kind: log\n{ROUTE_ERRORS}"),
        "rules.yaml",
    )
    .unwrap();
    let dispatcher = Dispatcher::new(
        fx.alerts.clone(),
        vec![Arc::new(sink)],
        &rules.notifications,
    );
    let engine = fx.engine(&format!("notifications:\n  group_wait: 0s\n{ROUTE_ERRORS}"));
    let mut now = minute(1);
    while now < minute(15) {
        let report = engine.evaluate_report(now).await.unwrap();
        dispatcher.submit(&report.transitions, now).await.unwrap();
        for delivery in dispatcher.flush_due(now).await {
            assert!(delivery.delivered(), "{:?}", delivery.error);
        }
        now += 10;
    }
    let lines = lines.lock().unwrap();
    // One line per transition here (group_wait 0): pending is not notified; firing, escalated,
    // de-escalated and resolved are.
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            assert!(!l.contains('\n'), "one line: {l}");
            serde_json::from_str(l).unwrap()
        })
        .collect();
    let kinds: Vec<(&str, &str)> = parsed
        .iter()
        .map(|n| {
            (
                n["status"].as_str().unwrap(),
                n["alerts"][0]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("firing", "firing"),
            ("firing", "escalated"),
            ("firing", "deescalated"),
            ("resolved", "resolved")
        ],
        "{lines:?}"
    );
    for n in &parsed {
        assert_eq!(n["service"], "checkout");
        assert_eq!(n["alerts"][0]["rule"], "route-errors");
        assert_eq!(n["alerts"][0]["labels"]["http_route"], "/pay");
    }
}

#[test]
fn a_log_sink_takes_no_url() {
    let err = RuleSet::parse(
        "notifications:\n  sinks:\n    - name: log\n      kind: log\n      url: http://x\nrules: []\n",
        "rules.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("a `log` sink takes no `url`"), "{err}");
}
