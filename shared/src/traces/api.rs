//! The trace routes of the query API, for `query::QueryApi` to try before its own:
//! - `GET /api/traces/{traceId}` — a kept trace's span tree with its critical path ([`TraceView`]);
//! - `GET /api/services/{service}/traces?limit=` — the service's recent kept traces, newest first;
//! - `GET /api/graph?from&to[&resolution]` — the service graph over a range ([`GraphView`]).
//!
//! RED series need no route of their own: they are ordinary series under `/api/services/...`.

use crate::ports::{MetricStore, TraceStore};
use crate::query::{parse_query, percent_decode, ApiResponse, QueryError, Range};

use super::graph_view::{auto_resolution, service_graph, GraphView};
use super::trace_view::{trace_view, SummaryView, TraceView};

/// Traces listed when `limit` is absent, and the most a request may ask for.
pub const DEFAULT_LIST_LIMIT: usize = 20;
pub const MAX_LIST_LIMIT: usize = 200;

/// Serves `GET <path>?<query>` when `path` is a trace route; `None` when it is not (the caller routes
/// it on).
pub async fn handle<S, T>(
    store: &S,
    traces: &T,
    path: &str,
    query: &str,
    now_unix_s: i64,
) -> Option<ApiResponse>
where
    S: MetricStore + ?Sized,
    T: TraceStore + ?Sized,
{
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = match segments.as_slice() {
        ["api", "traces", id] => get_trace(traces, id).await,
        ["api", "services", service, "traces"] => recent(traces, service, query).await,
        ["api", "graph"] => graph(store, query, now_unix_s).await,
        _ => return None,
    };
    Some(match result {
        Ok(body) => ApiResponse { status: 200, body },
        Err(error) => ApiResponse {
            status: error.status(),
            body: serde_json::json!({ "error": error.to_string() }).to_string(),
        },
    })
}

fn to_json(value: &impl serde::Serialize) -> Result<String, QueryError> {
    serde_json::to_string(value)
        .map_err(|e| QueryError::BadRequest(format!("cannot encode response: {e}")))
}

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

async fn get_trace<T: TraceStore + ?Sized>(traces: &T, id: &str) -> Result<String, QueryError> {
    let trace_id = parse_trace_id(id)?;
    let spans = traces
        .get_trace(&trace_id)
        .await
        .map_err(trace_store_error)?
        .ok_or_else(|| QueryError::NotFound(format!("no kept trace {id}")))?;
    let view: TraceView = trace_view(&trace_id, &spans);
    to_json(&view)
}

async fn recent<T: TraceStore + ?Sized>(
    traces: &T,
    service: &str,
    query: &str,
) -> Result<String, QueryError> {
    let params = parse_query(query);
    let limit = match params.get("limit") {
        None => DEFAULT_LIST_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
            _ => {
                return Err(QueryError::BadRequest(format!(
                    "`limit` must be 1 to {MAX_LIST_LIMIT}, got {text:?}"
                )))
            }
        },
    };
    let summaries = traces
        .recent_traces(service, limit)
        .await
        .map_err(trace_store_error)?;
    let traces: Vec<SummaryView> = summaries.iter().map(SummaryView::new).collect();
    to_json(&serde_json::json!({ "service": service, "traces": traces }))
}

async fn graph<S: MetricStore + ?Sized>(
    store: &S,
    query: &str,
    now: i64,
) -> Result<String, QueryError> {
    let mut params = parse_query(query);
    if !params.contains_key("resolution") {
        // Parse from/to with the defaults first, to pick a resolution that fits the range.
        let mut probe = params.clone();
        probe.insert("resolution".into(), "1h".into());
        let range = Range::from_query(&probe, now)?;
        params.insert(
            "resolution".into(),
            auto_resolution(range.from, range.to).as_str().into(),
        );
    }
    let range = Range::from_query(&params, now)?;
    let view: GraphView = service_graph(store, range).await?;
    to_json(&view)
}

/// Trace store failures map onto the query API's statuses (503 when throttled, else 500).
fn trace_store_error(error: crate::ports::TraceStoreError) -> QueryError {
    use crate::ports::{StoreError, TraceStoreError};
    QueryError::Store(match error {
        TraceStoreError::Throttled(m) => StoreError::Throttled(m),
        TraceStoreError::Unavailable(m) => StoreError::Unavailable(m),
        TraceStoreError::Corrupt { key, reason } => StoreError::Corrupt { key, reason },
    })
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
