//! The alerting HTTP API as a function of (method, path, query, body), like [`crate::query::QueryApi`],
//! so local mode's gateway and the query Lambda serve the same routes:
//!
//! - `GET /api/alerts` — active (pending and firing) alerts, with acknowledgement and silenced flag
//! - `GET /api/alerts/history?from&to&limit&fingerprint&rule&service` — transitions, newest first
//! - `POST /api/alerts/{fingerprint}/ack` with `{"by": "..."}` — acknowledge a firing alert
//! - `GET /api/alerts/dead-letters?limit` — notifications that could not be delivered
//! - `GET /api/silences[?all=true]`, `POST /api/silences`, `DELETE /api/silences/{id}`
//! - `GET /api/alert-rules` — the loaded rules (sink URLs left out: they are secrets)

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::rules::{RuleKind, RuleSet, SinkKind};
use super::silence::{is_silenced, Silence, SilenceRequest};
use super::state::{
    Acknowledgement, AlertState, AlertStatus, AlertTransition, Labels, Reason, Severity,
    TransitionKind,
};
use super::wire::AlertEvent;
use crate::ports::{AlertStore, AlertStoreError, PutOutcome};
use crate::query::{
    parse_query, percent_decode, timestamp_param, ApiResponse, MAX_TIMESTAMP, MIN_TIMESTAMP,
};

/// Default history range when `from` is omitted.
const DEFAULT_HISTORY_S: i64 = 86_400;
const DEFAULT_HISTORY_LIMIT: usize = 500;
const MAX_HISTORY_LIMIT: usize = 5000;
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
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error(transparent)]
    Store(#[from] AlertStoreError),
}

impl AlertApiError {
    pub fn status(&self) -> u16 {
        match self {
            AlertApiError::BadRequest(_) => 400,
            AlertApiError::NotFound(_) => 404,
            AlertApiError::Conflict(_) => 409,
            AlertApiError::MethodNotAllowed { .. } => 405,
            AlertApiError::Store(AlertStoreError::Throttled(_)) => 503,
            AlertApiError::Store(_) => 500,
        }
    }
}

/// An active alert as `GET /api/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    by: String,
}

#[derive(Serialize)]
struct SinkSummary<'a> {
    name: &'a str,
    kind: SinkKind,
}

/// An API response plus the alert events it caused (an acknowledgement), for the live push.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertApiOutcome {
    pub response: ApiResponse,
    pub events: Vec<AlertEvent>,
}

pub struct AlertApi<A: AlertStore + ?Sized> {
    store: Arc<A>,
    rules: Arc<RuleSet>,
}

impl<A: AlertStore + ?Sized> AlertApi<A> {
    pub fn new(store: Arc<A>, rules: Arc<RuleSet>) -> Self {
        AlertApi { store, rules }
    }

    /// Whether `path` is one of this API's routes (for the gateway's dispatch).
    pub fn handles(path: &str) -> bool {
        let path = path.trim_end_matches('/');
        path == "/api/alerts"
            || path.starts_with("/api/alerts/")
            || path == "/api/silences"
            || path.starts_with("/api/silences/")
            || path == "/api/alert-rules"
    }

