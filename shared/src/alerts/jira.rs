//! The Jira sink: an issue per firing group through Jira's REST API (v2), a comment on every later
//! notification of the group, and on resolve a comment and a transition to the configured "Done"
//! transition.
//!
//! A group is a service (the dispatcher's grouping). The sink keeps, per group, the issue key and the
//! fingerprints of the alerts firing in it ([`IssueState`]) in a [`SinkStateStore`] — the alert
//! store — so a restart finds the open issue instead of filing a second one. The group resolves when
//! its last firing alert resolves: one alert resolving while another of the service still fires only
//! comments.
//!
//! One [`Notifier::send`] is one attempt of the whole step; the dispatcher retries it (408, 429, 5xx,
//! connection failures) and dead-letters it like any sink. A retry does not repeat what the attempt
//! already did: the state records the notification it applied, so a retried resolve whose comment
//! went through only transitions. The one gap: Jira takes no idempotency key, so if Jira created the
//! issue and the state write then failed, the retry files a second issue.
//!
//! Requests: `POST /rest/api/2/issue` (`fields`: project key, issue type, summary, description,
//! labels) → `{"key": …}`; `POST /rest/api/2/issue/{key}/comment` (`{"body": …}`);
//! `POST /rest/api/2/issue/{key}/transitions` (`{"transition": {"id": …}}`). Basic authentication
//! with the user and API token (Jira Cloud's scheme; a Data Center personal token works as the
//! password too).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use serde::{Deserialize, Serialize};

use super::notify::Notification;
use super::rules::{JiraSettings, SinkConfig};
use super::state::AlertStatus;
use super::webhook::{self, SinkConnector, DEFAULT_TIMEOUT};
use crate::ports::{Notifier, NotifyError, SinkStateStore};

/// Bytes of a Jira response read (the created issue's JSON, or an error message).
const RESPONSE_LIMIT: usize = 64 * 1024;
/// Jira refuses summaries longer than 255 characters.
const SUMMARY_CHARS: usize = 255;
/// Every issue carries this label, besides the configured ones.
pub const LABEL: &str = "flowscope";

/// What the sink remembers per group (JSON in the sink state store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueState {
    /// The open issue, once created.
    pub key: Option<String>,
    /// Fingerprints of the group's alerts that are firing.
    pub firing: BTreeSet<String>,
    /// The id of the last notification applied (created or commented), so a retry skips it.
    pub applied: Option<String>,
}

/// Everything a Jira sink needs, credentials resolved.
#[derive(Debug, Clone)]
pub struct JiraTarget {
    /// Base URL (`https://acme.atlassian.net`), without a trailing `/`.
    pub base_url: String,
    pub project: String,
    pub issue_type: String,
    pub labels: Vec<String>,
    pub done_transition: Option<String>,
    pub user: String,
    pub token: String,
}

impl JiraTarget {
    /// Resolves a `kind: jira` sink's URL, project and credentials through `env`. Errors name the sink
    /// and the missing variable, never a secret.
    pub fn resolve(
        sink: &SinkConfig,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<JiraTarget, String> {
        let settings: &JiraSettings = sink
            .jira
            .as_ref()
            .ok_or_else(|| format!("sink {:?}: a jira sink needs a `jira` section", sink.name))?;
        let var = |name: &str| {
            env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!(
                    "sink {:?}: environment variable {name} is not set",
                    sink.name
                )
            })
        };
        let base_url = sink.resolve_url(env)?.trim_end_matches('/').to_string();
        let project = match &settings.project {
            Some(project) => project.clone(),
            None => var(&settings.project_env)?,
        };
        Ok(JiraTarget {
            base_url,
            project,
            issue_type: settings.issue_type.clone(),
            labels: settings.labels.clone(),
            done_transition: settings
                .done_transition
                .clone()
                .or_else(|| env(&settings.done_transition_env).filter(|v| !v.is_empty())),
            user: var(&settings.user_env)?,
            token: var(&settings.token_env)?,
        })
    }
}

pub struct JiraNotifier {
    name: String,
    target: JiraTarget,
    authorization: HeaderValue,
    state: Arc<dyn SinkStateStore>,
    client: Client<SinkConnector, Full<Bytes>>,
}

