//! Reading and writing DynamoDB attribute values without panics: every missing or malformed
//! attribute becomes an [`ItemError`] naming it.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
#[error("attribute `{attribute}`: {reason}")]
pub(crate) struct ItemError {
    pub attribute: String,
    pub reason: String,
}

fn error(attribute: &str, reason: impl Into<String>) -> ItemError {
    ItemError {
        attribute: attribute.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// DynamoDB numbers range over magnitudes 1e-130 ..< 1e126.
const SMALLEST_MAGNITUDE: f64 = 1e-130;
const LARGEST_MAGNITUDE: f64 = 9.999_999_999_999_998e125;

/// A float as a DynamoDB number. `{:e}` is the shortest text that parses back to the same bits, and its
/// exponent form stays short where plain `{}` would print hundreds of digits. Magnitudes below
/// DynamoDB's smallest are stored as 0; non-finite or too large ones are refused.
pub(crate) fn n_f64(attribute: &str, value: f64) -> Result<AttributeValue, ItemError> {
    if !value.is_finite() || value.abs() > LARGEST_MAGNITUDE {
        return Err(error(
            attribute,
            format!("{value} is outside the range DynamoDB can store"),
        ));
    }
    if value.abs() < SMALLEST_MAGNITUDE {
        return Ok(AttributeValue::N("0".to_string()));
    }
    Ok(AttributeValue::N(format!("{value:e}")))
}

pub(crate) fn b(value: Vec<u8>) -> AttributeValue {
    AttributeValue::B(Blob::new(value))
}

pub(crate) fn get_s<'a>(item: &'a Item, attribute: &str) -> Result<&'a str, ItemError> {
    match item.get(attribute) {
        Some(AttributeValue::S(value)) => Ok(value),
        Some(_) => Err(error(attribute, "is not a string")),
        None => Err(error(attribute, "is missing")),
    }
}

pub(crate) fn get_n<T: FromStr>(item: &Item, attribute: &str) -> Result<T, ItemError> {
    get_opt_n(item, attribute)?.ok_or_else(|| error(attribute, "is missing"))
}

pub(crate) fn get_opt_n<T: FromStr>(item: &Item, attribute: &str) -> Result<Option<T>, ItemError> {
    match item.get(attribute) {
        Some(AttributeValue::N(text)) => text
            .parse::<T>()
            .map(Some)
            .map_err(|_| error(attribute, format!("{text:?} is out of range"))),
        Some(_) => Err(error(attribute, "is not a number")),
        None => Ok(None),
    }
}

pub(crate) fn get_opt_b<'a>(
    item: &'a Item,
    attribute: &str,
) -> Result<Option<&'a [u8]>, ItemError> {
    match item.get(attribute) {
        Some(AttributeValue::B(blob)) => Ok(Some(blob.as_ref())),
        Some(_) => Err(error(attribute, "is not binary")),
        None => Ok(None),
    }
}

/// A map of strings (`wm`), absent = empty.
pub(crate) fn get_string_map(
    item: &Item,
    attribute: &str,
) -> Result<HashMap<String, String>, ItemError> {
    match item.get(attribute) {
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(key, value)| match value {
                AttributeValue::S(text) => Ok((key.clone(), text.clone())),
                _ => Err(error(attribute, format!("entry {key:?} is not a string"))),
            })
            .collect(),
        Some(_) => Err(error(attribute, "is not a map")),
        None => Ok(HashMap::new()),
    }
}

/// A list of strings (a connection's topic keys), absent = empty.
pub(crate) fn get_string_list(item: &Item, attribute: &str) -> Result<Vec<String>, ItemError> {
    match item.get(attribute) {
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|value| match value {
                AttributeValue::S(text) => Ok(text.clone()),
                _ => Err(error(attribute, "holds a non-string entry")),
            })
            .collect(),
        Some(_) => Err(error(attribute, "is not a list")),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_trip_exactly_through_number_text() {
        for value in [0.0, 1.5, -2.25e-9, 123_456_789.123_456_78, 1e100, -7e-120] {
            let AttributeValue::N(text) = n_f64("x", value).unwrap() else {
                panic!("not a number attribute");
            };
            let mut item = Item::new();
            item.insert("x".into(), AttributeValue::N(text.clone()));
            let back: f64 = get_n(&item, "x").unwrap();
            assert_eq!(back.to_bits(), value.to_bits(), "{value} via {text}");
        }
    }

    #[test]
    fn floats_outside_dynamodb_range_are_refused_or_flushed_to_zero() {
        assert!(n_f64("sum", f64::INFINITY).is_err());
        assert!(n_f64("sum", f64::NAN).is_err());
        assert!(n_f64("sum", 1e200).is_err());
        assert_eq!(
            n_f64("min", 1e-200).unwrap(),
            AttributeValue::N("0".to_string())
        );
    }

    #[test]
    fn wrong_types_and_missing_attributes_name_the_attribute() {
        let mut item = Item::new();
        item.insert("count".into(), s("seven"));
        let err = get_n::<u64>(&item, "count").unwrap_err();
        assert_eq!(err.attribute, "count");
        let err = get_s(&item, "pk").unwrap_err();
        assert_eq!(err.attribute, "pk");
        item.insert("count".into(), n("-1"));
        assert!(get_n::<u64>(&item, "count").is_err());
    }
}
