//! The alerting API's operations, served over HTTP by [`crate::http::api`] (local mode's gateway and
//! the query Lambda serve the same router):
//!
//! - `GET /api/alerts` — active (pending and firing) alerts, with acknowledgement and silenced flag
//! - `GET /api/alerts/history?from&to&limit&fingerprint&rule&service` — transitions, newest first
//! - `POST /api/alerts/{fingerprint}/ack` with `{"by": "..."}` — acknowledge a firing alert
//! - `GET /api/alerts/dead-letters?limit` — notifications that could not be delivered
//! - `GET /api/silences[?all=true]`, `POST /api/silences`, `DELETE /api/silences/{id}`
//! - `GET /api/alert-rules` — the rules in force and their version (sink URLs left out: secrets)
//! - `PUT /api/alert-rules` — replace them (admin key; validated; conditional on `If-Match`)

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::live_rules::{RuleSource, Versioned};
use super::notify::DeadLetter;
use super::rules::{RuleKind, RuleSet, SinkKind};
use super::silence::{is_silenced, Silence, SilenceRequest};
use super::state::{
    Acknowledgement, AlertState, AlertStatus, AlertTransition, Labels, Reason, Severity,
    TransitionKind,
};
use super::wire::AlertEvent;
use crate::ports::{AlertStore, AlertStoreError, PutOutcome};
use crate::query::{MAX_TIMESTAMP, MIN_TIMESTAMP};

/// Default history range when `from` is omitted.
pub const DEFAULT_HISTORY_S: i64 = 86_400;
/// Transitions listed when `limit` is absent, and the most a request may ask for.
pub const DEFAULT_HISTORY_LIMIT: usize = 500;
pub const MAX_HISTORY_LIMIT: usize = 5000;
/// Dead letters listed when `limit` is absent, and the most a request may ask for.
pub const DEFAULT_DEAD_LETTER_LIMIT: usize = 100;
pub const MAX_DEAD_LETTER_LIMIT: usize = 1000;
/// Largest request body accepted (a silence with many matchers is still tiny).
const MAX_BODY_BYTES: usize = 64 * 1024;
const ACK_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum AlertApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] AlertStoreError),
}

impl AlertApiError {
    pub fn status(&self) -> u16 {
        match self {
            AlertApiError::BadRequest(_) => 400,
            AlertApiError::NotFound(_) => 404,
            AlertApiError::Conflict(_) => 409,
            AlertApiError::Store(AlertStoreError::Throttled(_)) => 503,
            AlertApiError::Store(_) => 500,
        }
    }
}

/// An active alert as `GET /api/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActiveAlert {
    pub fingerprint: String,
    pub rule: String,
    pub description: String,
    pub labels: Labels,
    pub status: AlertStatus,
    pub severity: Option<Severity>,
    pub value: Option<f64>,
    pub unit: String,
    /// The threshold of the current severity (threshold rules).
    pub threshold: Option<f64>,
    pub summary: String,
    pub reason: Option<Reason>,
    pub since: i64,
    pub firing_since: Option<i64>,
    pub acknowledged: Option<Acknowledgement>,
    /// Notifications for it are suppressed by a silence right now.
    pub silenced: bool,
}

/// The body of `POST /api/alerts/{fingerprint}/ack`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Who acknowledges.
    pub by: String,
}

/// A notification sink as `GET /api/alert-rules` shows it: name and kind (the URL is a secret).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SinkSummary {
    pub name: String,
    pub kind: SinkKind,
}

/// `GET /api/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// Most urgent first: firing before pending, critical before warning, oldest first.
    pub alerts: Vec<ActiveAlert>,
}

/// `GET /api/alerts/history`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertHistory {
    pub from: i64,
    pub to: i64,
    /// Newest first.
    pub history: Vec<AlertTransition>,
}

/// `GET /api/alerts/dead-letters`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
}

/// `POST /api/alerts/{fingerprint}/ack`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AcknowledgedAlert {
    pub alert: AlertState,
}

