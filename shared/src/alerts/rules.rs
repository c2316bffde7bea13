//! Alert rules: their types and the YAML file they are loaded from (`infra/alert-rules.yaml`).
//!
//! Loading validates everything a rule needs to be evaluated, and every error names its place in the
//! file (`alert-rules.yaml:14:5: rules[2] "high-latency": ...`). Type errors point at the offending
//! value; errors about a rule as a whole (critical below warning, duplicate names) point at the rule.
//! To get the rule's line, validation runs *inside* the YAML deserializer's visit of the rule mapping
//! (see [`Checked`]), which is where serde_yaml_ng knows the position.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::model::Attributes;

/// Where `flowscope local` looks for rules unless told otherwise.
pub const DEFAULT_RULES_PATH: &str = "infra/alert-rules.yaml";
/// Windows are read from 1m buckets, so they are whole minutes.
const MIN_WINDOW_S: i64 = 60;
/// An hour of 1m buckets per series per evaluation is the most the engine reads.
const MAX_WINDOW_S: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("reading alert rules {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Anything wrong with the file's content, with its 1-based position when known.
    #[error("{}", describe_invalid(.source_name, *.line, *.column, .message))]
    Invalid {
        source_name: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
}

fn describe_invalid(
    source_name: &str,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("{source_name}:{line}:{column}: {message}"),
        (Some(line), None) => format!("{source_name}:{line}: {message}"),
        _ => format!("{source_name}: {message}"),
    }
}

/// A rules file, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSet {
    pub settings: Settings,
    pub notifications: NotificationSettings,
    pub rules: Vec<Rule>,
}

/// How evaluation treats time.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Settings {
    /// Data younger than this may still be in flight through the stream, so windows end at the
    /// minute boundary at or before `now - evaluation_delay`.
    #[serde(serialize_with = "serialize_duration", rename = "evaluation_delay")]
    #[schema(value_type = String, example = "10s")]
    pub evaluation_delay_s: i64,
    /// How long transition history is kept.
    #[serde(serialize_with = "serialize_duration", rename = "history_retention")]
    #[schema(value_type = String, example = "30d")]
    pub history_retention_s: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            evaluation_delay_s: 10,
            history_retention_s: 30 * 86_400,
        }
    }
}

/// Where and how notifications go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationSettings {
    /// Transitions of one service within this long are sent as one message.
    #[serde(serialize_with = "serialize_duration", rename = "group_wait")]
    pub group_wait_s: i64,
    pub retry: RetrySettings,
    pub sinks: Vec<SinkConfig>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            group_wait_s: 30,
            retry: RetrySettings::default(),
            sinks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RetrySettings {
    /// Delivery attempts in all (the first try included).
    pub attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            attempts: 5,
            initial_backoff_ms: 1000,
            max_backoff_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// The notification as JSON (see `docs/alerts.md`).
    Webhook,
    /// A Slack-compatible incoming webhook (`{"text": ...}`).
    Slack,
    /// One structured line per notification in the process's log (no `url`); local mode's default
    /// when no other sink is configured.
    Log,
    /// An issue per firing group through Jira's REST API, a comment and transition on resolve.
    Jira,
}

/// A notification sink. Its URL may come from the environment so secrets stay out of the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    /// The URL as written; `None` when it comes from `url_env`. Never echo a resolved secret.
    pub url: Option<String>,
    pub url_env: Option<String>,
    /// With `url_env`: an unset variable turns the sink off (logged) instead of failing the start,
    /// so one rules file serves deployments with and without the sink.
    pub optional: bool,
    /// `kind: jira` only: project, issue type, labels, credentials and the "Done" transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jira: Option<JiraSettings>,
}

