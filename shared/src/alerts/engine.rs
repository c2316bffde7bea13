//! Evaluation of every rule against the store: discover series, read each alert's window, step its
//! state machine, and write the result conditionally.
//!
//! Concurrency: every write is conditional on the version that was read. If another evaluator wrote
//! first, the engine re-reads that alert and steps again from what is stored, so a transition is
//! recorded (and returned, and notified) by exactly one evaluator, and none is lost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{AlertStore, BucketStore, PutOutcome, SeriesCatalog};

use super::evaluate::{self, SeriesWindow};
use super::rules::{format_duration, Condition, NoDataRule, Rule, RuleKind, RuleSet, Signal};
use super::state::{
    fingerprint, step, AlertState, AlertStatus, AlertTransition, Baseline, Labels, Observation,
    Reason, Severity, Timing, TransitionKind,
};
use super::AlertError;
use crate::expr::{EvalError, ExprLimits, QueryTimes};

/// Conditional-write attempts per alert and evaluation before giving up until the next one.
const MAX_WRITE_ATTEMPTS: usize = 5;

/// What one evaluation did.
#[derive(Debug, Default)]
pub struct EvaluationReport {
    /// Transitions this evaluator recorded (another evaluator's are not repeated here).
    pub transitions: Vec<AlertTransition>,
    /// Alerts evaluated.
    pub alerts: usize,
    /// Rules that could not be evaluated this time (read or write failures); the others were.
    pub failures: Vec<RuleFailure>,
}

impl EvaluationReport {
    fn record(&mut self, rule: &str, outcome: Result<Vec<AlertTransition>, AlertError>) {
        match outcome {
            Ok(transitions) => self.transitions.extend(transitions),
            Err(error) => self.failures.push(RuleFailure {
                rule: rule.to_string(),
                error,
            }),
        }
    }
}

#[derive(Debug)]
pub struct RuleFailure {
    pub rule: String,
    pub error: AlertError,
}

pub struct AlertEngine<S: SeriesCatalog + BucketStore + ?Sized, A: AlertStore + ?Sized> {
    metrics: Arc<S>,
    alerts: Arc<A>,
    rules: Arc<RuleSet>,
}

