//! OTLP/JSON pre-processing, before `opentelemetry-proto`'s serde derives see the document.
//!
//! Those derives fail a whole request on things OTLP/JSON allows (enum names, `"NaN"` doubles) and
//! turn an error anywhere inside a metric's data into a silent `None` (`#[serde(flatten)]`). So the
//! document is first normalized, then the per-item arrays (data points, spans) are taken out and each
//! item is decoded on its own: one bad item is rejected with a reason, the rest survive.

use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::OtlpError;

/// Spellings OTLP/JSON uses for doubles JSON numbers cannot hold.
const NON_FINITE: [&str; 3] = ["NaN", "Infinity", "-Infinity"];

/// Parses the body; it must be a JSON object.
pub(crate) fn parse(body: &[u8]) -> Result<Map<String, Value>, OtlpError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| OtlpError::Malformed(format!("invalid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(OtlpError::Malformed(
            "invalid JSON: the request must be a JSON object".to_string(),
        )),
    }
}

/// Rewrites what the serde derives would refuse: enum names become their numbers, and an attribute
/// `doubleValue` of `"NaN"`/`"Infinity"`/`"-Infinity"` becomes the same text as a `stringValue`
/// (attributes are flattened to text anyway, and the protobuf path spells them identically).
pub(crate) fn normalize(map: &mut Map<String, Value>) {
    normalize_value_map(map);
}

fn normalize_value(value: &mut Value) {
    match value {
        Value::Object(map) => normalize_value_map(map),
        Value::Array(items) => items.iter_mut().for_each(normalize_value),
        _ => {}
    }
}

fn normalize_value_map(map: &mut Map<String, Value>) {
    if let Some(Value::String(s)) = map.get("doubleValue") {
        if NON_FINITE.contains(&s.as_str()) {
            let text = Value::String(s.clone());
            map.remove("doubleValue");
            map.insert("stringValue".to_string(), text);
        }
    }
    for (key, child) in map.iter_mut() {
        match child {
            Value::String(name) => {
                if let Some(code) = enum_code(key, name) {
                    *child = Value::from(code);
                }
            }
            _ => normalize_value(child),
        }
    }
}

fn enum_code(key: &str, name: &str) -> Option<i32> {
    match key {
        "aggregationTemporality" => AggregationTemporality::from_str_name(name).map(|e| e as i32),
        "kind" => SpanKind::from_str_name(name).map(|e| e as i32),
        "code" => StatusCode::from_str_name(name).map(|e| e as i32),
        _ => None,
    }
}

/// The objects of the array at `key` of `map` (nothing when it is missing or of another type: the
/// serde pass reports those).
pub(crate) fn objects_mut<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|items| items.iter_mut())
        .filter_map(Value::as_object_mut)
}

/// Removes the array at `key`, leaving an empty one so the skeleton still decodes.
pub(crate) fn take_array(map: &mut Map<String, Value>, key: &str) -> Option<Vec<Value>> {
    match map.get_mut(key) {
        Some(Value::Array(items)) => Some(std::mem::take(items)),
        _ => None,
    }
}

/// The first field of `item` (or element of its array `bounds_key`) spelled as a non-finite double.
pub(crate) fn non_finite_field(item: &Value, bounds_key: &str) -> Option<(String, String)> {
    let map = item.as_object()?;
    for (key, value) in map {
        match value {
            Value::String(s) if NON_FINITE.contains(&s.as_str()) => {
                return Some((key.clone(), s.clone()));
            }
            Value::Array(items) if key == bounds_key => {
                for v in items {
                    if let Value::String(s) = v {
                        if NON_FINITE.contains(&s.as_str()) {
                            return Some((key.clone(), s.clone()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Decodes one item, dropping fields Flowscope does not use so their errors cannot cost the item.
pub(crate) fn decode_item<T: DeserializeOwned>(
    mut item: Value,
    unused: &[&str],
) -> Result<T, String> {
    if let Some(map) = item.as_object_mut() {
        for key in unused {
            map.remove(*key);
        }
    }
    serde_json::from_value(item).map_err(|e| e.to_string())
}