/// `GET /api/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SilenceList {
    /// Oldest first.
    pub silences: Vec<Silence>,
}

/// `POST /api/silences` (201).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CreatedSilence {
    pub silence: Silence,
}

/// `DELETE /api/silences/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeletedSilence {
    /// The id of the silence that was expired.
    pub deleted: String,
}

/// `GET /api/alert-rules`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRules {
    /// The version in force: 0 for the rule file (or the built-in rules), then 1, 2, … for each
    /// replacement through `PUT /api/alert-rules`. Also the response's `ETag` (`"3"`).
    pub version: u64,
    /// The rules as loaded (`infra/alert-rules.yaml`, `docs/alerts.md`).
    pub rules: Vec<super::rules::Rule>,
    pub settings: super::rules::Settings,
    pub notifications: NotificationsSummary,
}

/// The notification settings of `GET /api/alert-rules`, sink URLs left out.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationsSummary {
    /// A duration (`30s`).
    pub group_wait: String,
    pub retry: super::rules::RetrySettings,
    pub sinks: Vec<SinkSummary>,
}

/// What `GET /api/alerts/history` lists: transitions in `[from, to)`, at most `limit`, optionally
/// of one alert, rule or service (parsed and defaulted from the query string by
/// `crate::http::params::HistoryParams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFilter {
    pub from: i64,
    pub to: i64,
    pub limit: usize,
    pub fingerprint: Option<String>,
    pub rule: Option<String>,
    pub service: Option<String>,
}

pub struct AlertApi<A: AlertStore + ?Sized> {
    store: Arc<A>,
    source: RuleSource,
}

impl<A: AlertStore + ?Sized> AlertApi<A> {
    pub fn new(store: Arc<A>, rules: Arc<RuleSet>) -> Self {
        AlertApi {
            store,
            source: RuleSource::fixed(rules),
        }
    }

    /// The same store, with rules from `source` (replaceable through `PUT /api/alert-rules` when
    /// it has a store; shared with the evaluator through its [`super::LiveRules`]).
    pub fn with_source(&self, source: RuleSource) -> Self {
        AlertApi {
            store: self.store.clone(),
            source,
        }
    }

    pub fn source(&self) -> &RuleSource {
        &self.source
    }

