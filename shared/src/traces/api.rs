//! The trace reads behind the query API's trace routes (served by [`crate::http::api`]):
//! - `GET /api/traces/{traceId}` — a kept trace's span tree with its critical path ([`TraceView`]);
//! - `GET /api/services/{service}/traces?limit=` — the service's recent kept traces, newest first;
//! - `GET /api/graph?from&to[&resolution]` — the service graph over a range ([`GraphView`]).
//!
//! RED series need no route of their own: they are ordinary series under `/api/services/...`.

use crate::model::Resolution;
use crate::ports::{BucketStore, SeriesCatalog, TraceStore};
use crate::query::{QueryError, RangeRequest};

use super::graph_view::{auto_resolution, service_graph, GraphView};
use super::trace_view::{trace_view, SummaryView, TraceView};

/// Traces listed when `limit` is absent, and the most a request may ask for.
pub const DEFAULT_LIST_LIMIT: usize = 20;
pub const MAX_LIST_LIMIT: usize = 200;

/// 32 hex digits (either case) → trace id bytes.
pub fn parse_trace_id(text: &str) -> Result<[u8; 16], QueryError> {
    let invalid =
        || QueryError::BadRequest(format!("trace id must be 32 hex digits, got {text:?}"));
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
    }
    Ok(id)
}

/// A kept trace by its id (32 hex digits).
pub async fn get_trace<T: TraceStore + ?Sized>(
    traces: &T,
    id: &str,
) -> Result<TraceView, QueryError> {
    let trace_id = parse_trace_id(id)?;
    let spans = traces
        .get_trace(&trace_id)
        .await?
        .ok_or_else(|| QueryError::NotFound(format!("no kept trace {id}")))?;
    Ok(trace_view(&trace_id, &spans))
}

/// The service's recent kept traces, newest first.
pub async fn recent<T: TraceStore + ?Sized>(
    traces: &T,
    service: &str,
    limit: usize,
) -> Result<Vec<SummaryView>, QueryError> {
    let summaries = traces.recent_traces(service, limit).await?;
    Ok(summaries.iter().map(SummaryView::new).collect())
}

/// The service graph over a range; without `resolution`, the finest one that fits the range.
pub async fn graph<S: SeriesCatalog + BucketStore + ?Sized>(
    store: &S,
    request: RangeRequest,
    now: i64,
) -> Result<GraphView, QueryError> {
    let mut request = request;
    if request.resolution.is_none() {
        // Resolve from/to with the defaults first, to pick a resolution that fits the range.
        let probe = RangeRequest {
            resolution: Some(Resolution::OneHour),
            ..request
        };
        let range = probe.resolve(now)?;
        request.resolution = Some(auto_resolution(range.from, range.to));
    }
    service_graph(store, request.resolve(now)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_parse_from_32_hex_digits_only() {
        let id = parse_trace_id("0102030405060708090a0b0c0d0e0fFF").unwrap();
        assert_eq!(id[0], 1);
        assert_eq!(id[15], 0xff);
        assert!(parse_trace_id("0102").is_err());
        assert!(parse_trace_id("zz02030405060708090a0b0c0d0e0f10").is_err());
        // Multi-byte characters must not split a slice inside a character.
        assert!(parse_trace_id("é102030405060708090a0b0c0d0e0f1").is_err());
        // `from_str_radix` alone would take a sign.
        assert!(parse_trace_id("+f02030405060708090a0b0c0d0e0f10").is_err());
    }
}
