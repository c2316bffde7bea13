//! OTLP attributes → flat string maps, and the identities derived from a resource and scope.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::model::{stable_hash, Attributes, SourceId, UNKNOWN_SERVICE};

/// Flattens attributes to strings; a repeated key keeps its last value.
pub(crate) fn flatten(attributes: &[KeyValue]) -> Attributes {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// Bytes of [`text`] of `value`, without building it for the common (string) case.
pub(crate) fn text_len(value: Option<&AnyValue>) -> usize {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.len(),
        Some(Value::BytesValue(b)) => b.len().div_ceil(3) * 4,
        _ => text(value).len(),
    }
}

/// An attribute value as text: strings as-is, scalars in their usual spelling, arrays and key/value
/// lists as JSON, bytes as base64, absent as "".
pub(crate) fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => double_text(*d),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(Value::StringValueStrindex(i)) => i.to_string(),
        Some(nested @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            json(Some(nested)).to_string()
        }
    }
}

fn json(value: Option<&Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        // JSON has no NaN or infinities; keep their text rather than losing them.
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(double_text(*d))),
        Some(Value::BytesValue(b)) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::StringValueStrindex(i)) => J::from(*i),
        Some(Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| json(v.value.as_ref())).collect())
        }
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

/// A double as text, non-finite values spelled as OTLP/JSON does, so a series gets the same
/// attributes whether it arrived as protobuf or JSON.
fn double_text(d: f64) -> String {
    if d.is_nan() {
        "NaN".to_string()
    } else if d == f64::INFINITY {
        "Infinity".to_string()
    } else if d == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        d.to_string()
    }
}

/// What every point of one resource + scope shares.
pub(crate) struct Origin {
    pub service: String,
    pub source: SourceId,
}

/// The flattened resource attributes, from which [`Origin`]s of each scope are derived.
pub(crate) struct ResourceInfo {
    attributes: Attributes,
    service: String,
}

impl ResourceInfo {
    pub(crate) fn new(resource: Option<&Resource>) -> ResourceInfo {
        let attributes = resource.map(|r| flatten(&r.attributes)).unwrap_or_default();
        let service = service_name(&attributes);
        ResourceInfo {
            attributes,
            service,
        }
    }

    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// Identity of the emitting process: sorted resource attributes + scope name and version.
    pub(crate) fn origin(&self, scope: Option<&InstrumentationScope>) -> Origin {
        let mut parts: Vec<&str> = Vec::with_capacity(self.attributes.len() * 2 + 2);
        for (k, v) in &self.attributes {
            parts.push(k);
            parts.push(v);
        }
        parts.push(scope.map(|s| s.name.as_str()).unwrap_or(""));
        parts.push(scope.map(|s| s.version.as_str()).unwrap_or(""));
        Origin {
            service: self.service.clone(),
            source: SourceId(stable_hash(&parts)),
        }
    }
}

/// `service.name`, or the spec's default (`unknown_service[:<process.executable.name>]`) when it is
/// absent or empty.
fn service_name(attributes: &Attributes) -> String {
    match attributes.get("service.name") {
        Some(name) if !name.is_empty() => name.clone(),
        _ => match attributes.get("process.executable.name") {
            Some(exe) if !exe.is_empty() => format!("{UNKNOWN_SERVICE}:{exe}"),
            _ => UNKNOWN_SERVICE.to_string(),
        },
    }
}