    /// The rules in force (the store's current version, read again; what is in force here when
    /// the store cannot be read).
    async fn current_rules(&self) -> Versioned {
        match self.source.refresh().await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "reading the alert rules store failed; serving the rules in force");
                self.source.live().get()
            }
        }
    }

    /// `GET /api/alerts/dead-letters?limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<DeadLetters, AlertApiError> {
        let dead_letters = self.store.list_dead_letters(limit).await?;
        Ok(DeadLetters { dead_letters })
    }

    /// `POST /api/alerts/{fingerprint}/ack` with `{"by": "..."}`: the alert, and the events to push
    /// to live clients (none when it was acknowledged before).
    pub async fn acknowledge(
        &self,
        fingerprint: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(AcknowledgedAlert, Vec<AlertEvent>), AlertApiError> {
        let request: AckRequest = parse_body(body)?;
        let by = request.by.trim();
        if by.is_empty() {
            return Err(AlertApiError::BadRequest(
                "`by` must name who acknowledges".into(),
            ));
        }
        let (state, transition) = acknowledge(
            self.store.as_ref(),
            fingerprint,
            by,
            now,
            self.source.live().rules().settings.history_retention_s,
        )
        .await?;
        let events = transition.iter().map(AlertEvent::from_transition).collect();
        Ok((AcknowledgedAlert { alert: state }, events))
    }

    /// `GET /api/silences[?all=true]`: active silences (all of them with `all`), oldest first.
    pub async fn silences(
        &self,
        all: Option<&str>,
        now: i64,
    ) -> Result<SilenceList, AlertApiError> {
        let all = all.is_some_and(|v| v == "true" || v == "1");
        let mut silences: Vec<Silence> = self
            .store
            .list_silences()
            .await?
            .into_iter()
            .filter(|s| all || s.ends_at > now)
            .collect();
        silences.sort_by(|a, b| (a.starts_at, &a.id).cmp(&(b.starts_at, &b.id)));
        Ok(SilenceList { silences })
    }

    /// `POST /api/silences`: the created silence (answered with 201).
    pub async fn create_silence(
        &self,
        body: &[u8],
        now: i64,
    ) -> Result<CreatedSilence, AlertApiError> {
        let request: SilenceRequest = parse_body(body)?;
        check_silence_times(&request)?;
        let id = format!("{:016x}", rand::random::<u64>());
        let silence = request
            .into_silence(id, now)
            .map_err(AlertApiError::BadRequest)?;
        self.store.put_silence(&silence).await?;
        Ok(CreatedSilence { silence })
    }

    /// `DELETE /api/silences/{id}`.
    pub async fn delete_silence(&self, id: &str) -> Result<DeletedSilence, AlertApiError> {
        if self.store.delete_silence(id).await? {
            Ok(DeletedSilence {
                deleted: id.to_string(),
            })
        } else {
            Err(AlertApiError::NotFound(format!("no silence {id:?}")))
        }
    }

    /// `GET /api/alert-rules`: the loaded rules, settings and sinks (names and kinds only: sink URLs
    /// are secrets).
    pub async fn rules(&self) -> AlertRules {
        let Versioned { version, rules } = self.current_rules().await;
        let sinks: Vec<SinkSummary> = rules
            .notifications
            .sinks
            .iter()
            .map(|s| SinkSummary {
                name: s.name.clone(),
                kind: s.kind,
            })
            .collect();
        AlertRules {
            version,
            rules: rules.rules.clone(),
            settings: rules.settings.clone(),
            notifications: NotificationsSummary {
                group_wait: super::rules::format_duration(rules.notifications.group_wait_s),
                retry: rules.notifications.retry,
                sinks,
            },
        }
    }

    /// `GET /api/alerts`: active (pending and firing) alerts, most urgent first.
    pub async fn active(&self, now: i64) -> Result<AlertList, AlertApiError> {
        let silences = self.store.list_silences().await?;
        let rules = self.current_rules().await.rules;
        let mut alerts: Vec<ActiveAlert> = self
            .store
            .list_states()
            .await?
            .into_iter()
            .filter(|s| s.status.is_active())
            .map(|s| {
                let rule = rules.rule(&s.rule);
                ActiveAlert {
                    silenced: is_silenced(&silences, &s.rule, &s.labels, s.severity, now),
                    description: rule.map(|r| r.description.clone()).unwrap_or_default(),
                    unit: rule.map(|r| r.unit.clone()).unwrap_or_default(),
                    threshold: rule
                        .filter(|r| r.kind == RuleKind::Threshold)
                        .and_then(|r| match s.severity {
                            Some(Severity::Critical) => r.critical,
                            Some(Severity::Warning) => r.warning,
                            None => None,
                        }),
                    summary: s.summary,
                    fingerprint: s.fingerprint,
                    rule: s.rule,
                    labels: s.labels,
                    status: s.status,
                    severity: s.severity,
                    value: s.value.filter(|v| v.is_finite()),
                    reason: s.reason,
                    since: s.since,
                    firing_since: s.firing_since,
                    acknowledged: s.ack,
                }
            })
            .collect();
        // Most urgent first: firing before pending, critical before warning, oldest first.
        alerts.sort_by(|a, b| {
            (
                b.status == AlertStatus::Firing,
                b.severity,
                a.since,
                &a.fingerprint,
            )
                .cmp(&(
                    a.status == AlertStatus::Firing,
                    a.severity,
                    b.since,
                    &b.fingerprint,
                ))
        });
        Ok(AlertList { alerts })
    }

    /// `GET /api/alerts/history?from&to&limit&fingerprint&rule&service`: transitions, newest first.
    pub async fn history(&self, params: &HistoryFilter) -> Result<AlertHistory, AlertApiError> {
        let HistoryFilter {
            from, to, limit, ..
        } = *params;
        if from >= to {
            return Err(AlertApiError::BadRequest(format!(
                "`from` ({from}) must be before `to` ({to})"
            )));
        }
        let filtered =
            params.fingerprint.is_some() || params.rule.is_some() || params.service.is_some();
        // Filters apply after reading, so read the most a response may hold when filtering.
        let read_limit = if filtered { MAX_HISTORY_LIMIT } else { limit };
        let mut entries: Vec<AlertTransition> = self
            .store
            .history(from, to, read_limit)
            .await?
            .into_iter()
            .filter(|t| {
                params
                    .fingerprint
                    .as_ref()
                    .is_none_or(|f| *f == t.fingerprint)
                    && params.rule.as_ref().is_none_or(|r| *r == t.rule)
                    && params
                        .service
                        .as_ref()
                        .is_none_or(|s| t.service() == Some(s.as_str()))
            })
            .collect();
        entries.truncate(limit);
        Ok(AlertHistory {
            from,
            to,
            history: entries,
        })
    }
}

