//! Spans ↔ spans record bodies.

use prost::Message;

use super::table::{delimited_len, lookup, StringTable};
use super::wire::{SpanEntry, SpansBody};
use crate::model::Attributes;
use crate::spans::{Span, SpanKind, SpanStatus};

const STRINGS_TAG: u32 = 1;
const SPANS_TAG: u32 = 2;

/// Accumulates the spans of one record, tracking its exact encoded size.
#[derive(Default)]
pub(crate) struct SpansBodyBuilder<'a> {
    strings: StringTable<'a>,
    spans: Vec<SpanEntry>,
    spans_len: usize,
}

impl<'a> SpansBodyBuilder<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.strings.encoded_len() + self.spans_len
    }

    /// Same contract as `MetricsBodyBuilder::try_push`.
    pub(crate) fn try_push(&mut self, span: &'a Span, max_len: usize) -> bool {
        let strings_before = self.strings.len();
        let mut attributes = Vec::with_capacity(span.attributes.len() * 2);
        for (k, v) in &span.attributes {
            attributes.push(self.strings.intern(k, STRINGS_TAG));
            attributes.push(self.strings.intern(v, STRINGS_TAG));
        }
        let entry = SpanEntry {
            trace_id: span.trace_id.to_vec(),
            span_id: span.span_id.to_vec(),
            parent_span_id: span.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            service: self.strings.intern(&span.service, STRINGS_TAG),
            name: self.strings.intern(&span.name, STRINGS_TAG),
            kind: span.kind.otlp_code(),
            start_unix_nano: span.start_unix_nano,
            duration_nanos: span.end_unix_nano.wrapping_sub(span.start_unix_nano),
            status: status_code(span.status),
            attributes,
        };
        let entry_len = delimited_len(SPANS_TAG, entry.encoded_len());
        if !self.spans.is_empty() && self.encoded_len() + entry_len > max_len {
            self.strings.truncate(strings_before, STRINGS_TAG);
            return false;
        }
        self.spans.push(entry);
        self.spans_len += entry_len;
        true
    }

    pub(crate) fn finish(self) -> SpansBody {
        SpansBody {
            strings: self.strings.into_owned(),
            spans: self.spans,
        }
    }
}

fn kind_from_code(code: u32) -> Result<SpanKind, String> {
    Ok(match code {
        0 => SpanKind::Unspecified,
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        other => return Err(format!("unknown span kind {other}")),
    })
}

fn status_code(status: SpanStatus) -> u32 {
    match status {
        SpanStatus::Unset => 0,
        SpanStatus::Ok => 1,
        SpanStatus::Error => 2,
    }
}

fn status_from_code(code: u32) -> Result<SpanStatus, String> {
    Ok(match code {
        0 => SpanStatus::Unset,
        1 => SpanStatus::Ok,
        2 => SpanStatus::Error,
        other => return Err(format!("unknown span status {other}")),
    })
}

fn fixed_id<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("{what} must be {N} bytes, got {}", bytes.len()))
}

pub(crate) fn decode_body(bytes: &[u8]) -> Result<Vec<Span>, String> {
    let body = SpansBody::decode(bytes).map_err(|e| e.to_string())?;
    let mut spans = Vec::with_capacity(body.spans.len());
    for entry in body.spans {
        if entry.attributes.len() % 2 != 0 {
            return Err("span attributes must be key/value pairs".to_string());
        }
        let mut attributes = Attributes::new();
        for pair in entry.attributes.chunks_exact(2) {
            attributes.insert(
                lookup(&body.strings, pair[0])?.to_owned(),
                lookup(&body.strings, pair[1])?.to_owned(),
            );
        }
        let parent_span_id = if entry.parent_span_id.is_empty() {
            None
        } else {
            Some(fixed_id::<8>(&entry.parent_span_id, "parent span id")?)
        };
        spans.push(Span {
            trace_id: fixed_id::<16>(&entry.trace_id, "trace id")?,
            span_id: fixed_id::<8>(&entry.span_id, "span id")?,
            parent_span_id,
            service: lookup(&body.strings, entry.service)?.to_owned(),
            name: lookup(&body.strings, entry.name)?.to_owned(),
            kind: kind_from_code(entry.kind)?,
            start_unix_nano: entry.start_unix_nano,
            end_unix_nano: entry.start_unix_nano.wrapping_add(entry.duration_nanos),
            status: status_from_code(entry.status)?,
            attributes,
        });
    }
    Ok(spans)
}
