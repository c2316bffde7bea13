//! Span benchmark: spans/s through decode + RED + service graph (+ sampling) on one core, then through
//! the whole trace processor against an in-memory store, with the store calls per million spans, and
//! against the embedded redb stores of local mode.
//! Prints numbers; asserts nothing about time.
//! Run: `cargo bench -p flowscope-core --bench spans`.

/// The allocator the `flowscope` binary ships with, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use flowscope_core::testing::memory_store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use flowscope_core::embedded::{RedbStore, RedbTraceStore};
use flowscope_core::model::Attributes;
use flowscope_core::ports::{
    SequenceNumber, StreamEntry, TraceStore, TraceStoreError, TraceSummary, TraceWrite,
};
use flowscope_core::record::{self, RecordPayload};
use flowscope_core::spans::{Span, SpanKind, SpanStatus};
use flowscope_core::traces::fold::{Effects, FoldState, TraceFold};
use flowscope_core::traces::series::SeriesTable;
use flowscope_core::traces::{TraceConfig, TraceProcessor};
use memory_store::MemoryStore;

const TRACES: u64 = 40_000;
const RECORDS_PER_BATCH: usize = 300;
const T0: u64 = 1_700_000_000;
const NOW: i64 = T0 as i64 + 3_600;
const MS: u64 = 1_000_000;

/// A trace of a web shop: web (server + 2 clients) → cart, pay (server + db client) → postgresql,
/// 6 spans; 2% of payments fail. Each service exports its own spans, so a trace is 3 records.
fn trace(n: u64) -> [Vec<Span>; 3] {
    let mut trace_id = [0u8; 16];
    trace_id[8..].copy_from_slice(&n.to_be_bytes());
    let start = T0 * 1_000_000_000 + n * 5 * MS; // 200 traces/s
    let id = |k: u64| (n * 8 + k).to_be_bytes();
    let span =
        |k: u64, parent: Option<u64>, service: &str, name: &str, kind, from: u64, ms: u64| {
            let mut attributes = Attributes::new();
            attributes.insert("http.route".into(), name.into());
            Span {
                trace_id,
                span_id: id(k),
                parent_span_id: parent.map(id),
                service: service.into(),
                name: name.into(),
                kind,
                start_unix_nano: start + from * MS,
                end_unix_nano: start + (from + ms) * MS,
                status: SpanStatus::Unset,
                attributes,
            }
        };
    let mut db = span(
        7,
        Some(6),
        "pay",
        "INSERT payments",
        SpanKind::Client,
        25,
        8,
    );
    db.attributes
        .insert("db.system".into(), "postgresql".into());
    let mut pay = span(6, Some(3), "pay", "POST /pay", SpanKind::Server, 22, 20);
    if n.is_multiple_of(50) {
        pay.status = SpanStatus::Error;
    }
    [
        vec![
            span(1, None, "web", "GET /checkout", SpanKind::Server, 0, 60),
            span(2, Some(1), "web", "GET /cart", SpanKind::Client, 2, 15),
            span(3, Some(1), "web", "POST /pay", SpanKind::Client, 20, 30),
        ],
        vec![span(
            4,
            Some(2),
            "cart",
            "GET /cart",
            SpanKind::Server,
            4,
            10,
        )],
        vec![pay, db],
    ]
}

/// Stream records in arrival order: web's export lags, so its spans of trace `n` arrive after cart's
/// and pay's of trace `n + LAG`; halves of one edge land in different records, often in different
/// batches.
fn stream() -> Vec<StreamEntry> {
    const LAG: u64 = 3;
    let mut entries = Vec::new();
    for n in 0..TRACES + LAG {
        if n < TRACES {
            let [_, cart, pay] = trace(n);
            entries.extend(record::encode_spans(&cart));
            entries.extend(record::encode_spans(&pay));
        }
        if n >= LAG {
            let [web, _, _] = trace(n - LAG);
            entries.extend(record::encode_spans(&web));
        }
    }
    entries
}

fn decode(batch: &[(u128, &StreamEntry)]) -> Vec<(SequenceNumber, Vec<Span>)> {
    batch
        .iter()
        .filter_map(|(seq, entry)| match record::decode(&entry.data) {
            Ok(RecordPayload::Spans(spans)) => Some((SequenceNumber::from_u128(*seq), spans)),
            _ => None,
        })
        .collect()
}

/// Counts what the processor would store.
#[derive(Default)]
struct CountingTraces {
    calls: AtomicU64,
    spans: AtomicU64,
}