/// `starts_at` / `ends_at` of a silence within the API's timestamp range, so that no arithmetic on
/// them can overflow.
fn check_silence_times(request: &SilenceRequest) -> Result<(), AlertApiError> {
    for (name, value) in [
        ("starts_at", request.starts_at),
        ("ends_at", request.ends_at),
    ] {
        if let Some(t) = value.filter(|t| !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(t)) {
            return Err(AlertApiError::BadRequest(format!(
                "`{name}` must be unix seconds from {MIN_TIMESTAMP} to {MAX_TIMESTAMP} (1970-01-01 to 9999-12-31), got {t}"
            )));
        }
    }
    Ok(())
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AlertApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AlertApiError::BadRequest(format!(
            "request body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| AlertApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Records `by`'s acknowledgement of a firing alert (conditionally, like the engine's writes) and an
/// `acknowledged` history entry. Acknowledging again keeps the first acknowledgement and returns no
/// transition.
pub async fn acknowledge<A: AlertStore + ?Sized>(
    store: &A,
    fingerprint: &str,
    by: &str,
    now: i64,
    history_retention_s: i64,
) -> Result<(AlertState, Option<AlertTransition>), AlertApiError> {
    for _ in 0..ACK_ATTEMPTS {
        let state = store
            .get_state(fingerprint)
            .await?
            .ok_or_else(|| AlertApiError::NotFound(format!("no alert {fingerprint:?}")))?;
        if state.status != AlertStatus::Firing {
            return Err(AlertApiError::Conflict(format!(
                "alert {fingerprint} is {}, only a firing alert can be acknowledged",
                serde_json::to_value(state.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )));
        }
        if state.ack.is_some() {
            return Ok((state, None));
        }
        let mut next = state.clone();
        // `updated_at` stays: it orders evaluations, and the API's clock is not the evaluator's.
        next.ack = Some(Acknowledgement {
            by: by.to_string(),
            at: now,
        });
        let transition = AlertTransition {
            fingerprint: state.fingerprint.clone(),
            rule: state.rule.clone(),
            labels: state.labels.clone(),
            kind: TransitionKind::Acknowledged,
            status: state.status,
            previous_status: state.status,
            severity: state.severity,
            previous_severity: state.severity,
            value: state.value,
            reason: state.reason,
            at: now,
            summary: format!("acknowledged by {by}"),
            by: Some(by.to_string()),
        };
        match store
            .put_state(
                &next,
                state.version,
                std::slice::from_ref(&transition),
                now + history_retention_s,
            )
            .await?
        {
            PutOutcome::Written { version } => {
                next.version = version;
                return Ok((next, Some(transition)));
            }
            PutOutcome::Conflict { .. } => continue,
        }
    }
    Err(AlertApiError::Conflict(format!(
        "alert {fingerprint} kept changing; try again"
    )))
}
