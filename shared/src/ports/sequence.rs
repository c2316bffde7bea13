//! Stream sequence numbers.
//!
//! Kinesis documents sequence numbers as decimal strings of up to 129 digits, and real ones are ~56
//! digits long (> 2^128), so neither `u128` nor string comparison is right. A [`SequenceNumber`] keeps
//! the canonical decimal text (no leading zeros) and orders by (length, digits), which is numeric order.

use std::cmp::Ordering;
use std::fmt;

/// Width of [`SequenceNumber::padded`]: enough for any Kinesis sequence number.
pub const PADDED_WIDTH: usize = 130;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequence number must be 1 to {PADDED_WIDTH} decimal digits, got {0:?}")]
pub struct InvalidSequenceNumber(pub String);

impl SequenceNumber {
    pub fn parse(text: &str) -> Result<SequenceNumber, InvalidSequenceNumber> {
        if text.is_empty() || text.len() > PADDED_WIDTH || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(InvalidSequenceNumber(text.to_string()));
        }
        let trimmed = text.trim_start_matches('0');
        Ok(SequenceNumber(if trimmed.is_empty() {
            "0".to_string()
        } else {
            trimmed.to_string()
        }))
    }

    pub fn from_u128(n: u128) -> SequenceNumber {
        SequenceNumber(n.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Zero-padded to [`PADDED_WIDTH`] digits, so that byte-wise string comparison (DynamoDB condition
    /// expressions, redb keys) is numeric comparison.
    pub fn padded(&self) -> String {
        format!("{:0>width$}", self.0, width = PADDED_WIDTH)
    }

    /// Inverse of [`SequenceNumber::padded`] (also accepts unpadded text).
    pub fn from_padded(text: &str) -> Result<SequenceNumber, InvalidSequenceNumber> {
        SequenceNumber::parse(text)
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SequenceNumber {
    type Err = InvalidSequenceNumber;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SequenceNumber::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_numerically_beyond_u128() {
        // Real Kinesis sequence numbers are 56 digits: larger than u128::MAX (39 digits).
        let a = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
            .unwrap();
        let b = SequenceNumber::parse("49590338271490256608559692540925702759324208523137515618")
            .unwrap();
        let small = SequenceNumber::parse("999").unwrap();
        assert!(a < b);
        assert!(small < a);
        assert!(SequenceNumber::from_u128(10) > SequenceNumber::from_u128(9));
        assert_eq!(
            SequenceNumber::parse("007").unwrap(),
            SequenceNumber::from_u128(7)
        );
    }

    #[test]
    fn padded_text_compares_like_the_numbers() {
        let nine = SequenceNumber::from_u128(9);
        let ten = SequenceNumber::from_u128(10);
        assert!(nine.padded() < ten.padded());
        assert_eq!(SequenceNumber::from_padded(&ten.padded()).unwrap(), ten);
    }

    #[test]
    fn rejects_non_digits_and_empty() {
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
    }
}