impl<S: SeriesCatalog + BucketStore + ?Sized, A: AlertStore + ?Sized> Clone for AlertEngine<S, A> {
    fn clone(&self) -> Self {
        AlertEngine {
            metrics: self.metrics.clone(),
            alerts: self.alerts.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// The series of one alert: the signal's (the denominator's, for a ratio) and a ratio's numerator.
#[derive(Debug, Default)]
struct Group<'a> {
    labels: Labels,
    primary: Vec<&'a SeriesMeta>,
    numerator: Vec<&'a SeriesMeta>,
}

type WindowCache = HashMap<(SeriesId, i64, i64), SeriesWindow>;

impl<S: SeriesCatalog + BucketStore + ?Sized, A: AlertStore + ?Sized> AlertEngine<S, A> {
    pub fn new(metrics: Arc<S>, alerts: Arc<A>, rules: Arc<RuleSet>) -> Self {
        AlertEngine {
            metrics,
            alerts,
            rules,
        }
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Evaluates every rule at `now` and returns the transitions recorded. Rules that fail are logged
    /// and retried at the next evaluation; only failing to list series or alerts is an error.
    pub async fn evaluate(&self, now_unix_s: i64) -> Result<Vec<AlertTransition>, AlertError> {
        let report = self.evaluate_report(now_unix_s).await?;
        for failure in &report.failures {
            tracing::warn!(rule = %failure.rule, error = %failure.error, "alert rule not evaluated");
        }
        Ok(report.transitions)
    }

    /// [`AlertEngine::evaluate`], with per-rule failures reported instead of logged.
    pub async fn evaluate_report(&self, now: i64) -> Result<EvaluationReport, AlertError> {
        let series = self.discover().await?;
        let states: HashMap<String, AlertState> = self
            .alerts
            .list_states()
            .await
            .map_err(AlertError::Store)?
            .into_iter()
            .map(|s| (s.fingerprint.clone(), s))
            .collect();
        let mut cache = WindowCache::new();
        let mut report = EvaluationReport::default();
        for rule in &self.rules.rules {
            self.evaluate_rule(rule, &series, &states, &mut cache, now, &mut report)
                .await;
        }
        // Alerts of rules that left the rules file must not stay active forever.
        let known: HashSet<&str> = self.rules.rules.iter().map(|r| r.name.as_str()).collect();
        for state in states.values() {
            if known.contains(state.rule.as_str()) || !state.status.is_active() {
                continue;
            }
            report.alerts += 1;
            let removed = Observation {
                level: None,
                value: None,
                reason: Reason::RuleRemoved,
                immediate: true,
            };
            let outcome = self
                .advance(None, state.clone(), |s| (s.clone(), removed.clone()), now)
                .await;
            report.record(&state.rule, outcome);
        }
        Ok(report)
    }

    /// The registered series some rule selects (the registry is the list of what can alert). Only
    /// those are kept for the evaluation: the registry may hold millions of series no rule reads,
    /// and keeping them all cost memory in proportion to every series seen (issue 11).
    async fn discover(&self) -> Result<Vec<SeriesMeta>, AlertError> {
        let mut out = Vec::new();
        for service in self.metrics.list_services().await? {
            let mut series = self.metrics.list_series(&service).await?;
            series.retain(|meta| self.rules.rules.iter().any(|rule| selects(rule, meta)));
            out.extend(series);
        }
        Ok(out)
    }

    /// Evaluates every alert of one rule; an alert that fails is reported and the others go on.
    async fn evaluate_rule(
        &self,
        rule: &Rule,
        series: &[SeriesMeta],
        states: &HashMap<String, AlertState>,
        cache: &mut WindowCache,
        now: i64,
        report: &mut EvaluationReport,
    ) {
        if let Signal::Expr(expr) = &rule.signal {
            self.evaluate_expr_rule(rule, expr, states, now, report)
                .await;
            return;
        }
        let groups = groups(rule, series);
        let window = evaluate::window(now, self.rules.settings.evaluation_delay_s, rule.window_s);
        for (fp, group) in &groups {
            report.alerts += 1;
            let current = states
                .get(fp)
                .cloned()
                .unwrap_or_else(|| AlertState::new(&rule.name, group.labels.clone(), now));
            let outcome = self
                .evaluate_alert(rule, group, current, cache, window, now)
                .await;
            report.record(&rule.name, outcome);
        }
        let present: HashSet<&str> = groups.keys().map(String::as_str).collect();
        self.resolve_missing(rule, states, &present, now, report)
            .await;
    }

    /// Alerts of `rule` not among `present` (their series left the registry, or the expression's
    /// result): their condition no longer holds.
    async fn resolve_missing(
        &self,
        rule: &Rule,
        states: &HashMap<String, AlertState>,
        present: &HashSet<&str>,
        now: i64,
        report: &mut EvaluationReport,
    ) {
        for state in states.values() {
            if state.rule != rule.name
                || present.contains(state.fingerprint.as_str())
                || !state.status.is_active()
            {
                continue;
            }
            report.alerts += 1;
            let gone = Observation {
                level: None,
                value: None,
                reason: Reason::Threshold,
                immediate: false,
            };
            let outcome = self
                .advance(
                    Some(rule),
                    state.clone(),
                    |s| (s.clone(), gone.clone()),
                    now,
                )
                .await;
            report.record(&rule.name, outcome);
        }
    }

    /// Reads one alert's window, observes it and advances its state.
    async fn evaluate_alert(
        &self,
        rule: &Rule,
        group: &Group<'_>,
        current: AlertState,
        cache: &mut WindowCache,
        (from, end): (i64, i64),
        now: i64,
    ) -> Result<Vec<AlertTransition>, AlertError> {
        let value = self.group_value(rule, group, from, end, cache).await?;
        let last_seen = group.primary.iter().map(|m| m.last_seen_unix_s).max();
        let no_data = rule
            .no_data
            .filter(|nd| last_seen.is_some_and(|seen| now - seen >= nd.after_s));
        self.observe_value(rule, current, value, no_data, end, now)
            .await
    }

    /// Observes `value` (or no data) for one alert and advances its state: the threshold or
    /// anomaly level, then the state machine.
    async fn observe_value(
        &self,
        rule: &Rule,
        current: AlertState,
        value: Option<f64>,
        no_data: Option<NoDataRule>,
        end: i64,
        now: i64,
    ) -> Result<Vec<AlertTransition>, AlertError> {
        let observe = |state: &AlertState| {
            let mut prepared = state.clone();
            // Hysteresis holds the level the alert fires at, not a pending one.
            let firing = (state.status == AlertStatus::Firing)
                .then_some(state.severity)
                .flatten();
            let mut observation = Observation {
                level: None,
                value,
                reason: Reason::Threshold,
                immediate: false,
            };
            match &rule.kind {
                RuleKind::Threshold => {
                    observation.level =
                        value.and_then(|v| evaluate::threshold_level(rule, v, firing));
                }
                RuleKind::Anomaly(settings) => {
                    let sampled = if no_data.is_some() { None } else { value };
                    let baseline = evaluate::sample_baseline(
                        state.baseline,
                        sampled,
                        end,
                        rule.condition,
                        settings,
                    );
                    prepared.baseline = Some(baseline);
                    observation.reason = Reason::Anomaly;
                    observation.level = evaluate::anomaly_level(rule, baseline.last_score, firing);
                }
            }
            if let Some(nd) = no_data {
                observation = Observation {
                    level: Some(nd.severity),
                    value: None,
                    reason: Reason::NoData,
                    immediate: true,
                };
            }
            (prepared, observation)
        };
        self.advance(Some(rule), current, observe, now).await
    }

    /// An `expr` rule: the expression as an instant query at `now − evaluation_delay` (its buckets
    /// end at the minute boundary at or before it, like a metric rule's window); one alert per
    /// series of the result, labelled with the series' labels (`job` as `service`, no `__name__`).
    /// With `no_data`, an expression that returned nothing for `no_data.after` fires one alert
    /// without labels; it resolves when data returns.
    async fn evaluate_expr_rule(
        &self,
        rule: &Rule,
        expr: &str,
        states: &HashMap<String, AlertState>,
        now: i64,
        report: &mut EvaluationReport,
    ) {
        let at = now - self.rules.settings.evaluation_delay_s;
        let end = Resolution::OneMinute.bucket_start(at);
        let instant = QueryTimes {
            start: at,
            end: at,
            step: 60,
            resolution: None,
        };
        let result = match crate::expr::evaluate(
            self.metrics.as_ref(),
            expr,
            instant,
            true,
            ExprLimits::default(),
        )
        .await
        {
            Ok(result) => result,
            Err(e) => {
                report.record(&rule.name, Err(expr_error(e)));
                return;
            }
        };
        let mut alerts: BTreeMap<String, (Labels, f64)> = BTreeMap::new();
        for (series_labels, points) in result.series() {
            let Some(value) = points.first().copied().flatten() else {
                continue;
            };
            let value = value * rule.scale;
            if !value.is_finite() {
                continue;
            }
            let labels = alert_labels(series_labels);
            alerts.insert(fingerprint(&rule.name, &labels), (labels, value));
        }
        if alerts.is_empty() {
            if let Some(nd) = rule.no_data {
                match self.expr_silent_for(expr, at, nd.after_s).await {
                    Ok(true) => {
                        let labels = Labels::new();
                        let fp = fingerprint(&rule.name, &labels);
                        report.alerts += 1;
                        let current = states
                            .get(&fp)
                            .cloned()
                            .unwrap_or_else(|| AlertState::new(&rule.name, labels, now));
                        let outcome = self
                            .observe_value(rule, current, None, Some(nd), end, now)
                            .await;
                        report.record(&rule.name, outcome);
                        let present: HashSet<&str> = [fp.as_str()].into_iter().collect();
                        self.resolve_missing(rule, states, &present, now, report)
                            .await;
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        report.record(&rule.name, Err(e));
                        return;
                    }
                }
            }
        }
        for (fp, (labels, value)) in &alerts {
            report.alerts += 1;
            let current = states
                .get(fp)
                .cloned()
                .unwrap_or_else(|| AlertState::new(&rule.name, labels.clone(), now));
            let outcome = self
                .observe_value(rule, current, Some(*value), None, end, now)
                .await;
            report.record(&rule.name, outcome);
        }
        let present: HashSet<&str> = alerts.keys().map(String::as_str).collect();
        self.resolve_missing(rule, states, &present, now, report)
            .await;
    }

    /// Whether `expr` had no sample at any minute of the `after_s` seconds up to `at`.
    async fn expr_silent_for(&self, expr: &str, at: i64, after_s: i64) -> Result<bool, AlertError> {
        let range = QueryTimes {
            start: at - after_s,
            end: at,
            step: 60,
            resolution: Some(Resolution::OneMinute),
        };
        let result = crate::expr::evaluate(
            self.metrics.as_ref(),
            expr,
            range,
            false,
            ExprLimits::default(),
        )
        .await
        .map_err(expr_error)?;
        Ok(result
            .series()
            .iter()
            .all(|(_, points)| points.iter().all(Option::is_none)))
    }

    /// The rule's (scaled) value for one alert's series over `[from, end)`.
    async fn group_value(
        &self,
        rule: &Rule,
        group: &Group<'_>,
        from: i64,
        end: i64,
        cache: &mut WindowCache,
    ) -> Result<Option<f64>, AlertError> {
        let primary = self.windows(&group.primary, from, end, cache).await?;
        let primary_value = evaluate::aggregate(rule.aggregation, &primary, rule.window_s);
        let value = match &rule.signal {
            Signal::Series(_) | Signal::Expr(_) => primary_value,
            Signal::Ratio { .. } => {
                let numerator = self.windows(&group.numerator, from, end, cache).await?;
                let numerator_value =
                    evaluate::aggregate(rule.aggregation, &numerator, rule.window_s);
                evaluate::ratio(rule.aggregation, numerator_value, primary_value)
            }
        };
        Ok(value.map(|v| v * rule.scale).filter(|v| v.is_finite()))
    }

    async fn windows(
        &self,
        series: &[&SeriesMeta],
        from: i64,
        end: i64,
        cache: &mut WindowCache,
    ) -> Result<Vec<SeriesWindow>, AlertError> {
        let mut out = Vec::with_capacity(series.len());
        for meta in series {
            let key = (meta.id, from, end);
            if let Some(window) = cache.get(&key) {
                out.push(window.clone());
                continue;
            }
            let mut window = SeriesWindow {
                kind: meta.kind,
                stats: Default::default(),
            };
            for (_, stats) in self
                .metrics
                .query_buckets(meta.id, Resolution::OneMinute, from, end)
                .await?
            {
                window.stats.merge(&stats);
            }
            cache.insert(key, window.clone());
            out.push(window);
        }
        Ok(out)
    }

    /// Steps one alert and writes the result conditionally, re-reading and stepping again when
    /// another evaluator wrote in between. `observe` turns a stored state into (the state with any
    /// baseline update, the observation); it is re-run after a conflict.
    async fn advance(
        &self,
        rule: Option<&Rule>,
        mut current: AlertState,
        observe: impl Fn(&AlertState) -> (AlertState, Observation),
        now: i64,
    ) -> Result<Vec<AlertTransition>, AlertError> {
        let timing = rule.map_or(
            Timing {
                pending_for: 0,
                keep_firing_for: 0,
            },
            |r| Timing {
                pending_for: r.for_s,
                keep_firing_for: r.keep_firing_for_s,
            },
        );
        let history_expires_at = now + self.rules.settings.history_retention_s;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            if current.version > 0 && current.updated_at > now {
                // A later evaluation already moved this alert on; an older view must not undo it.
                return Ok(Vec::new());
            }
            let (prepared, observation) = observe(&current);
            let result = step(&prepared, &observation, timing, now);
            if !result.needs_write(&current) {
                return Ok(Vec::new());
            }
            let (mut next, mut transitions) = (result.next, result.transitions);
            for t in &mut transitions {
                t.summary = summarize(rule, t, next.baseline.as_ref());
            }
            if let Some(last) = transitions.last() {
                next.summary = last.summary.clone();
            }
            match self
                .alerts
                .put_state(&next, current.version, &transitions, history_expires_at)
                .await
                .map_err(AlertError::Store)?
            {
                PutOutcome::Written { .. } => return Ok(transitions),
                PutOutcome::Conflict { current: stored } => {
                    current = stored.map(|s| *s).unwrap_or_else(|| {
                        AlertState::new(&current.rule, current.labels.clone(), now)
                    });
                }
            }
        }
        Err(AlertError::Contention(current.fingerprint))
    }
}

/// An expression result's labels as alert labels: `job` is the `service` label; no `__name__`.
fn alert_labels(series: BTreeMap<String, String>) -> Labels {
    series
        .into_iter()
        .filter(|(k, _)| k != crate::expr::names::NAME)
        .map(|(k, v)| {
            if k == "job" {
                ("service".to_string(), v)
            } else {
                (k, v)
            }
        })
        .collect()
}

fn expr_error(e: EvalError) -> AlertError {
    match e {
        EvalError::Store(s) => AlertError::Metrics(s),
        other => AlertError::Expr(other.to_string()),
    }
}

/// Groups the rule's series into alerts: one per service (and `group_by` values).
/// Whether `rule` reads `meta`'s series (its service, and the metric and attributes of its signal).
fn selects(rule: &Rule, meta: &SeriesMeta) -> bool {
    if rule
        .service
        .as_ref()
        .is_some_and(|s| *s != meta.key.service)
    {
        return false;
    }
    match &rule.signal {
        Signal::Series(selector) => selector.matches(&meta.key.metric, &meta.key.attributes),
        Signal::Ratio {
            numerator,
            denominator,
        } => {
            numerator.matches(&meta.key.metric, &meta.key.attributes)
                || denominator.matches(&meta.key.metric, &meta.key.attributes)
        }
        // Read by the expression evaluator, not from the discovered series.
        Signal::Expr(_) => false,
    }
}

fn groups<'a>(rule: &Rule, series: &'a [SeriesMeta]) -> BTreeMap<String, Group<'a>> {
    let (primary, numerator) = match &rule.signal {
        Signal::Expr(_) => return BTreeMap::new(),
        Signal::Series(selector) => (selector, None),
        Signal::Ratio {
            numerator,
            denominator,
        } => (denominator, Some(numerator)),
    };
    let mut out: BTreeMap<String, Group<'a>> = BTreeMap::new();
    for meta in series {
        if rule
            .service
            .as_ref()
            .is_some_and(|s| *s != meta.key.service)
        {
            continue;
        }
        let is_primary = primary.matches(&meta.key.metric, &meta.key.attributes);
        let is_numerator =
            numerator.is_some_and(|n| n.matches(&meta.key.metric, &meta.key.attributes));
        if !is_primary && !is_numerator {
            continue;
        }
        let mut labels = Labels::new();
        labels.insert("service".into(), meta.key.service.clone());
        let mut complete = true;
        for attribute in &rule.group_by {
            match meta.key.attributes.get(attribute) {
                Some(value) => {
                    labels.insert(attribute.clone(), value.clone());
                }
                None => complete = false,
            }
        }
        if !complete {
            // A series without a `group_by` attribute belongs to no alert of this rule.
            continue;
        }
        let fp = fingerprint(&rule.name, &labels);
        let group = out.entry(fp).or_insert_with(|| Group {
            labels,
            ..Group::default()
        });
        if is_primary {
            group.primary.push(meta);
        }
        if is_numerator {
            group.numerator.push(meta);
        }
    }
    // A ratio needs its denominator; numerator-only groups have no value.
    out.retain(|_, g| !g.primary.is_empty());
    out
}