#[async_trait]
impl TraceStore for CountingTraces {
    async fn write(&self, writes: &[TraceWrite]) -> Result<(), TraceStoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let spans: usize = writes.iter().map(|w| w.spans.len()).sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn get_trace(&self, _: &[u8; 16]) -> Result<Option<Vec<Span>>, TraceStoreError> {
        Ok(None)
    }
    async fn recent_traces(&self, _: &str, _: usize) -> Result<Vec<TraceSummary>, TraceStoreError> {
        Ok(Vec::new())
    }
    async fn purge_expired(&self, _: i64) -> Result<u64, TraceStoreError> {
        Ok(0)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let entries = stream();
    let numbered: Vec<(u128, &StreamEntry)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u128 + 1, e))
        .collect();
    let batches: Vec<&[(u128, &StreamEntry)]> = numbered.chunks(RECORDS_PER_BATCH).collect();
    let spans_total: u64 = trace(0).iter().map(|r| r.len() as u64).sum::<u64>() * TRACES;
    let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
    println!(
        "workload: {TRACES} traces, {spans_total} spans in {} records ({:.1} bytes/span), {} batches",
        entries.len(),
        bytes as f64 / spans_total as f64,
        batches.len()
    );

    // 0. Decode alone, for reference.
    let started = Instant::now();
    let decoded: usize = batches.iter().map(|b| decode(b).len()).sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "decode only: {:.0} spans/s ({decoded} records, {:.2} s)",
        spans_total as f64 / elapsed,
        elapsed
    );

    // 1. Decode + fold (RED observations, edge pairing and expiry, sampling), one thread.
    let config = TraceConfig::default();
    let now_nanos = NOW as u64 * 1_000_000_000;
    let started = Instant::now();
    let mut fold = TraceFold::new(&config, FoldState::default());
    let mut observations = 0usize;
    let mut edges = 0u64;
    for batch in &batches {
        let mut series = SeriesTable::new();
        let mut effects = Effects::default();
        for (record, (_, spans)) in decode(batch).iter().enumerate() {
            fold.apply(record, spans, now_nanos, &mut series, &mut effects);
        }
        observations += effects.observations.len();
        edges += effects.counters.edges_paired + effects.counters.edges_virtual;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "decode + RED + graph + sampling: {:.0} spans/s ({observations} observations, {edges} edges, {:.2} s)",
        spans_total as f64 / elapsed,
        elapsed
    );

    // 2. The whole processor: + per-bucket merge, watermark writes, state load/save, span storage.
    let store = MemoryStore::new();
    let traces = Arc::new(CountingTraces::default());
    let processor = TraceProcessor::new(store.clone(), traces.clone(), config).with_clock(|| NOW);
    let started = Instant::now();
    let mut written = 0u64;
    let mut evicted = 0u64;
    for batch in &batches {
        let outcome = processor.process("shard-0", &decode(batch)).await;
        assert_eq!(outcome.retry_from, None);
        written += outcome.counters.buckets_written;
        evicted += outcome.counters.fold.halves_evicted;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_million = |n: u64| n as f64 * 1e6 / spans_total as f64;
    println!(
        "processor (in-memory store): {:.0} spans/s ({:.2} s); {evicted} edge halves left the full waiting set early",
        spans_total as f64 / elapsed,
        elapsed
    );
    println!(
        "per million spans: {:.0} bucket writes, {:.0} distinct state items (one per trace + the shard's), {:.0} trace-store calls storing {:.0} spans",
        per_million(written),
        per_million(store.state_keys().len() as u64),
        per_million(traces.calls.load(Ordering::Relaxed)),
        per_million(traces.spans.load(Ordering::Relaxed)),
    );

    // 3. The same against the embedded stores local mode runs on (redb files on tokio's blocking
    //    pool): what one shard of `flowscope local` can fold. First with every metric-store write
    //    durable when it returns (an fsync per registry, bucket and state write, and one for the
    //    spans), then as local mode runs it: the metric store's writes deferred and made durable
    //    once a second before the stream checkpoint (`RedbStore::with_deferred_durability`); the
    //    spans stay durable per batch (they must be on disk before the state that says so).
    for deferred in [false, true] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut store = RedbStore::open(&dir.path().join("store.redb")).expect("metric store");
        if deferred {
            store = store.with_deferred_durability();
        }
        let store = Arc::new(store);
        let traces = Arc::new(RedbTraceStore::open(dir.path()).expect("trace store"));
        let processor = TraceProcessor::new(store.clone(), traces, config).with_clock(|| NOW);
        let started = Instant::now();
        let mut synced = Instant::now();
        for batch in &batches {
            let outcome = processor.process("shard-0", &decode(batch)).await;
            assert_eq!(outcome.retry_from, None);
            if deferred && synced.elapsed().as_secs_f64() >= 1.0 {
                store.sync().await.expect("sync");
                synced = Instant::now();
            }
        }
        if deferred {
            store.sync().await.expect("sync");
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "processor (embedded redb stores, {}): {:.0} spans/s ({:.2} s)",
            if deferred {
                "local mode: metric store synced once a second"
            } else {
                "every write durable"
            },
            spans_total as f64 / elapsed,
            elapsed
        );
    }
}
