//! Hand-built spans and traces for the trace tests, at fixed times, a processor set-up, the trace
//! API as JSON, and a `TraceStore` wrapper that fails on demand. The metric store is
//! `flowscope_core::testing::MemoryStore` (feature `test-util`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use flowscope_core::model::Attributes;
use flowscope_core::ports::{
    SequenceNumber, TraceStore, TraceStoreError, TraceSummary, TraceWrite,
};
use flowscope_core::spans::{Span, SpanKind, SpanStatus};

/// The start of the hour before the current one: span times are at fixed offsets from it, so bucket
/// boundaries are predictable, and recent enough that stored traces are not already past their TTL
/// (the embedded trace store hides expired traces by the wall clock).
pub fn t0() -> u64 {
    static T0: OnceLock<u64> = OnceLock::new();
    *T0.get_or_init(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        (now / 3600 - 1) * 3600
    })
}

/// The processors' clock: an hour after `t0`.
pub fn now() -> i64 {
    (t0() + 3600) as i64
}

pub const MS: u64 = 1_000_000;
pub const SEC: u64 = 1_000_000_000;

pub fn trace_id(n: u32) -> [u8; 16] {
    let mut id = [0xa0; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    id
}

pub fn span_id(n: u32) -> [u8; 8] {
    let mut id = [0x50; 8];
    id[4..].copy_from_slice(&n.to_be_bytes());
    id
}

/// A span of trace `trace`, from `start_ms` after `t0()`, lasting `duration_ms`.
pub fn span(
    trace: u32,
    id: u32,
    parent: Option<u32>,
    service: &str,
    name: &str,
    kind: SpanKind,
    (start_ms, duration_ms): (u64, u64),
) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: span_id(id),
        parent_span_id: parent.map(span_id),
        service: service.into(),
        name: name.into(),
        kind,
        start_unix_nano: t0() * SEC + start_ms * MS,
        end_unix_nano: t0() * SEC + (start_ms + duration_ms) * MS,
        status: SpanStatus::Unset,
        attributes: Attributes::new(),
    }
}

pub fn failed(mut span: Span) -> Span {
    span.status = SpanStatus::Error;
    span
}

pub fn with(mut span: Span, key: &str, value: &str) -> Span {
    span.attributes.insert(key.into(), value.into());
    span
}

/// `web` serves GET /checkout (`web_ms` long) and calls `pay` (10..60 ms in), which calls postgresql
/// (20..50 ms in) — a database that reports nothing itself.
pub struct Checkout {
    pub web: Vec<Span>,
    pub pay: Vec<Span>,
}

pub fn checkout(trace: u32, offset_ms: u64, web_ms: u64, pay_fails: bool) -> Checkout {
    let base = trace * 10;
    let web_root = span(
        trace,
        base + 1,
        None,
        "web",
        "GET /checkout",
        SpanKind::Server,
        (offset_ms, web_ms),
    );
    let web_call = span(
        trace,
        base + 2,
        Some(base + 1),
        "web",
        "POST /pay",
        SpanKind::Client,
        (offset_ms + 10, 50),
    );
    let mut pay_server = span(
        trace,
        base + 3,
        Some(base + 2),
        "pay",
        "POST /pay",
        SpanKind::Server,
        (offset_ms + 15, 40),
    );
    if pay_fails {
        pay_server = with(pay_server, "http.response.status_code", "503");
    }
    let db = with(
        span(
            trace,
            base + 4,
            Some(base + 3),
            "pay",
            "INSERT payments",
            SpanKind::Client,
            (offset_ms + 20, 30),
        ),
        "db.system",
        "postgresql",
    );
    Checkout {
        web: vec![web_root, web_call],
        pay: vec![pay_server, db],
    }
}

/// Records numbered from `first_seq`.
pub fn records(first_seq: u128, spans: Vec<Vec<Span>>) -> Vec<(SequenceNumber, Vec<Span>)> {
    spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| (SequenceNumber::from_u128(first_seq + i as u128), s))
        .collect()
}

