//! OTLP building blocks shared by metrics and traces: who is sending (resource) and how (scope).

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::model::ServiceName;

/// Instrumentation scope name on every metric and span the load generator sends.
pub const SCOPE_NAME: &str = "flowscope-loadgen";

/// The process a request claims to come from: one per simulated service per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIdentity {
    pub service: ServiceName,
    /// Unique per run, as SDKs do, so a restarted load generator is a new instance.
    pub instance_id: String,
    pub host_name: String,
}

impl ServiceIdentity {
    pub fn new(service: ServiceName, run_id: u64) -> Self {
        ServiceIdentity {
            service,
            instance_id: format!("{}-{run_id:016x}", service.as_str()),
            host_name: format!("loadgen-{}-1", service.as_str()),
        }
    }

    pub fn resource(&self) -> Resource {
        Resource {
            attributes: vec![
                string_attribute("service.name", self.service.as_str()),
                string_attribute("service.instance.id", &self.instance_id),
                string_attribute("host.name", &self.host_name),
            ],
            ..Default::default()
        }
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.to_owned()))
}

pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

pub fn bool_attribute(key: &str, value: bool) -> KeyValue {
    attribute(key, any_value::Value::BoolValue(value))
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Nanoseconds since the Unix epoch, as OTLP timestamps are.
pub fn unix_nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A test helper: the string value of `key` in `attributes`.
#[cfg(test)]
pub fn find_string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}
