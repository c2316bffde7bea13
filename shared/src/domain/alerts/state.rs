//! The per-alert state machine: inactive → pending → firing (warning ⇄ critical) → resolved.
//!
//! Pure: [`step`] maps (stored state, what evaluation observed, now) to the next state and the
//! transitions taken. The engine stores the result with a conditional write on [`AlertState::version`],
//! so a transition is recorded exactly once even when two evaluators run at the same time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::stable_hash;

/// Labels identify an alert within its rule: always `service`, plus any `group_by` attributes.
pub type Labels = BTreeMap<String, String>;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Never fired, or a pending condition went away before `for` elapsed.
    Inactive,
    /// The condition holds; waiting for `for` to elapse.
    Pending,
    Firing,
    /// Fired, then the condition stopped holding for `keep_firing_for`.
    Resolved,
}

impl AlertStatus {
    /// Pending and firing alerts are "active": listed by `GET /api/alerts`.
    pub fn is_active(self) -> bool {
        matches!(self, AlertStatus::Pending | AlertStatus::Firing)
    }
}

/// Why an alert's condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Threshold,
    Anomaly,
    /// No matching series reported for the rule's `no_data.after`.
    NoData,
    /// The rule was removed from the rules file.
    RuleRemoved,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Acknowledgement {
    pub by: String,
    pub at: i64,
}

/// EWMA baseline of an anomaly rule's signal, one sample per window end (per minute).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Baseline {
    pub mean: f64,
    pub variance: f64,
    pub samples: u64,
    /// Window end (unix seconds) of the last sample folded in; a minute is sampled only once.
    pub last_sample_end: i64,
    /// Deviation (σ, in the rule's direction) of the last sample from the baseline before it was
    /// folded in; evaluations between samples reuse it so the level does not flap within a minute.
    pub last_score: Option<f64>,
}

/// Everything stored per alert fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertState {
    pub fingerprint: String,
    pub rule: String,
    pub labels: Labels,
    pub status: AlertStatus,
    /// Firing: the current severity. Pending: the severity the condition is at.
    pub severity: Option<Severity>,
    /// The signal's value at the last write (scaled, in the rule's unit).
    pub value: Option<f64>,
    pub reason: Option<Reason>,
    /// When the current status began.
    pub since: i64,
    /// Start of the current (or last) firing episode.
    pub firing_since: Option<i64>,
    /// When the condition dropped below the firing severity; `keep_firing_for` counts from here.
    pub lowered_since: Option<i64>,
    /// Time of the evaluation that wrote this version.
    pub updated_at: i64,
    /// Set by an acknowledgement; cleared when a new firing episode starts.
    pub ack: Option<Acknowledgement>,
    pub baseline: Option<Baseline>,
    /// The summary of the last transition, for people ("p95 of … is 1234 ms (critical above 1000 ms)").
    #[serde(default)]
    pub summary: String,
    /// Bumped by every write; 0 means "never stored". Writes are conditional on it.
    pub version: u64,
}

impl AlertState {
    /// The state of an alert that has never been stored.
    pub fn new(rule: &str, labels: Labels, now: i64) -> AlertState {
        AlertState {
            fingerprint: fingerprint(rule, &labels),
            rule: rule.to_string(),
            labels,
            status: AlertStatus::Inactive,
            severity: None,
            value: None,
            reason: None,
            since: now,
            firing_since: None,
            lowered_since: None,
            updated_at: now,
            ack: None,
            baseline: None,
            summary: String::new(),
            version: 0,
        }
    }

    pub fn service(&self) -> Option<&str> {
        self.labels.get("service").map(String::as_str)
    }

    /// Whether `other` differs in anything worth a write (ignores the bookkeeping fields
    /// `version` and `updated_at`, and value or summary changes that do not change the state).
    pub fn differs_from(&self, other: &AlertState) -> bool {
        self.status != other.status
            || self.severity != other.severity
            || self.reason != other.reason
            || self.since != other.since
            || self.firing_since != other.firing_since
            || self.lowered_since != other.lowered_since
            || self.ack != other.ack
            || self.baseline != other.baseline
    }
}

/// Identity of one alert: the rule plus its labels, hashed (16 hex digits).
pub fn fingerprint(rule: &str, labels: &Labels) -> String {
    let mut parts: Vec<&str> = Vec::with_capacity(2 + labels.len() * 2);
    parts.push("alert");
    parts.push(rule);
    for (k, v) in labels {
        parts.push(k);
        parts.push(v);
    }
    format!("{:016x}", stable_hash(&parts))
}

/// What one evaluation found for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The severity the condition is at now (`None`: not holding), hysteresis already applied.
    pub level: Option<Severity>,
    pub value: Option<f64>,
    pub reason: Reason,
    /// Fire without waiting for `for`: no-data has its own duration (`no_data.after`), and a removed
    /// rule resolves at once.
    pub immediate: bool,
}

