//! The rules file: the shipped defaults load and say what issue 5 asks for, and mistakes are reported
//! with the file name, line and column.

use std::path::Path;

use flowscope_core::alerts::rules::{
    Aggregation, Condition, RuleKind, RuleSet, RulesError, Signal,
};
use flowscope_core::alerts::Severity;

fn shipped() -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/alert-rules.yaml");
    RuleSet::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses `text` and returns (line, column, message) of the error.
fn error_of(text: &str) -> (Option<usize>, Option<usize>, String) {
    match RuleSet::parse(text, "rules.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(RulesError::Invalid {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        Err(other) => panic!("unexpected error {other}"),
    }
}

const GOOD_RULE: &str = "  - name: cpu\n    metric: process.cpu.utilization\n    aggregation: avg\n    window: 5m\n    condition: above\n    warning: 80\n    critical: 95\n";

#[test]
fn shipped_defaults_cover_latency_errors_cpu_memory_and_throughput() {
    let set = shipped();
    let thresholds = |name: &str| {
        let rule = set.rule(name).unwrap_or_else(|| panic!("no rule {name}"));
        (
            rule.aggregation,
            rule.condition,
            rule.warning,
            rule.critical,
        )
    };
    assert_eq!(
        thresholds("high-latency"),
        (
            Aggregation::P95,
            Condition::Above,
            Some(500.0),
            Some(1000.0)
        )
    );
    assert_eq!(
        thresholds("high-error-rate"),
        (Aggregation::Rate, Condition::Above, Some(5.0), Some(10.0))
    );
    assert_eq!(
        thresholds("high-cpu"),
        (Aggregation::Avg, Condition::Above, Some(80.0), Some(95.0))
    );
    assert_eq!(
        thresholds("high-memory"),
        (Aggregation::Avg, Condition::Above, Some(80.0), Some(95.0))
    );
    assert_eq!(
        thresholds("low-throughput"),
        (Aggregation::Rate, Condition::Below, Some(100.0), Some(50.0))
    );
    let latency = set.rule("high-latency").unwrap();
    assert_eq!(latency.unit, "ms");
    assert!(
        matches!(&latency.signal, Signal::Series(s) if s.metric == "http.server.request.duration")
    );
    let errors = set.rule("high-error-rate").unwrap();
    assert!(
        matches!(&errors.signal, Signal::Ratio { numerator, denominator }
        if numerator.metric == "http.server.errors" && denominator.metric == "http.server.requests")
    );
    assert_eq!(errors.scale, 100.0, "error rate is compared in percent");
    // CPU and memory utilization arrive as 0..1 and are compared in percent.
    assert_eq!(set.rule("high-cpu").unwrap().scale, 100.0);
    let throughput = set.rule("low-throughput").unwrap();
    assert_eq!(
        throughput.no_data.map(|nd| nd.severity),
        Some(Severity::Critical)
    );
    assert!(matches!(
        set.rule("request-rate-anomaly").unwrap().kind,
        RuleKind::Anomaly(_)
    ));
    // Rules apply to every service unless they name one.
    assert!(set.rules.iter().all(|r| r.service.is_none()));
    assert_eq!(set.notifications.group_wait_s, 30);
    assert_eq!(set.settings.history_retention_s, 30 * 86_400);
}