/// What the rule measures, in words ("p95 of http.server.request.duration").
pub fn describe_signal(rule: &Rule) -> String {
    let aggregation = rule.aggregation.as_str();
    match &rule.signal {
        Signal::Expr(expr) => expr.clone(),
        Signal::Series(s) => format!("{aggregation} of {}", s.metric),
        Signal::Ratio {
            numerator,
            denominator,
        } => format!(
            "{aggregation} of {} / {aggregation} of {}",
            numerator.metric, denominator.metric
        ),
    }
}

fn format_value(value: f64, unit: &str) -> String {
    let number = if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    };
    // 95.00 → 95, 0.2500 → 0.25: thresholds read as they were written.
    let number = if number.contains('.') {
        number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        number
    };
    match unit {
        "" => number,
        "%" => format!("{number}%"),
        unit => format!("{number} {unit}"),
    }
}

fn condition_word(condition: Condition) -> &'static str {
    match condition {
        Condition::Above => "above",
        Condition::Below => "below",
        Condition::Outside => "away from",
    }
}

/// One line for people about a transition.
fn summarize(rule: Option<&Rule>, t: &AlertTransition, baseline: Option<&Baseline>) -> String {
    let Some(rule) = rule else {
        return "the rule was removed from the rules file".into();
    };
    let signal = describe_signal(rule);
    let extra: Vec<String> = t
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "service")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let scope = if extra.is_empty() {
        String::new()
    } else {
        format!(" [{}]", extra.join(", "))
    };
    let value = t.value.map(|v| format_value(v, &rule.unit));
    let text = match (t.kind, t.reason) {
        (TransitionKind::Resolved, _) | (TransitionKind::Cancelled, _) => match value {
            Some(v) => format!("{signal} is {v}"),
            None => format!("{signal} has no current value"),
        },
        (_, Some(Reason::NoData)) => format!(
            "no data for {signal} for {}",
            format_duration(rule.no_data.map_or(0, |nd| nd.after_s))
        ),
        (_, Some(Reason::Anomaly)) => {
            let deviation = baseline.and_then(|b| b.last_score).unwrap_or(0.0);
            let mean = baseline.map_or(String::new(), |b| format_value(b.mean, &rule.unit));
            format!(
                "{signal} is {}, {deviation:.1}σ {} its baseline {mean}",
                value.unwrap_or_else(|| "unknown".into()),
                condition_word(rule.condition)
            )
        }
        _ => {
            let threshold = match t.severity {
                Some(Severity::Critical) => rule.critical,
                _ => rule.warning,
            };
            let limit = match (t.severity, threshold) {
                (Some(severity), Some(th)) => format!(
                    " ({} {} {})",
                    severity.as_str(),
                    condition_word(rule.condition),
                    format_value(th, &rule.unit)
                ),
                _ => String::new(),
            };
            format!(
                "{signal} is {}{limit}",
                value.unwrap_or_else(|| "unknown".into())
            )
        }
    };
    format!("{text}{scope}")
}
