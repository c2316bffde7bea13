//! Storage of sampled traces for the trace view (`GET /api/traces/{id}`) and the per-service list of
//! recent traces. The embedded adapter is `crate::embedded::RedbTraceStore`.
//!
//! Spans of a trace may arrive in many writes (one per exporting service and batch). A trace is either
//! *kept* (sampled: listed and readable until its expiry) or *provisional*: its spans are held for a
//! short while so that a later error span can still promote the whole trace (tail sampling), and are
//! neither listed nor readable.

use async_trait::async_trait;

use crate::spans::is_error;

use super::store::StoreError;
use crate::spans::Span;

/// The trace store's error: the one [`StoreError`] of every storage port.
pub type TraceStoreError = StoreError;

/// Spans of one trace to store, and whether the trace is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceWrite {
    pub trace_id: [u8; 16],
    /// Upserted by span id: writing a span again replaces it and never duplicates it. May be empty
    /// (a promotion of spans written earlier).
    pub spans: Vec<Span>,
    /// Kept is sticky: a kept write makes every span of the trace, earlier provisional ones included,
    /// readable and listed under each of the trace's services. A provisional write never un-keeps.
    pub kept: bool,
    /// The trace (all of its spans) lives at least until then; expiry only ever moves later.
    pub expires_at_unix_s: i64,
}

/// What the list of recent traces shows of one trace, from the spans stored so far.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: [u8; 16],
    /// Service and name of the span without a parent, once it has arrived.
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    /// Earliest span start.
    pub start_unix_nano: u64,
    /// Latest span end minus `start_unix_nano`.
    pub duration_nanos: u64,
    pub span_count: u64,
    /// Whether any span failed (status ERROR or an HTTP 5xx; see `crate::spans::is_error`).
    pub error: bool,
    /// Services with at least one span in the trace, sorted.
    pub services: Vec<String>,
}

impl TraceSummary {
    /// The summary of a trace with no spans yet.
    pub fn empty(trace_id: [u8; 16]) -> TraceSummary {
        TraceSummary {
            trace_id,
            root_service: None,
            root_name: None,
            start_unix_nano: 0,
            duration_nanos: 0,
            span_count: 0,
            error: false,
            services: Vec::new(),
        }
    }

    /// Adds one span that the summary has not seen yet.
    pub fn absorb(&mut self, span: &Span) {
        let end = if self.span_count == 0 {
            self.start_unix_nano = span.start_unix_nano;
            span.end_unix_nano
        } else {
            let end = self.start_unix_nano.saturating_add(self.duration_nanos);
            self.start_unix_nano = self.start_unix_nano.min(span.start_unix_nano);
            end.max(span.end_unix_nano)
        };
        self.duration_nanos = end.saturating_sub(self.start_unix_nano);
        self.span_count += 1;
        self.error |= is_error(span);
        if span.parent_span_id.is_none() && self.root_service.is_none() {
            self.root_service = Some(span.service.clone());
            self.root_name = Some(span.name.clone());
        }
        if let Err(at) = self.services.binary_search(&span.service) {
            self.services.insert(at, span.service.clone());
        }
    }
}

#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Applies every write (see [`TraceWrite`]). Idempotent: repeating a call changes nothing.
    async fn write(&self, writes: &[TraceWrite]) -> Result<(), TraceStoreError>;

    /// The spans of a kept, unexpired trace, ordered by start time; `None` when the trace is unknown,
    /// only provisional, or expired.
    async fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Option<Vec<Span>>, TraceStoreError>;

    /// Kept, unexpired traces with a span of `service`, newest start first, at most `limit`.
    async fn recent_traces(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<TraceSummary>, TraceStoreError>;

    /// Deletes traces whose expiry has passed (a DynamoDB adapter leaves it to TTL). Returns how many
    /// traces were deleted.
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, TraceStoreError>;
}
