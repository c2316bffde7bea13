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