/// Where a Jira sink files its issues. The base URL is the sink's `url`/`url_env` (the shipped file
/// uses `FLOWSCOPE_JIRA_URL`); the user and API token always come from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraSettings {
    /// Project key (`OPS`); without it, read from `project_env`.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default = "default_jira_project_env")]
    pub project_env: String,
    #[serde(default = "default_jira_issue_type")]
    pub issue_type: String,
    /// Labels every issue gets (Jira labels hold no spaces), besides `flowscope`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The transition id that closes an issue on resolve; without it, read from
    /// `done_transition_env`, and without that a resolve only comments.
    #[serde(default)]
    pub done_transition: Option<String>,
    #[serde(default = "default_jira_done_env")]
    pub done_transition_env: String,
    #[serde(default = "default_jira_user_env")]
    pub user_env: String,
    #[serde(default = "default_jira_token_env")]
    pub token_env: String,
}

fn default_jira_project_env() -> String {
    "FLOWSCOPE_JIRA_PROJECT".into()
}
fn default_jira_done_env() -> String {
    "FLOWSCOPE_JIRA_DONE_TRANSITION".into()
}
fn default_jira_issue_type() -> String {
    "Task".into()
}
fn default_jira_user_env() -> String {
    "FLOWSCOPE_JIRA_USER".into()
}
fn default_jira_token_env() -> String {
    "FLOWSCOPE_JIRA_TOKEN".into()
}

