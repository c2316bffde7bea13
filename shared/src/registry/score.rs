//! The health score of a service, 0–100 (issue 13 item 3). The formula and its inputs are described
//! in `docs/health-score.md`; [`score`] is the formula, [`gather`] reads its inputs from the ports.
//!
//! In short: availability from the newest minute of health probes (or fresh telemetry when nothing
//! probes the service), minus penalties for slow probes, silent telemetry and alerts (firing
//! critical / warning, pending). No probes and no fresh telemetry is `unknown`, never healthy.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;

use crate::domain::stats::BucketStats;

use crate::domain::alerts::state::{AlertState, AlertStatus, Severity};
use crate::model::Resolution;
use crate::ports::{AlertStore, MetricStore, StoreError};

use super::probe::{gauge, string_kv, DURATION_METRIC, UP_METRIC};

/// The series the score is stored as (a gauge per service, `1` unit).
pub const SCORE_METRIC: &str = "flowscope.health.score";

/// Tunables of the formula (documented defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreSettings {
    /// Telemetry older than this is silence.
    pub stale_after_s: i64,
    /// Probe p95 at or under this costs nothing.
    pub slow_probe_s: f64,
    /// The probe timeout: a p95 there costs the whole latency penalty.
    pub probe_timeout_s: f64,
}

impl Default for ScoreSettings {
    fn default() -> Self {
        ScoreSettings {
            stale_after_s: 300,
            slow_probe_s: 1.0,
            probe_timeout_s: 5.0,
        }
    }
}

pub const LATENCY_PENALTY: f64 = 25.0;
pub const SILENCE_PENALTY: f64 = 30.0;
pub const CRITICAL_PENALTY: f64 = 50.0;
pub const WARNING_PENALTY: f64 = 20.0;
pub const PENDING_PENALTY: f64 = 5.0;

/// What the score is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScoreInputs {
    /// Share of successful probes (0–1) in the newest minute with probe results.
    pub probe_availability: Option<f64>,
    /// p95 probe duration in that minute, seconds.
    pub probe_p95_s: Option<f64>,
    /// Unix seconds of the newest telemetry point (probe and score series excluded); `None` if the
    /// service never sent any.
    pub last_telemetry: Option<i64>,
    pub firing_critical: u32,
    pub firing_warning: u32,
    pub pending: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Down,
    Unknown,
}

/// A score and why it is what it is.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthScore {
    /// `None` when unknown.
    pub score: Option<f64>,
    pub status: HealthStatus,
    pub reasons: Vec<String>,
    pub inputs: ScoreInputs,
}

/// ≥ 80 healthy, ≥ 50 degraded, below down.
pub fn status_of(score: f64) -> HealthStatus {
    if score >= 80.0 {
        HealthStatus::Healthy
    } else if score >= 50.0 {
        HealthStatus::Degraded
    } else {
        HealthStatus::Down
    }
}

/// The formula of `docs/health-score.md`.
pub fn score(inputs: &ScoreInputs, settings: &ScoreSettings, now: i64) -> HealthScore {
    let mut reasons = Vec::new();
    let fresh = inputs
        .last_telemetry
        .is_some_and(|at| now - at <= settings.stale_after_s);
    let availability = match inputs.probe_availability {
        Some(a) => {
            let a = a.clamp(0.0, 1.0);
            if a < 1.0 {
                reasons.push(format!("{:.0}% of health probes succeeded", a * 100.0));
            }
            a
        }
        None if fresh => 1.0,
        None => {
            reasons.push(match inputs.last_telemetry {
                Some(at) => format!("no health probes and no telemetry for {}s", now - at),
                None => "no health probes and no telemetry".to_string(),
            });
            return HealthScore {
                score: None,
                status: HealthStatus::Unknown,
                reasons,
                inputs: inputs.clone(),
            };
        }
    };
    let mut value = 100.0 * availability;
    if let Some(p95) = inputs.probe_p95_s {
        if p95 > settings.slow_probe_s {
            let span = (settings.probe_timeout_s - settings.slow_probe_s).max(f64::EPSILON);
            let share = ((p95 - settings.slow_probe_s) / span).clamp(0.0, 1.0);
            value -= LATENCY_PENALTY * share;
            reasons.push(format!("health probes are slow (p95 {p95:.2}s)"));
        }
    }
    if inputs.probe_availability.is_some() && inputs.last_telemetry.is_some() && !fresh {
        value -= SILENCE_PENALTY;
        reasons.push(format!(
            "no telemetry for more than {}s",
            settings.stale_after_s
        ));
    }
    let alerts = CRITICAL_PENALTY * f64::from(inputs.firing_critical)
        + WARNING_PENALTY * f64::from(inputs.firing_warning)
        + PENDING_PENALTY * f64::from(inputs.pending);
    if inputs.firing_critical + inputs.firing_warning > 0 {
        reasons.push(format!(
            "{} critical and {} warning alerts firing",
            inputs.firing_critical, inputs.firing_warning
        ));
    }
    if inputs.pending > 0 {
        reasons.push(format!("{} alerts pending", inputs.pending));
    }
    value -= alerts;
    let value = value.clamp(0.0, 100.0).round();
    HealthScore {
        score: Some(value),
        status: status_of(value),
        reasons,
        inputs: inputs.clone(),
    }
}

