//! OTLP decoding, validation and normalization into the domain model.
//!
//! Entry points: [`decompress`] (Content-Encoding with a bomb guard), [`Format::from_content_type`],
//! then [`decode_metrics`] / [`decode_traces`] / [`decode_logs`]. Invalid points and spans do not fail a
//! request: they are counted in [`Rejections`] and reported back through OTLP's `partial_success`,
//! while everything valid is kept.

mod attributes;
mod body;
mod json;
mod logs;
mod metrics;
pub mod response;
mod traces;

pub use body::{decompress, Format};
pub use logs::{decode_logs, DecodedLogs};
pub use metrics::{decode_metrics, DecodedMetrics};
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

/// Data points (or spans) refused individually, with the first few reasons.
/// The latest timestamp a request may carry: the receiver's clock plus the client clock skew it
/// tolerates. A point further ahead would fill a bucket that has not happened yet (and alert rules
/// would read it minutes early), so it is rejected in the partial success instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimit {
    pub now_unix_nano: u64,
    pub max_skew_nanos: u64,
}

impl TimeLimit {
    pub(crate) fn check(&self, time_unix_nano: u64) -> Result<(), String> {
        if time_unix_nano <= self.now_unix_nano.saturating_add(self.max_skew_nanos) {
            return Ok(());
        }
        const NANOS_PER_S: u64 = 1_000_000_000;
        Err(format!(
            "timestamp is {} s ahead of the receiver's clock (at most {} s of clock skew is accepted)",
            (time_unix_nano - self.now_unix_nano) / NANOS_PER_S,
            self.max_skew_nanos / NANOS_PER_S
        ))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rejections {
    pub count: u64,
    pub reasons: Vec<String>,
}

impl Rejections {
    /// Counts `n` rejected items; `reason` is only built while the report has room.
    pub(crate) fn reject(&mut self, n: u64, reason: impl FnOnce() -> String) {
        self.count += n;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `error_message` of an OTLP partial success.
    pub fn message(&self, what: &str) -> String {
        let mut message = format!(
            "rejected {} {what}: {}",
            self.count,
            self.reasons.join("; ")
        );
        if self.count > self.reasons.len() as u64 {
            message.push_str("; …");
        }
        message
    }
}