impl SinkConfig {
    /// The URL to post to, reading `url_env` through `env` (pass `|k| std::env::var(k).ok()`).
    pub fn resolve_url(&self, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        match (&self.url, &self.url_env) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(var)) => env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!(
                    "sink {:?}: environment variable {var} is not set",
                    self.name
                )
            }),
            (None, None) => Err(format!("sink {:?} has no url", self.name)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rule {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: RuleKind,
    /// Restricts the rule to one service; otherwise it applies to each service separately.
    pub service: Option<String>,
    pub signal: Signal,
    /// For `expr` rules: `avg`, unused (the expression aggregates).
    pub aggregation: Aggregation,
    /// Multiplies the value before comparison (e.g. 100 to compare a ratio in percent).
    pub scale: f64,
    /// Unit of the (scaled) value, for messages.
    pub unit: String,
    /// For `expr` rules: 1m, unused (the expression's ranges are its windows).
    #[serde(serialize_with = "serialize_duration", rename = "window")]
    #[schema(value_type = String)]
    pub window_s: i64,
    pub condition: Condition,
    /// Threshold rules: the value's threshold. Anomaly rules: deviations from the baseline (σ).
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// How long the condition must hold before the alert fires (pending until then).
    #[serde(serialize_with = "serialize_duration", rename = "for")]
    #[schema(value_type = String)]
    pub for_s: i64,
    /// How long the alert keeps firing (at its severity) after the condition stops holding.
    #[serde(serialize_with = "serialize_duration", rename = "keep_firing_for")]
    #[schema(value_type = String)]
    pub keep_firing_for_s: i64,
    /// A firing level holds until the value is this far on the safe side of its threshold.
    pub hysteresis: f64,
    /// Attributes that split a service's alert further (one alert per distinct value).
    pub group_by: Vec<String>,
    pub no_data: Option<NoDataRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RuleKind {
    Threshold,
    /// Fires when the signal leaves its own recent baseline (EWMA mean ± k·σ).
    Anomaly(AnomalySettings),
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AnomalySettings {
    /// The baseline forgets half of its weight in this long.
    #[serde(serialize_with = "serialize_duration", rename = "half_life")]
    #[schema(value_type = String)]
    pub half_life_s: i64,
    /// Samples (one per minute) before the baseline is trusted.
    pub warmup_samples: u32,
    /// Lower bound of σ, in the value's unit; σ is also never taken below 1% of |mean|, so that a
    /// perfectly flat signal does not alert on noise.
    pub min_stddev: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Series(Selector),
    /// numerator / denominator, each aggregated the same way. A missing numerator counts as zero for
    /// count/sum/rate (an error counter is often created on the first error).
    Ratio {
        numerator: Selector,
        denominator: Selector,
    },
    /// An expression (`docs/query-language.md`), evaluated as an instant query at each evaluation:
    /// one alert per series of its result, labelled with the series' labels (`job` as `service`).
    /// `aggregation`, `window`, `service` and `group_by` do not apply (the expression says them).
    Expr(String),
}

/// Which series a signal reads: one metric, optionally narrowed by attributes (a subset match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    pub metric: String,
    #[serde(default)]
    pub attributes: Attributes,
}

impl Selector {
    pub fn matches(&self, metric: &str, attributes: &Attributes) -> bool {
        self.metric == metric
            && self
                .attributes
                .iter()
                .all(|(k, v)| attributes.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Avg,
    Min,
    Max,
    Sum,
    /// Per second over the window: the summed value for counters, the number of observations
    /// otherwise (as the live updates' `rate`).
    Rate,
    Count,
    P50,
    P95,
    P99,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Avg => "avg",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Sum => "sum",
            Aggregation::Rate => "rate",
            Aggregation::Count => "count",
            Aggregation::P50 => "p50",
            Aggregation::P95 => "p95",
            Aggregation::P99 => "p99",
        }
    }

    /// Aggregations for which "no observations" means zero rather than unknown.
    pub fn zero_when_empty(self) -> bool {
        matches!(
            self,
            Aggregation::Sum | Aggregation::Rate | Aggregation::Count
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Fires when the value is above the threshold.
    Above,
    /// Fires when the value is below the threshold.
    Below,
    /// Anomaly rules only: fires on a deviation either way.
    Outside,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NoDataRule {
    /// The alert fires at `severity` once no matching series has reported for this long.
    #[serde(serialize_with = "serialize_duration", rename = "after")]
    #[schema(value_type = String)]
    pub after_s: i64,
    pub severity: crate::alerts::state::Severity,
}

/// `infra/alert-rules.yaml` as shipped, compiled in: the Lambda functions' rules, and local mode's
/// when run outside a checkout.
pub const SHIPPED_RULES_YAML: &str = include_str!("../../../infra/alert-rules.yaml");

impl RuleSet {
    /// The shipped defaults ([`SHIPPED_RULES_YAML`]).
    pub fn shipped() -> Result<RuleSet, RulesError> {
        RuleSet::parse(SHIPPED_RULES_YAML, "infra/alert-rules.yaml")
    }

    /// Reads and validates the rules file at `path`.
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        RuleSet::parse(&text, &name)
    }

    /// Parses and validates rules from YAML text; `source_name` prefixes error messages.
    pub fn parse(text: &str, source_name: &str) -> Result<RuleSet, RulesError> {
        if text.trim().is_empty() {
            return Err(RulesError::Invalid {
                source_name: source_name.to_string(),
                line: None,
                column: None,
                message: "the rules file is empty; it needs at least `rules: []`".into(),
            });
        }
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        de::Deserializer::deserialize_map(deserializer, FileVisitor).map_err(|error| {
            let location = error.location();
            let (line, column) = match &location {
                Some(l) => (Some(l.line()), Some(l.column())),
                None => (None, None),
            };
            let mut message = error.to_string();
            if let Some(l) = &location {
                let suffix = format!(" at line {} column {}", l.line(), l.column());
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_string();
                }
            }
            RulesError::Invalid {
                source_name: source_name.to_string(),
                line,
                column,
                message,
            }
        })
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

// ---- durations ----

/// Parses `90` (seconds), `90s`, `5m`, `1h`, `30d`, and humantime's combinations (`1h 30m`) into
/// seconds ([`crate::duration::parse_seconds`]).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    crate::duration::parse_seconds(text, true)
}

/// The shortest exact text for `seconds` (`300` → `5m`).
pub fn format_duration(seconds: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

fn serialize_duration<S: Serializer>(seconds: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*seconds))
}

/// A duration as written in the file: `"5m"` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DurationText(i64);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"30s\", \"5m\", \"1h\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                parse_duration(v).map(DurationText).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationText, E> {
                i64::try_from(v)
                    .map(DurationText)
                    .map_err(|_| E::custom("duration is too long"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
                if v < 0 {
                    return Err(E::custom("a duration cannot be negative"));
                }
                Ok(DurationText(v))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

// ---- the file as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    evaluation_delay: Option<DurationText>,
    history_retention: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    group_wait: Option<DurationText>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    sinks: Vec<SinkConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<u32>,
    initial_backoff: Option<DurationMillis>,
    max_backoff: Option<DurationMillis>,
}

/// Backoffs may be sub-second (`250ms`), unlike rule durations.
#[derive(Debug, Clone, Copy)]
struct DurationMillis(u64);

impl<'de> Deserialize<'de> for DurationMillis {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MillisVisitor;
        impl Visitor<'_> for MillisVisitor {
            type Value = DurationMillis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"250ms\", \"2s\" or \"1m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationMillis, E> {
                let v = v.trim();
                if let Some(ms) = v.strip_suffix("ms") {
                    return ms
                        .parse::<u64>()
                        .map(DurationMillis)
                        .map_err(|_| E::custom(format!("invalid duration {v:?}")));
                }
                let seconds = parse_duration(v).map_err(E::custom)?;
                u64::try_from(seconds)
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .map(DurationMillis)
                    .ok_or_else(|| E::custom(format!("invalid duration {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationMillis, E> {
                v.checked_mul(1000)
                    .map(DurationMillis)
                    .ok_or_else(|| E::custom("duration is too long"))
            }
        }
        deserializer.deserialize_any(MillisVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    name: String,
    kind: SinkKind,
    url: Option<String>,
    url_env: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    jira: Option<JiraSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawRuleKind {
    Threshold,
    Anomaly,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRatio {
    numerator: Selector,
    denominator: Selector,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    half_life: Option<DurationText>,
    warmup: Option<u32>,
    min_stddev: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNoData {
    after: DurationText,
    #[serde(default = "default_no_data_severity")]
    severity: crate::alerts::state::Severity,
}

fn default_no_data_severity() -> crate::alerts::state::Severity {
    crate::alerts::state::Severity::Critical
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "type", default)]
    kind: Option<RawRuleKind>,
    service: Option<String>,
    metric: Option<String>,
    #[serde(default)]
    attributes: Attributes,
    ratio: Option<RawRatio>,
    expr: Option<String>,
    aggregation: Option<Aggregation>,
    scale: Option<f64>,
    #[serde(default)]
    unit: String,
    window: Option<DurationText>,
    condition: Condition,
    warning: Option<f64>,
    critical: Option<f64>,
    #[serde(rename = "for")]
    pending_for: Option<DurationText>,
    keep_firing_for: Option<DurationText>,
    hysteresis: Option<f64>,
    #[serde(default)]
    group_by: Vec<String>,
    no_data: Option<RawNoData>,
    baseline: Option<RawBaseline>,
}

// ---- validation ----

fn check_settings(raw: RawSettings) -> Result<Settings, String> {
    let defaults = Settings::default();
    let settings = Settings {
        evaluation_delay_s: raw
            .evaluation_delay
            .map_or(defaults.evaluation_delay_s, |d| d.0),
        history_retention_s: raw
            .history_retention
            .map_or(defaults.history_retention_s, |d| d.0),
    };
    if settings.evaluation_delay_s > 600 {
        return Err("`evaluation_delay` must be at most 10m".into());
    }
    if settings.history_retention_s < 3600 {
        return Err("`history_retention` must be at least 1h".into());
    }
    Ok(settings)
}

fn check_notifications(raw: RawNotifications) -> Result<NotificationSettings, String> {
    let defaults = NotificationSettings::default();
    let group_wait_s = raw.group_wait.map_or(defaults.group_wait_s, |d| d.0);
    if group_wait_s > 3600 {
        return Err("`group_wait` must be at most 1h".into());
    }
    let retry = match raw.retry {
        None => RetrySettings::default(),
        Some(r) => {
            let d = RetrySettings::default();
            let retry = RetrySettings {
                attempts: r.attempts.unwrap_or(d.attempts),
                initial_backoff_ms: r.initial_backoff.map_or(d.initial_backoff_ms, |b| b.0),
                max_backoff_ms: r.max_backoff.map_or(d.max_backoff_ms, |b| b.0),
            };
            if !(1..=20).contains(&retry.attempts) {
                return Err("`retry.attempts` must be between 1 and 20".into());
            }
            if retry.max_backoff_ms < retry.initial_backoff_ms {
                return Err("`retry.max_backoff` must not be below `retry.initial_backoff`".into());
            }
            retry
        }
    };
    let mut names = BTreeSet::new();
    for sink in &raw.sinks {
        if !names.insert(sink.name.as_str()) {
            return Err(format!("two sinks are named {:?}", sink.name));
        }
    }
    Ok(NotificationSettings {
        group_wait_s,
        retry,
        sinks: raw.sinks,
    })
}

fn check_sink(sink: RawSink) -> Result<SinkConfig, String> {
    if sink.name.trim().is_empty() {
        return Err("every sink needs a `name`".into());
    }
    if (sink.kind == SinkKind::Jira) != sink.jira.is_some() {
        return Err(format!(
            "sink {:?}: a `jira` section goes with `kind: jira`, and only there",
            sink.name
        ));
    }
    if let Some(jira) = &sink.jira {
        if jira
            .labels
            .iter()
            .any(|l| l.is_empty() || l.contains(char::is_whitespace))
        {
            return Err(format!(
                "sink {:?}: Jira labels must be non-empty and hold no spaces",
                sink.name
            ));
        }
    }
    if sink.kind == SinkKind::Log {
        if sink.url.is_some() || sink.url_env.is_some() || sink.optional {
            return Err(format!(
                "sink {:?}: a `log` sink takes no `url`, `url_env` or `optional`",
                sink.name
            ));
        }
        return Ok(SinkConfig {
            name: sink.name,
            kind: sink.kind,
            url: None,
            url_env: None,
            optional: false,
            jira: None,
        });
    }
    match (&sink.url, &sink.url_env) {
        (Some(url), None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "sink {:?}: `url` must start with http:// or https://, got {url:?}",
                    sink.name
                ));
            }
        }
        (None, Some(var)) if !var.is_empty() => {}
        _ => {
            return Err(format!(
                "sink {:?} needs exactly one of `url` or `url_env`",
                sink.name
            ))
        }
    }
    if sink.optional && sink.url.is_some() {
        return Err(format!(
            "sink {:?}: `optional` applies to a `url_env` sink (a written `url` is always on)",
            sink.name
        ));
    }
    Ok(SinkConfig {
        name: sink.name,
        kind: sink.kind,
        url: sink.url,
        url_env: sink.url_env,
        optional: sink.optional,
        jira: sink.jira,
    })
}

/// Sinks are validated where they are written, so errors point at the sink.
impl<'de> Deserialize<'de> for SinkConfig {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut check = check_sink;
        Checked::new(&mut check).deserialize(deserializer)
    }
}

fn check_rule(raw: RawRule) -> Result<Rule, String> {
    let name = raw.name.trim().to_string();
    let fail = |message: String| -> Result<Rule, String> {
        Err(if name.is_empty() {
            message
        } else {
            format!("rule {name:?}: {message}")
        })
    };
    if name.is_empty() {
        return fail("`name` must not be empty".into());
    }
    if let Some(expr) = &raw.expr {
        if raw.metric.is_some() || raw.ratio.is_some() {
            return fail("give one of `metric`, `ratio` or `expr`".into());
        }
        for (given, field) in [
            (raw.aggregation.is_some(), "aggregation"),
            (raw.window.is_some(), "window"),
            (raw.service.is_some(), "service"),
            (!raw.attributes.is_empty(), "attributes"),
            (!raw.group_by.is_empty(), "group_by"),
        ] {
            if given {
                return fail(format!(
                    "`{field}` does not apply to an `expr` rule: say it in the expression (ranges like `[5m]`, matchers like `{{job=\"api\"}}`, `by (…)`)"
                ));
            }
        }
        if let Err(e) = crate::expr::parse(expr) {
            return fail(format!("`expr`: {e}"));
        }
    }
    let is_expr = raw.expr.is_some();
    let signal = match (raw.expr, raw.metric, raw.ratio) {
        (Some(expr), _, _) => Signal::Expr(expr),
        (None, Some(metric), None) => Signal::Series(Selector {
            metric,
            attributes: raw.attributes,
        }),
        (None, None, Some(ratio)) => {
            if !raw.attributes.is_empty() {
                return fail(
                    "`attributes` belongs inside `ratio.numerator` / `ratio.denominator`".into(),
                );
            }
            Signal::Ratio {
                numerator: ratio.numerator,
                denominator: ratio.denominator,
            }
        }
        (None, Some(_), Some(_)) => {
            return fail("give either `metric` or `ratio`, not both".into())
        }
        (None, None, None) => return fail("missing `metric` (or `ratio` or `expr`)".into()),
    };
    let aggregation = match (is_expr, raw.aggregation) {
        (true, _) => Aggregation::Avg,
        (false, Some(a)) => a,
        (false, None) => return fail("missing field `aggregation`".into()),
    };
    let window_s = match (is_expr, raw.window) {
        (true, _) => MIN_WINDOW_S,
        (false, Some(w)) => w.0,
        (false, None) => return fail("missing field `window`".into()),
    };
    let selectors: Vec<&Selector> = match &signal {
        Signal::Series(s) => vec![s],
        Signal::Ratio {
            numerator,
            denominator,
        } => vec![numerator, denominator],
        Signal::Expr(_) => vec![],
    };
    if selectors.iter().any(|s| s.metric.trim().is_empty()) {
        return fail("`metric` must not be empty".into());
    }
    if !(MIN_WINDOW_S..=MAX_WINDOW_S).contains(&window_s) || window_s % 60 != 0 {
        return fail(format!(
            "`window` must be whole minutes from 1m to 1h (like 1m, 5m, 1h), got {}",
            format_duration(window_s)
        ));
    }
    let scale = raw.scale.unwrap_or(1.0);
    if !scale.is_finite() || scale == 0.0 {
        return fail("`scale` must be a non-zero number".into());
    }
    let hysteresis = raw.hysteresis.unwrap_or(0.0);
    if !hysteresis.is_finite() || hysteresis < 0.0 {
        return fail("`hysteresis` must be zero or positive".into());
    }
    for (label, value) in [("warning", raw.warning), ("critical", raw.critical)] {
        if value.is_some_and(|v| !v.is_finite()) {
            return fail(format!("`{label}` must be a finite number"));
        }
    }
    let kind = match raw.kind.unwrap_or(RawRuleKind::Threshold) {
        RawRuleKind::Threshold => {
            if raw.baseline.is_some() {
                return fail("`baseline` applies only to `type: anomaly` rules".into());
            }
            if raw.condition == Condition::Outside {
                return fail(
                    "`condition: outside` applies only to anomaly rules; use above or below".into(),
                );
            }
            if raw.warning.is_none() && raw.critical.is_none() && raw.no_data.is_none() {
                return fail(
                    "give a `warning` or `critical` threshold (or a `no_data` rule)".into(),
                );
            }
            RuleKind::Threshold
        }
        RawRuleKind::Anomaly => {
            if raw.warning.is_none() && raw.critical.is_none() {
                return fail(
                    "an anomaly rule needs `warning` or `critical` deviations (in σ, e.g. 3)"
                        .into(),
                );
            }
            if [raw.warning, raw.critical]
                .iter()
                .flatten()
                .any(|k| *k <= 0.0)
            {
                return fail("anomaly deviations (`warning`, `critical`) must be positive".into());
            }
            let baseline = raw.baseline.unwrap_or(RawBaseline {
                half_life: None,
                warmup: None,
                min_stddev: None,
            });
            let settings = AnomalySettings {
                half_life_s: baseline.half_life.map_or(3600, |d| d.0),
                warmup_samples: baseline.warmup.unwrap_or(30),
                min_stddev: baseline.min_stddev.unwrap_or(0.0),
            };
            if settings.half_life_s < 60 {
                return fail("`baseline.half_life` must be at least 1m".into());
            }
            if !settings.min_stddev.is_finite() || settings.min_stddev < 0.0 {
                return fail("`baseline.min_stddev` must be zero or positive".into());
            }
            RuleKind::Anomaly(settings)
        }
    };
    // For anomaly rules `below` and `outside` also count deviations as positive numbers of σ,
    // so critical is always the larger deviation.
    let critical_beyond_warning = match (&kind, raw.condition) {
        (RuleKind::Anomaly(_), _) | (RuleKind::Threshold, Condition::Above) => true,
        (RuleKind::Threshold, _) => false,
    };
    if let (Some(warning), Some(critical)) = (raw.warning, raw.critical) {
        let ordered = if critical_beyond_warning {
            critical > warning
        } else {
            critical < warning
        };
        if !ordered {
            let relation = if critical_beyond_warning {
                "above"
            } else {
                "below"
            };
            return fail(format!(
                "`critical` ({critical}) must be {relation} `warning` ({warning}) for `condition: {}`",
                match raw.condition {
                    Condition::Above => "above",
                    Condition::Below => "below",
                    Condition::Outside => "outside",
                }
            ));
        }
    }
    let no_data = match raw.no_data {
        Some(nd) if nd.after.0 < 60 => {
            return fail("`no_data.after` must be at least 1m".into());
        }
        Some(nd) => Some(NoDataRule {
            after_s: nd.after.0,
            severity: nd.severity,
        }),
        None => None,
    };
    if raw.group_by.iter().any(|g| g.trim().is_empty()) {
        return fail("`group_by` entries must be attribute names".into());
    }
    if raw.group_by.iter().any(|g| g == "service") {
        return fail("`group_by: [service]` is implied; alerts are always per service".into());
    }
    if raw.service.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return fail("`service` must not be empty when given".into());
    }
    Ok(Rule {
        name,
        description: raw.description,
        kind,
        service: raw.service,
        signal,
        aggregation,
        scale,
        unit: raw.unit,
        window_s,
        condition: raw.condition,
        warning: raw.warning,
        critical: raw.critical,
        for_s: raw.pending_for.map_or(0, |d| d.0),
        keep_firing_for_s: raw.keep_firing_for.map_or(0, |d| d.0),
        hysteresis,
        group_by: raw.group_by,
        no_data,
    })
}

// ---- deserialization with positions ----

/// Deserializes a mapping as `R`, then runs `check` while still inside the mapping's visit, so that a
/// validation error is reported at the mapping's line and column.
struct Checked<'c, R, T, F> {
    check: &'c mut F,
    _types: PhantomData<fn() -> (R, T)>,
}

impl<'c, R, T, F> Checked<'c, R, T, F> {
    fn new(check: &'c mut F) -> Self {
        Checked {
            check,
            _types: PhantomData,
        }
    }
}

impl<'de, R, T, F> DeserializeSeed<'de> for Checked<'_, R, T, F>
where
    R: Deserialize<'de>,
    F: FnMut(R) -> Result<T, String>,
{
    type Value = T;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, R, T, F> Visitor<'de> for Checked<'_, R, T, F>
where
    R: Deserialize<'de>,
    F: FnMut(R) -> Result<T, String>,
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let raw = R::deserialize(MapAccessDeserializer::new(map))?;
        (self.check)(raw).map_err(de::Error::custom)
    }
}