/// Counts a service's alerts by status and severity.
pub fn count_alerts(states: &[AlertState], service: &str, inputs: &mut ScoreInputs) {
    for state in states
        .iter()
        .filter(|s| s.labels.get("service").map(String::as_str) == Some(service))
    {
        match (state.status, state.severity) {
            (AlertStatus::Firing, Some(Severity::Critical)) => inputs.firing_critical += 1,
            (AlertStatus::Firing, _) => inputs.firing_warning += 1,
            (AlertStatus::Pending, _) => inputs.pending += 1,
            _ => {}
        }
    }
}

/// Reads a service's inputs: probe series and telemetry freshness from the metric store, alerts
/// from `alert_states` (one `list_states` per round, shared by every service).
pub async fn gather(
    store: &dyn MetricStore,
    alert_states: &[AlertState],
    service: &str,
    now: i64,
) -> Result<ScoreInputs, StoreError> {
    let mut inputs = ScoreInputs::default();
    let series = store.list_series(service).await?;
    let from = now - 2 * Resolution::OneMinute.seconds();
    // Probe results per minute (all instances merged); the newest minute is scored.
    let mut up_by_minute: BTreeMap<i64, BucketStats> = BTreeMap::new();
    let mut duration_by_minute: BTreeMap<i64, BucketStats> = BTreeMap::new();
    for meta in &series {
        let metric = meta.key.metric.as_str();
        if metric == UP_METRIC || metric == DURATION_METRIC {
            let target = if metric == UP_METRIC {
                &mut up_by_minute
            } else {
                &mut duration_by_minute
            };
            for (start, stats) in store
                .query_buckets(meta.id, Resolution::OneMinute, from, now)
                .await?
            {
                target.entry(start).or_default().merge(&stats);
            }
        } else if metric != SCORE_METRIC {
            inputs.last_telemetry = inputs.last_telemetry.max(Some(meta.last_seen_unix_s));
        }
    }
    if let Some((minute, up)) = up_by_minute.iter().next_back() {
        if up.count > 0 {
            inputs.probe_availability = Some(up.finite_sum() / up.count as f64);
        }
        if let Some(duration) = duration_by_minute.get(minute).filter(|d| d.count > 0) {
            inputs.probe_p95_s = duration.quantile(0.95);
        }
    }
    count_alerts(alert_states, service, &mut inputs);
    Ok(inputs)
}

/// Alert states for [`gather`]; an unavailable alert store scores without alerts (and says so in
/// the log of the caller).
pub async fn alert_states(alerts: &dyn AlertStore) -> Vec<AlertState> {
    alerts.list_states().await.unwrap_or_default()
}

/// The tag of a [`HealthEvent`]: always `"health"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum HealthEventType {
    #[serde(rename = "health")]
    Health,
}

/// A live `health` event (`docs/websocket.md`): a service's [`HealthScore`] fields, its name and
/// when it was computed. In the WebSocket schema (`docs/websocket.server.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthEvent {
    #[serde(rename = "type")]
    pub kind: HealthEventType,
    pub service: String,
    /// `null` when unknown.
    pub score: Option<f64>,
    pub status: HealthStatus,
    pub reasons: Vec<String>,
    pub inputs: ScoreInputs,
    /// Unix seconds.
    pub at: i64,
}