    /// Serves one request; `now_unix_s` stamps acknowledgements and silences.
    pub async fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        now_unix_s: i64,
    ) -> ApiResponse {
        self.handle_with_events(method, path, query, body, now_unix_s)
            .await
            .response
    }

    /// [`AlertApi::handle`], also returning the events to push to live clients.
    pub async fn handle_with_events(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        now_unix_s: i64,
    ) -> AlertApiOutcome {
        let mut events = Vec::new();
        let response = match self
            .route(method, path, query, body, now_unix_s, &mut events)
            .await
        {
            Ok((status, value)) => ApiResponse {
                status,
                body: value.to_string(),
            },
            Err(error) => ApiResponse {
                status: error.status(),
                body: serde_json::json!({ "error": error.to_string() }).to_string(),
            },
        };
        AlertApiOutcome { response, events }
    }

    async fn route(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        now: i64,
        events: &mut Vec<AlertEvent>,
    ) -> Result<(u16, serde_json::Value), AlertApiError> {
        let params = parse_query(query);
        let segments: Vec<String> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let not_allowed = || AlertApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
        };
        if body.len() > MAX_BODY_BYTES {
            return Err(AlertApiError::BadRequest(format!(
                "request body is larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        let method = method.to_ascii_uppercase();
        match (segments.as_slice(), method.as_str()) {
            (["api", "alerts"], "GET") => Ok((200, self.active(now).await?)),
            (["api", "alerts", "history"], "GET") => Ok((200, self.history(&params, now).await?)),
            (["api", "alerts", "dead-letters"], "GET") => {
                let limit = limit_param(&params, 100, 1000)?;
                let letters = self.store.list_dead_letters(limit).await?;
                Ok((200, serde_json::json!({ "dead_letters": letters })))
            }
            (["api", "alerts", fingerprint, "ack"], "POST") => {
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
                    self.rules.settings.history_retention_s,
                )
                .await?;
                if let Some(t) = &transition {
                    events.push(AlertEvent::from_transition(t));
                }
                Ok((200, serde_json::json!({ "alert": state })))
            }
            (["api", "silences"], "GET") => {
                let all = params.get("all").is_some_and(|v| v == "true" || v == "1");
                let mut silences: Vec<Silence> = self
                    .store
                    .list_silences()
                    .await?
                    .into_iter()
                    .filter(|s| all || s.ends_at > now)
                    .collect();
                silences.sort_by(|a, b| (a.starts_at, &a.id).cmp(&(b.starts_at, &b.id)));
                Ok((200, serde_json::json!({ "silences": silences })))
            }
            (["api", "silences"], "POST") => {
                let request: SilenceRequest = parse_body(body)?;
                check_silence_times(&request)?;
                let id = format!("{:016x}", rand::random::<u64>());
                let silence = request
                    .into_silence(id, now)
                    .map_err(AlertApiError::BadRequest)?;
                self.store.put_silence(&silence).await?;
                Ok((201, serde_json::json!({ "silence": silence })))
            }
            (["api", "silences", id], "DELETE") => {
                if self.store.delete_silence(id).await? {
                    Ok((200, serde_json::json!({ "deleted": id })))
                } else {
                    Err(AlertApiError::NotFound(format!("no silence {id:?}")))
                }
            }
            (["api", "alert-rules"], "GET") => {
                let sinks: Vec<SinkSummary<'_>> = self
                    .rules
                    .notifications
                    .sinks
                    .iter()
                    .map(|s| SinkSummary {
                        name: &s.name,
                        kind: s.kind,
                    })
                    .collect();
                Ok((
                    200,
                    serde_json::json!({
                        "rules": self.rules.rules,
                        "settings": self.rules.settings,
                        "notifications": {
                            "group_wait": super::rules::format_duration(self.rules.notifications.group_wait_s),
                            "retry": self.rules.notifications.retry,
                            "sinks": sinks,
                        },
                    }),
                ))
            }
            (
                ["api", "alerts"]
                | ["api", "alerts", "history" | "dead-letters"]
                | ["api", "alerts", _, "ack"]
                | ["api", "silences"]
                | ["api", "silences", _]
                | ["api", "alert-rules"],
                _,
            ) => Err(not_allowed()),
            _ => Err(AlertApiError::NotFound(format!("no route for {path}"))),
        }
    }

    async fn active(&self, now: i64) -> Result<serde_json::Value, AlertApiError> {
        let silences = self.store.list_silences().await?;
        let mut alerts: Vec<ActiveAlert> = self
            .store
            .list_states()
            .await?
            .into_iter()
            .filter(|s| s.status.is_active())
            .map(|s| {
                let rule = self.rules.rule(&s.rule);
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
        Ok(serde_json::json!({ "alerts": alerts }))
    }

    async fn history(
        &self,
        params: &std::collections::BTreeMap<String, String>,
        now: i64,
    ) -> Result<serde_json::Value, AlertApiError> {
        let to = timestamp_param(params, "to")
            .map_err(AlertApiError::BadRequest)?
            .unwrap_or_else(|| now.saturating_add(1).clamp(MIN_TIMESTAMP, MAX_TIMESTAMP));
        let from = timestamp_param(params, "from")
            .map_err(AlertApiError::BadRequest)?
            .unwrap_or_else(|| to.saturating_sub(DEFAULT_HISTORY_S).max(MIN_TIMESTAMP));
        if from >= to {
            return Err(AlertApiError::BadRequest(format!(
                "`from` ({from}) must be before `to` ({to})"
            )));
        }
        let limit = limit_param(params, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)?;
        let filtered = ["fingerprint", "rule", "service"]
            .iter()
            .any(|k| params.contains_key(*k));
        // Filters apply after reading, so read the most a response may hold when filtering.
        let read_limit = if filtered { MAX_HISTORY_LIMIT } else { limit };
        let mut entries: Vec<AlertTransition> = self
            .store
            .history(from, to, read_limit)
            .await?
            .into_iter()
            .filter(|t| {
                params
                    .get("fingerprint")
                    .is_none_or(|f| *f == t.fingerprint)
                    && params.get("rule").is_none_or(|r| *r == t.rule)
                    && params
                        .get("service")
                        .is_none_or(|s| t.service() == Some(s.as_str()))
            })
            .collect();
        entries.truncate(limit);
        Ok(serde_json::json!({ "from": from, "to": to, "history": entries }))
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

fn limit_param(
    params: &std::collections::BTreeMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, AlertApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(AlertApiError::BadRequest(format!(
                "`limit` must be a number from 1 to {max}, got {v:?}"
            ))),
        },
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AlertApiError> {
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