/// The rule's timing, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub pending_for: i64,
    pub keep_firing_for: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// inactive/resolved → pending.
    Pending,
    /// pending (or inactive, when `for` is 0) → firing.
    Firing,
    /// firing warning → firing critical.
    Escalated,
    /// firing critical → firing warning.
    Deescalated,
    /// firing → resolved.
    Resolved,
    /// pending → inactive: the condition went away before `for` elapsed.
    Cancelled,
    /// Someone acknowledged the firing alert.
    Acknowledged,
}

impl TransitionKind {
    /// Transitions people are told about; pending and cancelled are visible in the API only.
    pub fn notifies(self) -> bool {
        matches!(
            self,
            TransitionKind::Firing
                | TransitionKind::Escalated
                | TransitionKind::Deescalated
                | TransitionKind::Resolved
        )
    }
}

/// One recorded change of an alert (history, WebSocket event, notification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertTransition {
    pub fingerprint: String,
    pub rule: String,
    pub labels: Labels,
    pub kind: TransitionKind,
    pub status: AlertStatus,
    pub previous_status: AlertStatus,
    pub severity: Option<Severity>,
    pub previous_severity: Option<Severity>,
    pub value: Option<f64>,
    pub reason: Option<Reason>,
    /// Unix seconds.
    pub at: i64,
    /// One line for people ("p95 of http.server.request.duration is 1234 ms (critical above 1000)").
    pub summary: String,
    /// Who acknowledged (for `acknowledged` transitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl AlertTransition {
    pub fn service(&self) -> Option<&str> {
        self.labels.get("service").map(String::as_str)
    }

    fn between(before: &AlertState, after: &AlertState, kind: TransitionKind) -> AlertTransition {
        AlertTransition {
            fingerprint: after.fingerprint.clone(),
            rule: after.rule.clone(),
            labels: after.labels.clone(),
            kind,
            status: after.status,
            previous_status: before.status,
            severity: after.severity,
            previous_severity: before.severity,
            value: after.value,
            reason: after.reason,
            at: after.updated_at,
            summary: String::new(),
            by: None,
        }
    }
}

/// The result of one [`step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub next: AlertState,
    pub transitions: Vec<AlertTransition>,
}

impl Step {
    /// Whether the next state must be written (a transition, or a timer or baseline change).
    pub fn needs_write(&self, previous: &AlertState) -> bool {
        !self.transitions.is_empty() || self.next.differs_from(previous)
    }
}

/// Advances `state` by one evaluation at `now`.
pub fn step(state: &AlertState, observation: &Observation, timing: Timing, now: i64) -> Step {
    let mut next = state.clone();
    next.updated_at = now;
    next.value = observation.value;
    let mut kinds = Vec::new();
    match state.status {
        AlertStatus::Inactive | AlertStatus::Resolved => {
            if let Some(level) = observation.level {
                next.reason = Some(observation.reason);
                next.severity = Some(level);
                next.since = now;
                next.lowered_since = None;
                if observation.immediate || timing.pending_for <= 0 {
                    start_firing(&mut next, now);
                    kinds.push(TransitionKind::Firing);
                } else {
                    next.status = AlertStatus::Pending;
                    kinds.push(TransitionKind::Pending);
                }
            }
        }
        AlertStatus::Pending => match observation.level {
            None => {
                next.status = AlertStatus::Inactive;
                next.severity = None;
                next.since = now;
                kinds.push(TransitionKind::Cancelled);
            }
            Some(level) => {
                next.severity = Some(level);
                next.reason = Some(observation.reason);
                if observation.immediate || now - state.since >= timing.pending_for {
                    next.since = now;
                    start_firing(&mut next, now);
                    kinds.push(TransitionKind::Firing);
                }
            }
        },
        AlertStatus::Firing => {
            let current = state.severity.unwrap_or(Severity::Warning);
            match observation.level {
                Some(level) if level > current => {
                    next.severity = Some(level);
                    next.reason = Some(observation.reason);
                    next.lowered_since = None;
                    kinds.push(TransitionKind::Escalated);
                }
                Some(level) if level == current => {
                    next.reason = Some(observation.reason);
                    next.lowered_since = None;
                }
                lower => {
                    let lowered_since = state.lowered_since.unwrap_or(now);
                    next.lowered_since = Some(lowered_since);
                    if observation.immediate || now - lowered_since >= timing.keep_firing_for {
                        next.lowered_since = None;
                        match lower {
                            Some(level) => {
                                next.severity = Some(level);
                                kinds.push(TransitionKind::Deescalated);
                            }
                            None => {
                                next.status = AlertStatus::Resolved;
                                next.since = now;
                                if observation.reason == Reason::RuleRemoved {
                                    next.reason = Some(Reason::RuleRemoved);
                                }
                                kinds.push(TransitionKind::Resolved);
                            }
                        }
                    }
                }
            }
        }
    }
    let transitions = kinds
        .into_iter()
        .map(|kind| AlertTransition::between(state, &next, kind))
        .collect();
    Step { next, transitions }
}