/// The `rules:` list: each rule validated at its own position, names checked for duplicates.
struct RulesSeed;

impl<'de> DeserializeSeed<'de> for RulesSeed {
    type Value = Vec<Rule>;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Rule>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RulesSeed {
    type Value = Vec<Rule>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of rules")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<Rule>, E> {
        // `rules:` with nothing after it.
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Rule>, A::Error> {
        let mut names = BTreeSet::new();
        let mut check = |raw: RawRule| -> Result<Rule, String> {
            let rule = check_rule(raw)?;
            if !names.insert(rule.name.clone()) {
                return Err(format!(
                    "rule {:?}: another rule has the same name; names identify alerts, so they must be unique",
                    rule.name
                ));
            }
            Ok(rule)
        };
        let mut rules = Vec::new();
        while let Some(rule) = seq.next_element_seed(Checked::new(&mut check))? {
            rules.push(rule);
        }
        Ok(rules)
    }
}

struct FileVisitor;

const FILE_FIELDS: &[&str] = &["version", "settings", "notifications", "rules"];

impl<'de> Visitor<'de> for FileVisitor {
    type Value = RuleSet;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a rules file: a mapping with `rules` (and optionally `settings`, `notifications`)",
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleSet, A::Error> {
        let mut settings = None;
        let mut notifications = None;
        let mut rules = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => {
                    let version: u32 = map.next_value()?;
                    if version != 1 {
                        return Err(de::Error::custom(format!(
                            "unsupported rules file version {version}; this build reads version 1"
                        )));
                    }
                }
                "settings" => {
                    settings = Some(map.next_value_seed(Checked::new(&mut check_settings))?);
                }
                "notifications" => {
                    notifications =
                        Some(map.next_value_seed(Checked::new(&mut check_notifications))?);
                }
                "rules" => rules = Some(map.next_value_seed(RulesSeed)?),
                other => return Err(de::Error::unknown_field(other, FILE_FIELDS)),
            }
        }
        Ok(RuleSet {
            settings: settings.unwrap_or_default(),
            notifications: notifications.unwrap_or_default(),
            rules: rules.ok_or_else(|| de::Error::missing_field("rules"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "rules:\n  - name: cpu\n    metric: process.cpu.utilization\n    aggregation: avg\n    window: 5m\n    condition: above\n    warning: 80\n    critical: 95\n";

    #[test]
    fn durations_parse_and_format_round_trip() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(
            parse_duration("5 minutes"),
            Ok(300),
            "humantime's long unit names"
        );
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-5m").is_err());
        for s in [0, 45, 60, 300, 3600, 86_400, 90] {
            assert_eq!(parse_duration(&format_duration(s)), Ok(s));
        }
        assert_eq!(format_duration(300), "5m");
    }

    #[test]
    fn minimal_rule_gets_documented_defaults() {
        let set = RuleSet::parse(MINIMAL, "t.yaml").unwrap();
        let rule = &set.rules[0];
        assert_eq!(rule.kind, RuleKind::Threshold);
        assert_eq!((rule.for_s, rule.keep_firing_for_s), (0, 0));
        assert_eq!(rule.scale, 1.0);
        assert_eq!(set.settings, Settings::default());
        assert_eq!(set.notifications.group_wait_s, 30);
    }

    #[test]
    fn selector_matches_attribute_subsets_only() {
        let mut wanted = Attributes::new();
        wanted.insert("route".into(), "/pay".into());
        let selector = Selector {
            metric: "m".into(),
            attributes: wanted,
        };
        let mut attrs = Attributes::new();
        attrs.insert("route".into(), "/pay".into());
        attrs.insert("method".into(), "GET".into());
        assert!(selector.matches("m", &attrs));
        assert!(!selector.matches("other", &attrs));
        attrs.insert("route".into(), "/x".into());
        assert!(!selector.matches("m", &attrs));
    }

    #[test]
    fn sink_url_comes_from_the_environment_when_asked() {
        let sink = SinkConfig {
            name: "slack".into(),
            kind: SinkKind::Slack,
            url: None,
            url_env: Some("HOOK".into()),
            optional: false,
            jira: None,
        };
        assert_eq!(
            sink.resolve_url(|k| (k == "HOOK").then(|| "http://x".to_string())),
            Ok("http://x".into())
        );
        assert!(sink.resolve_url(|_| None).unwrap_err().contains("HOOK"));
    }
}
