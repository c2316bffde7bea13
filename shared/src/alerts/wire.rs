//! The WebSocket `alert` event: one alert transition, pushed to clients subscribed to its service.
//!
//! `{"type":"alert","fingerprint":"…","rule":"high-latency","service":"checkout","labels":{…},
//! "kind":"firing","status":"firing","severity":"critical",…}`. Documented in `docs/alerts.md`.

use serde::{Deserialize, Serialize};

use super::state::{AlertStatus, AlertTransition, Labels, Reason, Severity, TransitionKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename = "alert")]
pub struct AlertEvent {
    pub fingerprint: String,
    pub rule: String,
    /// The `service` label, for subscription filtering.
    pub service: Option<String>,
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
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl AlertEvent {
    pub fn from_transition(t: &AlertTransition) -> AlertEvent {
        AlertEvent {
            fingerprint: t.fingerprint.clone(),
            rule: t.rule.clone(),
            service: t.service().map(str::to_string),
            labels: t.labels.clone(),
            kind: t.kind,
            status: t.status,
            previous_status: t.previous_status,
            severity: t.severity,
            previous_severity: t.previous_severity,
            value: t.value.filter(|v| v.is_finite()),
            reason: t.reason,
            at: t.at,
            summary: t.summary.clone(),
            by: t.by.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys and finite numbers: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","message":"cannot encode alert event: {e}"}}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_is_tagged_alert_and_round_trips() {
        let mut labels = Labels::new();
        labels.insert("service".into(), "checkout".into());
        let t = AlertTransition {
            fingerprint: "00000000000000ff".into(),
            rule: "high-latency".into(),
            labels,
            kind: TransitionKind::Firing,
            status: AlertStatus::Firing,
            previous_status: AlertStatus::Pending,
            severity: Some(Severity::Critical),
            previous_severity: Some(Severity::Critical),
            value: Some(1234.5),
            reason: Some(Reason::Threshold),
            at: 1_700_000_000,
            summary: "p95 is 1234.5 ms".into(),
            by: None,
        };
        let event = AlertEvent::from_transition(&t);
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(json["type"], "alert");
        assert_eq!(json["service"], "checkout");
        assert_eq!(json["severity"], "critical");
        assert_eq!(json["kind"], "firing");
        let back: AlertEvent = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event);
    }
}