fn start_firing(state: &mut AlertState, now: i64) {
    state.status = AlertStatus::Firing;
    state.firing_since = Some(now);
    state.lowered_since = None;
    // An acknowledgement belongs to one episode.
    state.ack = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(service: &str) -> Labels {
        let mut l = Labels::new();
        l.insert("service".into(), service.into());
        l
    }

    fn obs(level: Option<Severity>) -> Observation {
        Observation {
            level,
            value: Some(1.0),
            reason: Reason::Threshold,
            immediate: false,
        }
    }

    const TIMING: Timing = Timing {
        pending_for: 60,
        keep_firing_for: 30,
    };

    /// Runs `levels` at 10 s intervals from t=0 and returns the transition kinds with their times.
    fn run(levels: &[Option<Severity>], timing: Timing) -> Vec<(i64, TransitionKind)> {
        let mut state = AlertState::new("r", labels("api"), 0);
        let mut out = Vec::new();
        for (i, level) in levels.iter().enumerate() {
            let now = i as i64 * 10;
            let s = step(&state, &obs(*level), timing, now);
            out.extend(s.transitions.iter().map(|t| (now, t.kind)));
            state = s.next;
        }
        out
    }

    const W: Option<Severity> = Some(Severity::Warning);
    const C: Option<Severity> = Some(Severity::Critical);

    #[test]
    fn fires_only_after_the_condition_held_for_the_pending_duration() {
        let kinds = run(&[W, W, W, W, W, W, W, W], TIMING);
        assert_eq!(
            kinds,
            vec![(0, TransitionKind::Pending), (60, TransitionKind::Firing)]
        );
    }

    #[test]
    fn a_short_blip_is_cancelled_without_firing() {
        let kinds = run(&[W, W, None, None], TIMING);
        assert_eq!(
            kinds,
            vec![
                (0, TransitionKind::Pending),
                (20, TransitionKind::Cancelled)
            ]
        );
    }

    #[test]
    fn escalates_at_once_and_deescalates_and_resolves_after_keep_firing_for() {
        let zero_pending = Timing {
            pending_for: 0,
            keep_firing_for: 30,
        };
        let kinds = run(&[W, C, W, W, W, W, None, None, None, None], zero_pending);
        assert_eq!(
            kinds,
            vec![
                (0, TransitionKind::Firing),
                (10, TransitionKind::Escalated),
                (50, TransitionKind::Deescalated),
                (90, TransitionKind::Resolved),
            ]
        );
    }

    #[test]
    fn returning_to_the_firing_level_resets_keep_firing_for() {
        let zero_pending = Timing {
            pending_for: 0,
            keep_firing_for: 30,
        };
        // Drops at 10 and 20, back at 30, drops again from 40: resolves at 40 + 30.
        let kinds = run(&[W, None, None, W, None, None, None, None], zero_pending);
        assert_eq!(
            kinds,
            vec![(0, TransitionKind::Firing), (70, TransitionKind::Resolved)]
        );
    }

    #[test]
    fn no_data_fires_immediately_and_a_new_episode_clears_the_ack() {
        let mut state = AlertState::new("r", labels("api"), 0);
        state.ack = Some(Acknowledgement {
            by: "ann".into(),
            at: 0,
        });
        let no_data = Observation {
            level: C,
            value: None,
            reason: Reason::NoData,
            immediate: true,
        };
        let s = step(&state, &no_data, TIMING, 100);
        assert_eq!(s.next.status, AlertStatus::Firing);
        assert_eq!(s.next.reason, Some(Reason::NoData));
        assert_eq!(s.next.ack, None);
        assert_eq!(s.transitions[0].kind, TransitionKind::Firing);
    }

    #[test]
    fn an_unchanged_firing_alert_needs_no_write() {
        let zero_pending = Timing {
            pending_for: 0,
            keep_firing_for: 0,
        };
        let state = AlertState::new("r", labels("api"), 0);
        let fired = step(&state, &obs(W), zero_pending, 0).next;
        let again = step(&fired, &obs(W), zero_pending, 10);
        assert!(!again.needs_write(&fired));
        let inactive = step(&state, &obs(None), zero_pending, 10);
        assert!(!inactive.needs_write(&state));
    }

    #[test]
    fn fingerprint_depends_on_rule_and_every_label() {
        let a = fingerprint("latency", &labels("api"));
        assert_eq!(a.len(), 16);
        assert_ne!(a, fingerprint("latency", &labels("web")));
        assert_ne!(a, fingerprint("errors", &labels("api")));
        assert_eq!(a, fingerprint("latency", &labels("api")));
    }
}
