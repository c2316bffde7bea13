//! What a merge announces: the live `profile` WebSocket event, and the per-minute totals as ordinary
//! series (`flowscope.profile.<type>`) so the existing alert rules can fire on them.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::MergedMinute;
use crate::profiles::ProfileType;

/// The tag of a [`ProfileEvent`]: always `"profile"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ProfileEventType {
    #[serde(rename = "profile")]
    Profile,
}

/// A live `profile` event (`docs/websocket.md`): a service's profile type got samples in a minute;
/// `total` is that minute's total so far (all label sets). Sent to clients subscribed to the
/// service (or to everything) each time the minute grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileEvent {
    #[serde(rename = "type")]
    pub kind: ProfileEventType,
    pub service: String,
    pub profile_type: ProfileType,
    /// Minute start, unix milliseconds.
    pub minute: i64,
    pub total: u64,
}

impl ProfileEvent {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One event per (service, type, minute) of `merged`, with the minute's total over its label sets
/// (`minute_totals`: the stored totals of every label set of that minute, as read back).
pub fn events(
    merged: &[MergedMinute],
    minute_totals: &BTreeMap<(String, ProfileType, i64), u64>,
) -> Vec<ProfileEvent> {
    let mut seen = std::collections::BTreeSet::new();
    merged
        .iter()
        .filter(|m| seen.insert((m.service.clone(), m.profile_type, m.minute)))
        .map(|m| ProfileEvent {
            kind: ProfileEventType::Profile,
            service: m.service.clone(),
            profile_type: m.profile_type,
            minute: m.minute.saturating_mul(1000),
            total: minute_totals
                .get(&(m.service.clone(), m.profile_type, m.minute))
                .copied()
                .unwrap_or(m.minute_total),
        })
        .collect()
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..KeyValue::default()
    }
}

/// What a merge added, as delta sums `flowscope.profile.<type>` per service: nanoseconds become
/// seconds (so a bucket's rate is CPU or wall seconds per second), bytes and counts stay as they are.
pub fn series_request(merged: &[MergedMinute]) -> ExportMetricsServiceRequest {
    let mut by_service: BTreeMap<&str, Vec<Metric>> = BTreeMap::new();
    for m in merged {
        let (value, unit) = match m.profile_type.unit() {
            "nanoseconds" => (m.added as f64 / 1e9, "s"),
            "bytes" => (m.added as f64, "By"),
            _ => (m.added as f64, "1"),
        };
        let at = u64::try_from(m.minute)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000);
        by_service.entry(&m.service).or_default().push(Metric {
            name: m.profile_type.series_name(),
            description: format!(
                "{} profile samples merged (issue 14)",
                m.profile_type.as_str()
            ),
            unit: unit.to_string(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    start_time_unix_nano: at,
                    time_unix_nano: at,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..NumberDataPoint::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Metric::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: by_service
            .into_iter()
            .map(|(service, metrics)| ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![string_kv("service.name", service)],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "flowscope.profiles".to_string(),
                        ..InstrumentationScope::default()
                    }),
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            })
            .collect(),
    }
}