impl HealthEvent {
    pub fn new(service: &str, health: &HealthScore, at: i64) -> HealthEvent {
        HealthEvent {
            kind: HealthEventType::Health,
            service: service.to_string(),
            score: health.score,
            status: health.status,
            reasons: health.reasons.clone(),
            inputs: health.inputs.clone(),
            at,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Known scores as one OTLP metrics request (a `flowscope.health.score` gauge per service), for
/// the same ingest path as everything else. Unknown scores are not written (a gap, not a zero).
pub fn score_request(
    scores: &[(String, HealthScore)],
    at_unix_nano: u64,
) -> ExportMetricsServiceRequest {
    let resource_metrics = scores
        .iter()
        .filter_map(|(service, health)| {
            let value = health.score?;
            Some(ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", service),
                        string_kv(super::probe::PROBE_RESOURCE_ATTRIBUTE, "true"),
                    ],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "flowscope.health".to_string(),
                        ..InstrumentationScope::default()
                    }),
                    metrics: vec![gauge(
                        SCORE_METRIC,
                        "1",
                        "health score 0-100 (docs/health-score.md)",
                        NumberDataPoint {
                            time_unix_nano: at_unix_nano,
                            value: Some(number_data_point::Value::AsDouble(value)),
                            ..NumberDataPoint::default()
                        },
                    )],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            })
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn healthy() -> ScoreInputs {
        ScoreInputs {
            probe_availability: Some(1.0),
            probe_p95_s: Some(0.01),
            last_telemetry: Some(NOW - 5),
            ..ScoreInputs::default()
        }
    }

    fn at(inputs: ScoreInputs) -> HealthScore {
        score(&inputs, &ScoreSettings::default(), NOW)
    }

    #[test]
    fn all_probes_up_fresh_telemetry_and_no_alerts_is_100() {
        let s = at(healthy());
        assert_eq!(s.score, Some(100.0));
        assert_eq!(s.status, HealthStatus::Healthy);
        assert!(s.reasons.is_empty());
    }

    #[test]
    fn every_probe_failing_is_0_and_down() {
        let s = at(ScoreInputs {
            probe_availability: Some(0.0),
            ..healthy()
        });
        assert_eq!(s.score, Some(0.0));
        assert_eq!(s.status, HealthStatus::Down);
    }

    #[test]
    fn silence_without_probes_is_unknown_not_healthy() {
        for last in [None, Some(NOW - 301)] {
            let s = at(ScoreInputs {
                probe_availability: None,
                probe_p95_s: None,
                last_telemetry: last,
                ..ScoreInputs::default()
            });
            assert_eq!(s.score, None);
            assert_eq!(s.status, HealthStatus::Unknown);
        }
        // At exactly the staleness bound it still counts as fresh.
        let s = at(ScoreInputs {
            probe_availability: None,
            probe_p95_s: None,
            last_telemetry: Some(NOW - 300),
            ..ScoreInputs::default()
        });
        assert_eq!(s.score, Some(100.0));
    }

    #[test]
    fn silent_telemetry_with_healthy_probes_costs_the_silence_penalty() {
        let s = at(ScoreInputs {
            last_telemetry: Some(NOW - 301),
            ..healthy()
        });
        assert_eq!(s.score, Some(100.0 - SILENCE_PENALTY));
        // A probe-only service (never sent telemetry) is not silent.
        let s = at(ScoreInputs {
            last_telemetry: None,
            ..healthy()
        });
        assert_eq!(s.score, Some(100.0));
    }

    #[test]
    fn probe_latency_costs_nothing_at_the_bound_and_the_whole_penalty_at_the_timeout() {
        let with = |p95: f64| {
            at(ScoreInputs {
                probe_p95_s: Some(p95),
                ..healthy()
            })
            .score
        };
        assert_eq!(with(1.0), Some(100.0));
        assert_eq!(with(5.0), Some(100.0 - LATENCY_PENALTY));
        assert_eq!(with(50.0), Some(100.0 - LATENCY_PENALTY));
        assert_eq!(with(3.0), Some((100.0 - LATENCY_PENALTY / 2.0).round()));
    }

    #[test]
    fn alerts_subtract_and_the_score_never_goes_below_0() {
        let s = at(ScoreInputs {
            firing_warning: 1,
            ..healthy()
        });
        assert_eq!(s.score, Some(80.0));
        assert_eq!(s.status, HealthStatus::Healthy);
        let s = at(ScoreInputs {
            firing_critical: 1,
            ..healthy()
        });
        assert_eq!(s.score, Some(50.0));
        assert_eq!(s.status, HealthStatus::Degraded);
        let s = at(ScoreInputs {
            firing_critical: 3,
            pending: 4,
            ..healthy()
        });
        assert_eq!(s.score, Some(0.0));
        assert_eq!(s.status, HealthStatus::Down);
    }

    #[test]
    fn status_bounds() {
        assert_eq!(status_of(80.0), HealthStatus::Healthy);
        assert_eq!(status_of(79.0), HealthStatus::Degraded);
        assert_eq!(status_of(50.0), HealthStatus::Degraded);
        assert_eq!(status_of(49.0), HealthStatus::Down);
    }
}