impl JiraNotifier {
    /// A sink on the webhook sinks' HTTP(S) stack (OS root certificates), its group state in `state`.
    pub fn new(
        name: &str,
        target: JiraTarget,
        state: Arc<dyn SinkStateStore>,
    ) -> Result<JiraNotifier, String> {
        let uri: Uri = target
            .base_url
            .parse()
            .map_err(|e| format!("sink {name:?}: invalid Jira url: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "sink {name:?}: the Jira url must be http:// or https:// with a host"
            ));
        }
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", target.user, target.token));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| format!("sink {name:?}: the Jira credentials are not header-safe"))?;
        authorization.set_sensitive(true);
        Ok(JiraNotifier {
            name: name.to_string(),
            target,
            authorization,
            state,
            client: webhook::client()?,
        })
    }

    /// One REST call; the response body on 2xx.
    async fn call(&self, path: &str, body: serde_json::Value) -> Result<Bytes, NotifyError> {
        let uri: Uri = format!("{}{path}", self.target.base_url)
            .parse()
            .map_err(|e| NotifyError::Permanent(format!("invalid Jira url: {e}")))?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| NotifyError::Permanent(format!("cannot encode request: {e}")))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, self.authorization.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NotifyError::Permanent(format!("cannot build request: {e}")))?;
        let response = tokio::time::timeout(DEFAULT_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| {
                NotifyError::Retryable(format!("{path}: no response within {DEFAULT_TIMEOUT:?}"))
            })?
            .map_err(|e| NotifyError::Retryable(format!("{path}: {}", error_chain(&e))))?;
        let status = response.status();
        let body = match tokio::time::timeout(
            DEFAULT_TIMEOUT,
            Limited::new(response.into_body(), RESPONSE_LIMIT).collect(),
        )
        .await
        {
            Ok(Ok(body)) => body.to_bytes(),
            _ if status.is_success() => {
                return Err(NotifyError::Retryable(format!(
                    "{path}: the response body could not be read"
                )))
            }
            _ => Bytes::new(),
        };
        if status.is_success() {
            return Ok(body);
        }
        let snippet: String = String::from_utf8_lossy(&body).chars().take(512).collect();
        let message = format!("{path}: HTTP {status}: {}", snippet.trim());
        match status.as_u16() {
            408 | 429 | 500..=599 => Err(NotifyError::Retryable(message)),
            _ => Err(NotifyError::Permanent(message)),
        }
    }

    async fn create_issue(&self, notification: &Notification) -> Result<String, NotifyError> {
        let mut labels = vec![LABEL.to_string()];
        labels.extend(self.target.labels.iter().cloned());
        let body = serde_json::json!({
            "fields": {
                "project": { "key": self.target.project },
                "issuetype": { "name": self.target.issue_type },
                "summary": summary(notification),
                "description": description(notification),
                "labels": labels,
            }
        });
        let response = self.call("/rest/api/2/issue", body).await?;
        #[derive(Deserialize)]
        struct Created {
            key: String,
        }
        let created: Created = serde_json::from_slice(&response).map_err(|e| {
            NotifyError::Permanent(format!(
                "Jira created an issue but its answer has no key: {e}"
            ))
        })?;
        checked_key(created.key)
    }

    async fn comment(&self, key: &str, notification: &Notification) -> Result<(), NotifyError> {
        let path = format!("/rest/api/2/issue/{key}/comment");
        self.call(
            &path,
            serde_json::json!({ "body": description(notification) }),
        )
        .await
        .map(drop)
    }

    async fn transition(&self, key: &str, id: &str) -> Result<(), NotifyError> {
        let path = format!("/rest/api/2/issue/{key}/transitions");
        self.call(&path, serde_json::json!({ "transition": { "id": id } }))
            .await
            .map(drop)
    }

    async fn load(&self, group: &str) -> Result<IssueState, NotifyError> {
        let stored = self
            .state
            .get_sink_state(&self.name, group)
            .await
            .map_err(|e| NotifyError::Retryable(format!("reading the issue of {group:?}: {e}")))?;
        match stored {
            // Unreadable state is dropped rather than wedging the sink: the next firing files an issue.
            Some(json) => Ok(serde_json::from_str(&json).unwrap_or_default()),
            None => Ok(IssueState::default()),
        }
    }

    async fn save(&self, group: &str, state: &IssueState) -> Result<(), NotifyError> {
        let json = serde_json::to_string(state)
            .map_err(|e| NotifyError::Permanent(format!("cannot encode issue state: {e}")))?;
        self.state
            .put_sink_state(&self.name, group, &json)
            .await
            .map_err(|e| NotifyError::Retryable(format!("storing the issue of {group:?}: {e}")))
    }
}