/// Wraps a trace store; the next `n` writes fail.
pub struct FailingTraces<T> {
    pub inner: Arc<T>,
    failing_writes: AtomicUsize,
}

impl<T> FailingTraces<T> {
    pub fn new(inner: Arc<T>) -> Arc<Self> {
        Arc::new(FailingTraces {
            inner,
            failing_writes: AtomicUsize::new(0),
        })
    }

    pub fn fail_writes(&self, n: usize) {
        self.failing_writes.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl<T: TraceStore> TraceStore for FailingTraces<T> {
    async fn write(&self, writes: &[TraceWrite]) -> Result<(), TraceStoreError> {
        let failing = self
            .failing_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(TraceStoreError::Unavailable(
                "injected write failure".into(),
            ));
        }
        self.inner.write(writes).await
    }

    async fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Option<Vec<Span>>, TraceStoreError> {
        self.inner.get_trace(trace_id).await
    }

    async fn recent_traces(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<TraceSummary>, TraceStoreError> {
        self.inner.recent_traces(service, limit).await
    }

    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, TraceStoreError> {
        self.inner.purge_expired(now_unix_s).await
    }
}

/// A trace processor over an in-memory metric store and a fresh embedded trace store, clocked at
/// [`now`].
pub struct Setup {
    pub store: Arc<flowscope_core::testing::MemoryStore>,
    pub traces: Arc<flowscope_core::embedded::RedbTraceStore>,
    pub processor: flowscope_core::traces::TraceProcessor<
        flowscope_core::testing::MemoryStore,
        flowscope_core::embedded::RedbTraceStore,
    >,
    _dir: tempfile::TempDir,
}

pub fn setup(config: flowscope_core::traces::TraceConfig) -> Setup {
    let store = flowscope_core::testing::MemoryStore::new();
    let (dir, traces) = open_traces();
    let processor =
        flowscope_core::traces::TraceProcessor::new(store.clone(), traces.clone(), config)
            .with_clock(now);
    Setup {
        store,
        traces,
        processor,
        _dir: dir,
    }
}

/// A trace store in a fresh temporary directory (kept alive by the returned guard).
pub fn open_traces() -> (
    tempfile::TempDir,
    Arc<flowscope_core::embedded::RedbTraceStore>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = flowscope_core::embedded::RedbTraceStore::open(dir.path()).expect("opens");
    (dir, Arc::new(store))
}

/// `GET path?query` through the core's `/api/*` router, as (status, JSON body).
pub async fn api_get(
    store: Arc<dyn flowscope_core::ports::MetricStore>,
    traces: Arc<dyn TraceStore>,
    path: &str,
    query: &str,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let alerts = flowscope_core::embedded::RedbAlertStore::open(&dir.path().join("alerts.redb"))
        .expect("opens");
    let rules = flowscope_core::alerts::RuleSet::shipped().expect("the shipped rules are valid");
    let state = flowscope_core::http::ApiState::new(store, Arc::new(alerts), Arc::new(rules))
        .with_traces(traces)
        .with_clock(Arc::new(now));
    let uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("a valid request");
    let response = flowscope_core::http::api::router(state)
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).expect("JSON body");
    (status, body)
}

/// The graph over the hour of `t0()`.
pub async fn graph(
    store: Arc<dyn flowscope_core::ports::MetricStore>,
    traces: Arc<dyn TraceStore>,
) -> serde_json::Value {
    let query = format!("from={}&to={}", t0(), t0() + 3600);
    let (status, body) = api_get(store, traces, "/api/graph", &query).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The edge `source → target` of a graph response, if present.
pub fn edge<'a>(
    graph: &'a serde_json::Value,
    source: &str,
    target: &str,
) -> Option<&'a serde_json::Value> {
    graph["edges"]
        .as_array()?
        .iter()
        .find(|e| e["source"] == source && e["target"] == target)
}

pub fn node<'a>(graph: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    graph["nodes"].as_array()?.iter().find(|n| n["id"] == id)
}
