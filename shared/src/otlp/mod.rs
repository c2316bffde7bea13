//! OTLP decoding, validation and normalization into the domain model.
//!
//! Entry points: [`decompress`] (Content-Encoding with a bomb guard), [`Format::from_content_type`],
//! then [`decode_metrics`] / [`decode_traces`] / [`decode_logs`]. Invalid points and spans do not fail a
//! request: they are counted in [`Rejections`] and reported back through OTLP's `partial_success`,
//! while everything valid is kept.

use opentelemetry_proto::tonic::common::v1::KeyValue;

use crate::model::{Resolution, Retention};

mod attributes;
mod body;
mod json;
mod logs;
mod metrics;
pub mod response;
mod traces;

pub use body::{decompress, Format};
pub use logs::{decode_logs, DecodedLogs};
pub use metrics::{decode_metrics, decode_metrics_in_chunks, ChunkedMetrics, DecodedMetrics};
pub use traces::{decode_traces, DecodedSpans};

/// Why a whole request was refused (as opposed to individual points, see [`Rejections`]).
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: send gzip or identity")]
    UnsupportedContentEncoding(String),
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    #[error("decompressed request body exceeds the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("{0}")]
    Malformed(String),
}

/// How many reasons a rejection report keeps; the count stays exact beyond it.
const MAX_REASONS: usize = 5;

/// The latest timestamp a request may carry: the receiver's clock plus the client clock skew it
/// tolerates. A point further ahead would fill a bucket that has not happened yet (and alert rules
/// would read it minutes early), so it is rejected in the partial success instead.
///
/// The earliest: a point whose buckets every resolution has already dropped (the aggregator's
/// `expires_at`: bucket start + bucket width + retention ≤ now) would be stored nowhere, so it is
/// refused too rather than counted as accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimit {
    pub now_unix_nano: u64,
    pub max_skew_nanos: u64,
    /// How long each resolution keeps its buckets (the aggregator's retention).
    pub retention: Retention,
}

const NANOS_PER_S: u64 = 1_000_000_000;

/// The aggregator decides expiry when it folds a point in, seconds (or, with a backlog, minutes)
/// after the receiver accepted it. A point whose last bucket expires within this margin is refused
/// at the receiver, so that an accepted point is not expired on its way to the store.
pub const EXPIRY_MARGIN_SECONDS: i64 = 300;

impl TimeLimit {
    /// Checks a point's (or span's) time against both ends of the accepted window.
    pub(crate) fn check(&self, time_unix_nano: u64) -> Result<(), Refused> {
        if time_unix_nano > self.now_unix_nano.saturating_add(self.max_skew_nanos) {
            return Err(Refused::new(
                RejectReason::AheadOfClock,
                format!(
                    "timestamp is {} s ahead of the receiver's clock (at most {} s of clock skew is accepted)",
                    (time_unix_nano - self.now_unix_nano) / NANOS_PER_S,
                    self.max_skew_nanos / NANOS_PER_S
                ),
            ));
        }
        let earliest = self.earliest_retained_unix_s();
        let time_s = (time_unix_nano / NANOS_PER_S) as i64;
        if time_s < earliest {
            let longest = Resolution::ALL
                .iter()
                .map(|r| self.retention.seconds(*r))
                .max()
                .unwrap_or(0);
            return Err(Refused::new(
                RejectReason::TooOld,
                format!(
                    "timestamp {time_s} s (unix) is older than the retention window of {}: \
                     points stamped before {earliest} s (unix) are no longer kept",
                    human_duration(longest)
                ),
            ));
        }
        Ok(())
    }

    /// The first unix second whose bucket some resolution still keeps a little after now: for each
    /// resolution, the first bucket start `b` with `b + width + retention > now + margin`
    /// ([`EXPIRY_MARGIN_SECONDS`]); the earliest of those.
    pub fn earliest_retained_unix_s(&self) -> i64 {
        let now_s =
            ((self.now_unix_nano / NANOS_PER_S) as i64).saturating_add(EXPIRY_MARGIN_SECONDS);
        Resolution::ALL
            .iter()
            .map(|r| {
                let expired_until = now_s
                    .saturating_sub(r.seconds())
                    .saturating_sub(self.retention.seconds(*r));
                r.bucket_start(expired_until).saturating_add(r.seconds())
            })
            .min()
            .unwrap_or(i64::MIN)
    }
}

