//! Health probes (issue 13 item 2): every instance with a health URL is asked with a GET; each result
//! becomes ordinary series through the same ingest path as pushed OTLP ([`probe_request`] builds an
//! `ExportMetricsServiceRequest` that the caller hands to `Ingest`), so probes are queryable, charted
//! and alertable like anything else:
//! - `flowscope.probe.up` (gauge, `1`): 1 when the endpoint answered with the expected status in time;
//! - `flowscope.probe.duration` (gauge, `s`): how long the answer took (the timeout when none came).
//!
//! Both carry `service.name` / `service.instance.id` as resource attributes and `service.instance.id`
//! as a point attribute too (alert rules group by point attributes: `group_by: [service.instance.id]`).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::InstanceView;

pub const UP_METRIC: &str = "flowscope.probe.up";
pub const DURATION_METRIC: &str = "flowscope.probe.duration";
/// A resource attribute on probe results: they are not OTLP sightings of the instance (which would
/// list it with source `otlp` and keep it after deregistration).
pub const PROBE_RESOURCE_ATTRIBUTE: &str = "flowscope.probe";
/// The point attribute naming the probed instance.
pub const INSTANCE_ATTRIBUTE: &str = "service.instance.id";

/// How probes run (`flowscope local --probe-*` flags, README `## Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub interval: Duration,
    /// Longest wait for a response head.
    pub timeout: Duration,
    /// The status that means healthy; `None`: any 2xx.
    pub expected_status: Option<u16>,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Instances probed per round; the rest wait for a later round (the registry's limit bounds it).
    pub max_targets: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            expected_status: None,
            concurrency: 16,
            max_targets: 10_000,
        }
    }
}

impl ProbeSettings {
    /// The scheduled function's settings: `PROBE_TIMEOUT_SECONDS`, `PROBE_CONCURRENCY`,
    /// `PROBE_EXPECTED_STATUS` over the defaults.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, min: u64, max: u64| -> Result<Option<u64>, String> {
            env(name)
                .map(|text| {
                    text.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| format!("{name} must be a whole number from {min} to {max}"))
                })
                .transpose()
        };
        if let Some(seconds) = number("PROBE_TIMEOUT_SECONDS", 1, 25)? {
            self.timeout = Duration::from_secs(seconds);
        }
        if let Some(n) = number("PROBE_CONCURRENCY", 1, 1024)? {
            self.concurrency = usize::try_from(n).unwrap_or(16);
        }
        if let Some(status) = number("PROBE_EXPECTED_STATUS", 100, 599)? {
            self.expected_status = u16::try_from(status).ok();
        }
        Ok(self)
    }

    pub fn healthy(&self, status: u16) -> bool {
        match self.expected_status {
            Some(expected) => status == expected,
            None => (200..300).contains(&status),
        }
    }
}

/// One instance to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub service: String,
    pub instance: String,
    pub url: String,
}

impl ProbeTarget {
    /// The instances with a health URL.
    pub fn of(instances: &[InstanceView]) -> Vec<ProbeTarget> {
        instances
            .iter()
            .filter_map(|i| {
                i.health_url.as_ref().map(|url| ProbeTarget {
                    service: i.service.clone(),
                    instance: i.instance.clone(),
                    url: url.clone(),
                })
            })
            .collect()
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub target: ProbeTarget,
    pub up: bool,
    pub duration: Duration,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at_unix_nano: u64,
}

pub(crate) fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..KeyValue::default()
    }
}

pub(crate) fn gauge(name: &str, unit: &str, description: &str, point: NumberDataPoint) -> Metric {
    Metric {
        name: name.to_string(),
        description: description.to_string(),
        unit: unit.to_string(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![point],
        })),
        ..Metric::default()
    }
}

/// The probe results as one OTLP metrics request: a resource per probed instance.
pub fn probe_request(results: &[ProbeResult]) -> ExportMetricsServiceRequest {
    let resource_metrics = results
        .iter()
        .map(|result| {
            let point = |value: f64| NumberDataPoint {
                attributes: vec![string_kv(INSTANCE_ATTRIBUTE, &result.target.instance)],
                time_unix_nano: result.at_unix_nano,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..NumberDataPoint::default()
            };
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", &result.target.service),
                        string_kv("service.instance.id", &result.target.instance),
                        string_kv(PROBE_RESOURCE_ATTRIBUTE, "true"),
                    ],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "flowscope.probe".to_string(),
                        ..InstrumentationScope::default()
                    }),
                    metrics: vec![
                        gauge(
                            UP_METRIC,
                            "1",
                            "1 when the health endpoint answered as expected, else 0",
                            point(if result.up { 1.0 } else { 0.0 }),
                        ),
                        gauge(
                            DURATION_METRIC,
                            "s",
                            "time to the health endpoint's response head",
                            point(result.duration.as_secs_f64()),
                        ),
                    ],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn probe_results_decode_as_two_gauges_per_instance() {
        let result = ProbeResult {
            target: ProbeTarget {
                service: "api".into(),
                instance: "a1".into(),
                url: "http://127.0.0.1:1/healthz".into(),
            },
            up: false,
            duration: Duration::from_millis(250),
            status: None,
            error: Some("refused".into()),
            at_unix_nano: 1_700_000_000_000_000_000,
        };
        let request = probe_request(&[result]);
        let bytes = request.encode_to_vec();
        let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
        let metrics = &decoded.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(metrics[0].name, UP_METRIC);
        assert_eq!(metrics[1].name, DURATION_METRIC);
        let Some(Data::Gauge(up)) = &metrics[0].data else {
            panic!("gauge")
        };
        assert_eq!(
            up.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.0))
        );
        let Some(Data::Gauge(duration)) = &metrics[1].data else {
            panic!("gauge")
        };
        assert_eq!(
            duration.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.25))
        );
    }

    #[test]
    fn any_2xx_is_healthy_unless_a_status_is_expected() {
        let settings = ProbeSettings::default();
        assert!(settings.healthy(204));
        assert!(!settings.healthy(301));
        assert!(!settings.healthy(503));
        let strict = ProbeSettings {
            expected_status: Some(418),
            ..settings
        };
        assert!(strict.healthy(418));
        assert!(!strict.healthy(200));
    }
}
