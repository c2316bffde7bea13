//! What alert delivery carries: one [`Notification`] per service and group window, and the
//! [`DeadLetter`] kept when a sink refused it. Grouping, retries and delivery are in
//! `crate::alerts::notify`.

use serde::{Deserialize, Serialize};

use super::state::{AlertStatus, AlertTransition};
use crate::model::stable_hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// At least one alert in the message is firing.
    Firing,
    /// Every alert in the message has resolved.
    Resolved,
}

/// One message to a sink: the transitions of one service within a group window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    /// Stable for the same content, so receivers can drop a retried duplicate.
    pub id: String,
    pub service: String,
    pub status: NotificationStatus,
    pub alerts: Vec<AlertTransition>,
    pub created_at: i64,
}

impl Notification {
    pub fn new(service: String, alerts: Vec<AlertTransition>, created_at: i64) -> Notification {
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            NotificationStatus::Firing
        } else {
            NotificationStatus::Resolved
        };
        let mut parts: Vec<String> = vec![service.clone()];
        for a in &alerts {
            parts.push(a.fingerprint.clone());
            parts.push(format!("{:?}@{}", a.kind, a.at));
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        Notification {
            id: format!("{:016x}", stable_hash(&parts)),
            service,
            status,
            alerts,
            created_at,
        }
    }

    /// The message as plain text (Slack-flavoured markdown): a headline and one line per alert.
    pub fn text(&self) -> String {
        let firing = self
            .alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .count();
        let resolved = self.alerts.len() - firing;
        let icon = match self.status {
            NotificationStatus::Firing => ":rotating_light:",
            NotificationStatus::Resolved => ":white_check_mark:",
        };
        let mut headline = format!("{icon} *{}*:", self.service);
        if firing > 0 {
            headline.push_str(&format!(" {firing} firing"));
        }
        if resolved > 0 {
            headline.push_str(&format!(
                "{} {resolved} resolved",
                if firing > 0 { "," } else { "" }
            ));
        }
        let mut out = headline;
        for alert in &self.alerts {
            let tag = match (alert.status, alert.severity) {
                (AlertStatus::Firing, Some(severity)) => severity.as_str().to_uppercase(),
                (AlertStatus::Firing, None) => "FIRING".to_string(),
                _ => "RESOLVED".to_string(),
            };
            out.push_str(&format!("\n• [{tag}] {} — {}", alert.rule, alert.summary));
        }
        out
    }
}

/// A notification that could not be delivered to a sink, kept for inspection and replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: String,
    pub sink: String,
    pub notification: Notification,
    pub error: String,
    pub attempts: u32,
    /// When delivery started (the dispatcher's `now`).
    pub failed_at: i64,
    pub expires_at: i64,
}