/// Issue keys go into request paths: only `PROJECT-123`-like keys are taken.
fn checked_key(key: String) -> Result<String, NotifyError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(key)
    } else {
        Err(NotifyError::Permanent(format!(
            "Jira answered an unusable issue key {key:?}"
        )))
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = e.source();
    }
    message
}

/// `[Flowscope] checkout: high-latency, high-error-rate` (at most 255 characters).
pub fn summary(notification: &Notification) -> String {
    let mut rules: Vec<&str> = notification
        .alerts
        .iter()
        .map(|a| a.rule.as_str())
        .collect();
    rules.dedup();
    let text = format!("[Flowscope] {}: {}", notification.service, rules.join(", "));
    text.chars().take(SUMMARY_CHARS).collect()
}

/// One line per alert of the notification, in plain text.
pub fn description(notification: &Notification) -> String {
    let mut out = format!("Flowscope alerts for service {}:", notification.service);
    for alert in &notification.alerts {
        let tag = match (alert.status, alert.severity) {
            (AlertStatus::Firing, Some(severity)) => severity.as_str().to_uppercase(),
            (AlertStatus::Firing, None) => "FIRING".to_string(),
            _ => "RESOLVED".to_string(),
        };
        out.push_str(&format!(
            "\n* [{tag}] {} — {} (fingerprint {}, at {})",
            alert.rule, alert.summary, alert.fingerprint, alert.at
        ));
    }
    out
}

#[async_trait]
impl Notifier for JiraNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let group = notification.service.as_str();
        let mut state = self.load(group).await?;
        let mut firing = state.firing.clone();
        for alert in &notification.alerts {
            if alert.status == AlertStatus::Firing {
                firing.insert(alert.fingerprint.clone());
            } else {
                firing.remove(&alert.fingerprint);
            }
        }
        let already_applied = state.applied.as_deref() == Some(notification.id.as_str());
        let key = match state.key.clone() {
            None if firing.is_empty() => return Ok(()), // resolves of a group without an issue
            None => {
                let key = self.create_issue(notification).await?;
                state.key = Some(key.clone());
                key
            }
            Some(key) if already_applied => key,
            Some(key) => {
                self.comment(&key, notification).await?;
                key
            }
        };
        state.firing = firing;
        state.applied = Some(notification.id.clone());
        self.save(group, &state).await?;
        if state.firing.is_empty() {
            if let Some(id) = &self.target.done_transition {
                self.transition(&key, id).await?;
            }
            self.state
                .delete_sink_state(&self.name, group)
                .await
                .map_err(|e| {
                    NotifyError::Retryable(format!("forgetting the issue of {group:?}: {e}"))
                })?;
        }
        Ok(())
    }
}

/// Group state held in memory: for sinks built without a store (tests, tools). A restart forgets
/// the open issues.
#[derive(Debug, Default)]
pub struct MemorySinkState {
    entries: std::sync::Mutex<std::collections::BTreeMap<(String, String), String>>,
}

impl MemorySinkState {
    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(String, String), String>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SinkStateStore for MemorySinkState {
    async fn get_sink_state(
        &self,
        sink: &str,
        group: &str,
    ) -> Result<Option<String>, crate::ports::AlertStoreError> {
        Ok(self
            .entries()
            .get(&(sink.to_string(), group.to_string()))
            .cloned())
    }

    async fn put_sink_state(
        &self,
        sink: &str,
        group: &str,
        value: &str,
    ) -> Result<(), crate::ports::AlertStoreError> {
        self.entries()
            .insert((sink.to_string(), group.to_string()), value.to_string());
        Ok(())
    }

    async fn delete_sink_state(
        &self,
        sink: &str,
        group: &str,
    ) -> Result<bool, crate::ports::AlertStoreError> {
        Ok(self
            .entries()
            .remove(&(sink.to_string(), group.to_string()))
            .is_some())
    }
}
