//! Span domain type: what the pipeline keeps of an OTLP span.

use serde::{Deserialize, Serialize};

use crate::model::Attributes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// OTLP's numbering of span kinds (0 unspecified … 5 consumer), as the stream records carry it.
    pub fn otlp_code(self) -> u32 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatus {
    Unset,
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// `service.name` of the span's resource (`unknown_service` when absent).
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status: SpanStatus,
    /// Span attributes flattened to strings (peer.service, http.response.status_code, db.system …).
    pub attributes: Attributes,
}

impl Span {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// Lowercase hex, as OTLP/JSON and the APIs render ids.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// Current and legacy semantic-convention names of the HTTP status code.
const HTTP_STATUS_ATTRIBUTES: [&str; 2] = ["http.response.status_code", "http.status_code"];

/// A span failed when its status is ERROR or it carries an HTTP 5xx status code.
pub fn is_error(span: &Span) -> bool {
    span.status == SpanStatus::Error || http_status(span).is_some_and(|code| code >= 500)
}

fn http_status(span: &Span) -> Option<u16> {
    HTTP_STATUS_ATTRIBUTES
        .iter()
        .find_map(|key| span.attributes.get(*key))
        .and_then(|value| value.trim().parse::<u16>().ok())
}