#[test]
fn an_unknown_field_is_reported_at_its_line() {
    let text = format!(
        "rules:\n{GOOD_RULE}  - name: mem\n    metric: m\n    aggregation: avg\n    windw: 5m\n"
    );
    let (line, _, message) = error_of(&text);
    assert_eq!(line, Some(12), "{message}");
    assert!(message.contains("unknown field `windw`"), "{message}");
    assert!(message.contains("rules[1]"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_is_reported_at_the_value() {
    let text = "rules:\n  - name: cpu\n    metric: m\n    aggregation: average\n";
    let (line, column, message) = error_of(text);
    assert_eq!((line, column), (Some(4), Some(18)), "{message}");
    assert!(message.contains("unknown variant `average`"), "{message}");
    let text =
        "rules:\n  - name: cpu\n    metric: m\n    aggregation: avg\n    window: 5 parsecs\n";
    let (line, _, message) = error_of(text);
    assert_eq!(line, Some(5), "{message}");
    assert!(message.contains("invalid duration"), "{message}");
}

#[test]
fn inconsistent_thresholds_are_reported_at_the_rule_with_its_name() {
    let text = format!(
        "rules:\n{GOOD_RULE}\n  # throughput\n  - name: slow\n    metric: m\n    aggregation: rate\n    window: 5m\n    condition: below\n    warning: 50\n    critical: 100\n"
    );
    let (line, _, message) = error_of(&text);
    assert_eq!(line, Some(11), "{message}");
    assert!(message.contains("rule \"slow\""), "{message}");
    assert!(
        message.contains("`critical` (100) must be below `warning` (50)"),
        "{message}"
    );
}

#[test]
fn duplicate_names_are_reported_at_the_second_rule() {
    let text = format!("rules:\n{GOOD_RULE}{GOOD_RULE}");
    let (line, _, message) = error_of(&text);
    assert_eq!(line, Some(9), "{message}");
    assert!(message.contains("same name"), "{message}");
}

#[test]
fn rule_level_mistakes_have_clear_messages() {
    let cases = [
        ("    window: 90s\n", "`window` must be whole minutes"),
        ("    window: 2h\n", "`window` must be whole minutes"),
        (
            "    window: 5m\n    no_data: {after: 30s}\n",
            "`no_data.after` must be at least 1m",
        ),
        (
            "    window: 5m\n    ratio: {numerator: {metric: a}, denominator: {metric: b}}\n",
            "either `metric` or `ratio`",
        ),
        ("    window: 5m\n    group_by: [service]\n", "implied"),
    ];
    for (extra, expected) in cases {
        let text = format!("rules:\n  - name: r\n    metric: m\n    aggregation: avg\n    condition: above\n    warning: 1\n{extra}");
        let (line, _, message) = error_of(&text);
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains(expected), "{extra:?}: {message}");
    }
    let negative = "rules:\n  - name: r\n    metric: m\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 1\n    for: -1\n";
    let (line, _, message) = error_of(negative);
    assert_eq!(line, Some(8), "{message}");
    assert!(message.contains("cannot be negative"), "{message}");
    let outside = "rules:\n  - name: r\n    metric: m\n    aggregation: avg\n    window: 1m\n    condition: outside\n    warning: 1\n";
    assert!(error_of(outside)
        .2
        .contains("applies only to anomaly rules"));
    let anomaly = "rules:\n  - name: r\n    type: anomaly\n    metric: m\n    aggregation: rate\n    window: 1m\n    condition: outside\n    warning: -3\n";
    assert!(error_of(anomaly).2.contains("must be positive"));
    let nothing = "rules:\n  - name: r\n    metric: m\n    aggregation: avg\n    window: 1m\n    condition: above\n";
    assert!(error_of(nothing)
        .2
        .contains("give a `warning` or `critical`"));
}

#[test]
fn file_level_mistakes_are_reported() {
    assert!(error_of("").2.contains("empty"));
    assert!(error_of("rulez: []\n").2.contains("unknown field `rulez`"));
    assert!(error_of("settings: {}\n")
        .2
        .contains("missing field `rules`"));
    assert!(error_of("version: 2\nrules: []\n").2.contains("version 2"));
    let (line, _, message) =
        error_of("rules: []\nnotifications:\n  sinks:\n    - name: a\n      kind: webhook\n      url: ftp://x\n");
    assert_eq!(line, Some(4), "{message}");
    assert!(message.contains("http:// or https://"), "{message}");
    // YAML syntax: a key indented deeper than its siblings.
    let (line, column, message) = error_of("rules:\n  - name: a\n     metric: m\n");
    assert_eq!((line, column), (Some(3), Some(12)), "{message}");
    assert!(
        message.contains("mapping values are not allowed"),
        "{message}"
    );
}

#[test]
fn errors_display_as_file_line_column_message() {
    let error = RuleSet::parse(
        "rules:\n  - name: cpu\n    metric: m\n    aggregation: average\n",
        "alert-rules.yaml",
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("alert-rules.yaml:4:18: rules[0].aggregation: unknown variant"),
        "{text}"
    );
    let missing = RuleSet::load(Path::new("/nonexistent/alert-rules.yaml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("/nonexistent/alert-rules.yaml"),
        "{missing}"
    );
}

/// One rules file serves deployments with and without a sink: an `optional` sink whose variable is
/// unset is left out; a required one is an error naming it; `optional` on a written URL is refused.
#[test]
fn optional_sinks_turn_off_without_their_variable_and_required_ones_fail() {
    use flowscope_core::alerts::webhook::http_sinks;
    let text = format!(
        "notifications:\n  sinks:\n    - {{ name: ops, kind: webhook, url: \"http://127.0.0.1:9/hook\" }}\n    - {{ name: chat, kind: slack, url_env: TEST_CHAT_URL, optional: true }}\n    - {{ name: pager, kind: webhook, url_env: TEST_PAGER_URL }}\nrules:\n{GOOD_RULE}"
    );
    let rules = RuleSet::parse(&text, "rules.yaml").unwrap_or_else(|e| panic!("{e}"));
    let names = |env: &dyn Fn(&str) -> Option<String>| -> Result<Vec<String>, String> {
        http_sinks(&rules.notifications, env)
            .map(|sinks| sinks.iter().map(|s| s.name().to_string()).collect())
    };
    let pager_only = |k: &str| (k == "TEST_PAGER_URL").then(|| "http://127.0.0.1:9/p".to_string());
    assert_eq!(names(&pager_only), Ok(vec!["ops".into(), "pager".into()]));
    let both = |k: &str| {
        k.starts_with("TEST_")
            .then(|| "http://127.0.0.1:9/x".to_string())
    };
    assert_eq!(
        names(&both),
        Ok(vec!["ops".into(), "chat".into(), "pager".into()])
    );
    let error = names(&|_: &str| None).unwrap_err();
    assert!(
        error.contains("\"pager\"") && error.contains("TEST_PAGER_URL"),
        "{error}"
    );

    let text = "notifications:\n  sinks:\n    - { name: ops, kind: webhook, url: \"http://x/hook\", optional: true }\nrules: []\n";
    let (line, _, message) = error_of(text);
    assert_eq!(line, Some(3), "{message}");
    assert!(
        message.contains("`optional` applies to a `url_env` sink"),
        "{message}"
    );
}