/// `365 d`, `12 h`, `90 s`: the largest whole unit.
fn human_duration(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Per-point and per-request limits the decoder enforces (see `IngestLimits` for the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointLimits {
    pub time: TimeLimit,
    /// Attributes one data point (or span) may carry.
    pub max_attributes: usize,
    /// Bytes of one attribute value (as text: arrays and maps as JSON, bytes as base64).
    pub max_attribute_value_bytes: usize,
    /// OTLP data points (or spans) one request may carry; those beyond are refused.
    pub max_items_per_request: usize,
}

impl PointLimits {
    /// Refuses attribute lists over the count limit or with a value over the length limit.
    pub(crate) fn check_attributes(&self, attributes: &[KeyValue]) -> Result<(), Refused> {
        if attributes.len() > self.max_attributes {
            return Err(Refused::new(
                RejectReason::TooManyAttributes,
                format!(
                    "{} attributes exceed the limit of {} per point",
                    attributes.len(),
                    self.max_attributes
                ),
            ));
        }
        for kv in attributes {
            let len = attributes::text_len(kv.value.as_ref());
            if len > self.max_attribute_value_bytes {
                return Err(Refused::new(
                    RejectReason::AttributeTooLong,
                    format!(
                        "attribute {:?} has a value of {len} bytes, over the limit of {} bytes",
                        truncated(&kv.key, 64),
                        self.max_attribute_value_bytes
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, for messages.
pub(crate) fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Largest magnitude accepted for any value that enters a bucket's statistics: point values, sums,
/// min/max, histogram bounds, and exponential histogram bucket boundaries. Chosen so that adding up
/// to 2^64 such values (more observations than a bucket's u64 count can hold) stays below
/// `f64::MAX` (≈ 1.8e308): 1e280 × 2^64 ≈ 1.8e299. Larger values are refused in the partial success.
pub const MAX_ABS_VALUE: f64 = 1e280;

/// Why a point (or span) was refused; counted per reason in the ingest statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Malformed or inconsistent (bad ids, counts that do not add up, non-finite values, …).
    Invalid,
    /// Stamped further ahead than the tolerated clock skew.
    AheadOfClock,
    /// Older than the retention window of every resolution.
    TooOld,
    /// A value beyond [`MAX_ABS_VALUE`], or exponential buckets outside the representable range.
    ValueOutOfRange,
    TooManyAttributes,
    AttributeTooLong,
    /// Beyond the request's point (span) limit.
    TooManyInRequest,
    /// Larger than one stream record.
    TooLarge,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        RejectReason::Invalid,
        RejectReason::AheadOfClock,
        RejectReason::TooOld,
        RejectReason::ValueOutOfRange,
        RejectReason::TooManyAttributes,
        RejectReason::AttributeTooLong,
        RejectReason::TooManyInRequest,
        RejectReason::TooLarge,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One refusal: its category and the message for the partial success.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refused {
    pub reason: RejectReason,
    pub message: String,
}

impl Refused {
    pub(crate) fn new(reason: RejectReason, message: String) -> Refused {
        Refused { reason, message }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Refused {
        Refused::new(RejectReason::Invalid, message.into())
    }
}

impl From<String> for Refused {
    fn from(message: String) -> Refused {
        Refused::invalid(message)
    }
}

/// Data points (or spans) refused individually, with the first few reasons.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rejections {
    pub count: u64,
    pub reasons: Vec<String>,
    /// Items whose reason did not fit in `reasons` (the report keeps the first few).
    unlisted: u64,
    /// `count` split by [`RejectReason`] (indexed as [`RejectReason::ALL`]).
    by_reason: [u64; RejectReason::ALL.len()],
}

impl Rejections {
    /// Counts `n` rejected items; `reason` is only built while the report has room.
    pub(crate) fn reject(&mut self, n: u64, reason: impl FnOnce() -> String) {
        self.reject_as(RejectReason::Invalid, n, reason);
    }

    /// Counts `n` items rejected for `kind`; `reason` is only built while the report has room.
    pub(crate) fn reject_as(
        &mut self,
        kind: RejectReason,
        n: u64,
        reason: impl FnOnce() -> String,
    ) {
        self.count += n;
        self.by_reason[kind.index()] += n;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason());
        } else {
            self.unlisted += n;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many items were rejected for `kind`.
    pub fn count_of(&self, kind: RejectReason) -> u64 {
        self.by_reason[kind.index()]
    }

    /// The `error_message` of an OTLP partial success.
    pub fn message(&self, what: &str) -> String {
        let mut message = format!(
            "rejected {} {what}: {}",
            self.count,
            self.reasons.join("; ")
        );
        if self.unlisted > 0 {
            message.push_str(&format!(
                "; {} more {what} refused (reasons not listed)",
                self.unlisted
            ));
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_unlisted_refusals_only_when_some_reasons_were_left_out() {
        let mut one_reason = Rejections::default();
        one_reason.reject(98_000, || "metric \"m\" is at its limit".into());
        assert_eq!(
            one_reason.message("data points"),
            "rejected 98000 data points: metric \"m\" is at its limit",
            "one reason covering many points is the whole story"
        );

        let mut many = Rejections::default();
        for i in 0..(MAX_REASONS + 2) {
            many.reject(2, || format!("reason {i}"));
        }
        let message = many.message("data points");
        assert!(
            message.starts_with("rejected 14 data points: reason 0; "),
            "{message}"
        );
        assert!(
            message.contains(&format!("reason {}", MAX_REASONS - 1)),
            "{message}"
        );
        assert!(
            !message.contains(&format!("reason {MAX_REASONS}")),
            "{message}"
        );
        assert!(
            message.ends_with("; 4 more data points refused (reasons not listed)"),
            "{message}"
        );
    }
}
