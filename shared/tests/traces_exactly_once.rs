//! At-least-once delivery must not double-count RED or edges: a redelivered batch, a retry from the
//! lowest failed sequence number after partial failures, and a span that ingest duplicated all end
//! with exactly the buckets, graph and stored traces of one clean pass.

#[path = "traces_support/builders.rs"]
mod builders;
use flowscope_core::testing::memory_store;

use std::collections::BTreeMap;

use builders::*;
use flowscope_core::embedded::RedbTraceStore;
use flowscope_core::model::{Resolution, SeriesKey};
use flowscope_core::ports::{BucketKey, BucketStore};
use flowscope_core::ports::{SequenceNumber, TraceStore};
use flowscope_core::spans::{hex, Span, SpanKind};
use flowscope_core::traces::fold::FoldCounters;
use flowscope_core::traces::{SamplingPolicy, TraceConfig, TraceProcessor};
use memory_store::{FailingStore, MemoryStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Batch = Vec<(SequenceNumber, Vec<Span>)>;

fn config() -> TraceConfig {
    TraceConfig {
        // Some traces kept by quota, some by ratio, some dropped, errors always kept.
        sampling: SamplingPolicy {
            per_minute: 2,
            ratio: 0.3,
        },
        ..TraceConfig::default()
    }
}

/// Three batches of one shard: pairs within a record, pairs across batches (either half first), a
/// span duplicated by ingest, and at the end a jump in event time that turns the database calls into
/// virtual edges.
fn workload() -> Vec<Batch> {
    let t: Vec<Checkout> = (1..=6)
        .map(|n| checkout(n, u64::from(n) * 1_000, 80 + u64::from(n) * 10, n % 3 == 0))
        .collect();
    let mut both = t[0].web.clone();
    both.extend(t[0].pay.clone());
    let batch1 = records(
        1,
        vec![
            both,
            t[1].pay.clone(),
            t[2].web.clone(),
            t[3].pay.clone(),
            t[4].web.clone(),
        ],
    );
    let batch2 = records(
        6,
        vec![
            t[1].web.clone(),
            t[2].pay.clone(),
            t[0].web.clone(), // ingest retried web's export: the same spans again
            t[5].pay.clone(),
        ],
    );
    let later = span(
        99,
        991,
        None,
        "web",
        "GET /health",
        SpanKind::Server,
        (45_000, 2),
    );
    let batch3 = records(
        10,
        vec![
            t[3].web.clone(),
            t[4].pay.clone(),
            t[5].web.clone(),
            vec![later],
        ],
    );
    vec![batch1, batch2, batch3]
}

type Fingerprint = BTreeMap<(u64, String, i64), (u64, u64, Option<u64>, Option<u64>, Vec<u8>)>;

/// Every bucket's statistics (not its watermarks, which depend on how delivery went).
fn buckets(store: &MemoryStore) -> Fingerprint {
    store
        .buckets()
        .into_iter()
        .map(|(key, bucket)| {
            let s = bucket.stats;
            (
                (key.series.0, key.resolution.to_string(), key.start_unix_s),
                (
                    s.count,
                    s.sum.to_bits(),
                    s.min.map(f64::to_bits),
                    s.max.map(f64::to_bits),
                    s.sketch.to_bytes(),
                ),
            )
        })
        .collect()
}

/// Kept traces per service with their span counts.
async fn stored(traces: &RedbTraceStore) -> BTreeMap<String, Vec<(String, u64)>> {
    let mut out = BTreeMap::new();
    for service in ["web", "pay"] {
        let list = traces.recent_traces(service, 100).await.unwrap();
        out.insert(
            service.to_string(),
            list.iter()
                .map(|t| (hex(&t.trace_id), t.span_count))
                .collect(),
        );
    }
    out
}

struct Reference {
    buckets: Fingerprint,
    graph: serde_json::Value,
    stored: BTreeMap<String, Vec<(String, u64)>>,
}

async fn reference() -> Reference {
    let Setup {
        store,
        traces,
        processor,
        ..
    } = setup(config());
    for batch in workload() {
        let outcome = processor.process("shard-0", &batch).await;
        assert_eq!(outcome.retry_from, None);
    }
    Reference {
        buckets: buckets(&store),
        graph: graph(store.clone(), traces.clone()).await,
        stored: stored(&traces).await,
    }
}

#[tokio::test]
async fn the_workload_exercises_pairing_virtual_edges_sampling_and_duplicates() {
    // Guards the other tests of this file against a workload that tests nothing.
    let Setup {
        store,
        traces,
        processor,
        ..
    } = setup(config());
    let mut total = FoldCounters::default();
    for batch in workload() {
        let c = processor.process("shard-0", &batch).await.counters.fold;
        total.edges_paired += c.edges_paired;
        total.edges_virtual += c.edges_virtual;
        total.spans_duplicate += c.spans_duplicate;
        total.traces_kept += c.traces_kept;
        total.traces_dropped += c.traces_dropped;
    }
    assert_eq!(total.edges_paired, 6, "one web → pay call per checkout");
    assert_eq!(total.edges_virtual, 6, "one postgresql call per checkout");
    assert_eq!(total.spans_duplicate, 2, "web's re-sent export");
    assert!(
        total.traces_kept >= 3 && total.traces_dropped >= 1,
        "{total:?}"
    );
    let graph = graph(store.clone(), traces.clone()).await;
    assert_eq!(edge(&graph, "web", "pay").unwrap()["count"], 6);
    assert_eq!(edge(&graph, "web", "pay").unwrap()["errors"], 2);
    assert_eq!(edge(&graph, "pay", "postgresql").unwrap()["count"], 6);
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    let expected = reference().await;
    let Setup {
        store,
        traces,
        processor,
        ..
    } = setup(config());
    for batch in workload() {
        let first = processor.process("shard-0", &batch).await;
        assert_eq!(first.retry_from, None);
        // The invocation timed out after finishing: Lambda delivers the same batch again.
        let again = processor.process("shard-0", &batch).await;
        assert_eq!(again.retry_from, None);
        let spans: usize = batch.iter().map(|(_, s)| s.len()).sum();
        assert_eq!(again.counters.fold.spans_duplicate, spans as u64);
        assert!(again.updates.is_empty(), "nothing new to write");
        assert!(again.trace_events.is_empty(), "nothing new to show");
    }
    assert_eq!(buckets(&store), expected.buckets);
    assert_eq!(graph(store.clone(), traces.clone()).await, expected.graph);
    assert_eq!(stored(&traces).await, expected.stored);
}

#[tokio::test]
async fn two_processors_taking_turns_on_one_shard_count_as_one() {
    // Two warm Lambda instances take turns on a shard: each must continue from the state the other
    // saved, not from the shard state it remembers saving itself.
    let expected = reference().await;
    let Setup {
        store,
        traces,
        processor,
        ..
    } = setup(config());
    let other = TraceProcessor::new(store.clone(), traces.clone(), config()).with_clock(now);
    let batches = workload();
    // The first instance folds batch 1 and remembers its shard state; the other folds batch 2 over
    // the saved state; the first comes back for batch 3.
    for (batch, turn) in batches.iter().zip([&processor, &other, &processor]) {
        let outcome = turn.process("shard-0", batch).await;
        assert_eq!(outcome.retry_from, None);
    }
    assert_eq!(buckets(&store), expected.buckets);
    assert_eq!(graph(store.clone(), traces.clone()).await, expected.graph);
    assert_eq!(stored(&traces).await, expected.stored);
}

#[tokio::test]
async fn a_redelivery_over_state_that_was_never_saved_is_dropped_by_the_watermarks() {
    let expected = reference().await;
    let inner = MemoryStore::new();
    let store = FailingStore::new(inner.clone());
    let (_dir, traces) = open_traces();
    let processor = TraceProcessor::new(store.clone(), traces.clone(), config()).with_clock(now);
    for batch in workload() {
        // Every bucket is written, then saving the state fails: the whole batch comes again and is
        // recomputed from the old state, so every contribution meets its own watermark.
        store.fail_state_saves(1);
        let first = processor.process("shard-0", &batch).await;
        assert_eq!(first.retry_from, Some(batch[0].0.clone()));
        let again = processor.process("shard-0", &batch).await;
        assert_eq!(again.retry_from, None);
        assert!(again.counters.contributions_duplicate > 0);
        assert!(again.updates.is_empty());
    }
    assert_eq!(buckets(&inner), expected.buckets);
    assert_eq!(graph(inner.clone(), traces.clone()).await, expected.graph);
    assert_eq!(stored(&traces).await, expected.stored);
}

#[tokio::test]
async fn retrying_from_the_lowest_failed_record_after_random_failures_counts_everything_once() {
    let expected = reference().await;
    for seed in 0..8u64 {
        let inner = MemoryStore::new();
        let store = FailingStore::new(inner.clone());
        let (_dir, plain_traces) = open_traces();
        let traces = FailingTraces::new(plain_traces.clone());
        let processor =
            TraceProcessor::new(store.clone(), traces.clone(), config()).with_clock(now);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut retries = 0;
        for batch in workload() {
            let mut remaining = batch.clone();
            let mut attempt = 0;
            loop {
                attempt += 1;
                if attempt < 6 {
                    store.fail_randomly(0.05, rng.random());
                    if rng.random_bool(0.2) {
                        traces.fail_writes(1);
                    }
                } else {
                    store.stop_failing();
                    traces.fail_writes(0);
                }
                let outcome = processor.process("shard-0", &remaining).await;
                let Some(from) = outcome.retry_from else {
                    break;
                };
                retries += 1;
                remaining = if rng.random_bool(0.3) {
                    batch.clone() // a timeout: the whole batch again
                } else {
                    batch
                        .iter()
                        .filter(|(seq, _)| *seq >= from)
                        .cloned()
                        .collect()
                };
            }
        }
        assert!(retries > 0, "seed {seed} injected no failure");
        assert_eq!(buckets(&inner), expected.buckets, "seed {seed}");
        assert_eq!(
            graph(inner.clone(), plain_traces.clone()).await,
            expected.graph,
            "seed {seed}"
        );
        assert_eq!(stored(&plain_traces).await, expected.stored, "seed {seed}");
    }
}

#[tokio::test]
async fn a_failed_bucket_write_asks_for_redelivery_from_its_first_record() {
    let inner = MemoryStore::new();
    let store = FailingStore::new(inner.clone());
    let (_dir, traces) = open_traces();
    let processor = TraceProcessor::new(store.clone(), traces.clone(), config()).with_clock(now);
    let batch = &workload()[0];
    // pay's service-level request count, first written by the first record (trace 1).
    let pay_requests = SeriesKey {
        service: "pay".into(),
        metric: "red.requests".into(),
        attributes: Default::default(),
    };
    store.fail_bucket_writes(
        BucketKey {
            series: pay_requests.id(),
            resolution: Resolution::OneMinute,
            start_unix_s: t0() as i64,
        },
        1,
    );
    let outcome = processor.process("shard-0", batch).await;
    assert_eq!(outcome.retry_from, Some(batch[0].0.clone()));
    // Everything else of the batch was written; the redelivery adds only the failed bucket.
    let retried = processor.process("shard-0", batch).await;
    assert_eq!(retried.retry_from, None);
    assert_eq!(retried.counters.buckets_written, 1);
    let written = inner
        .query_buckets(pay_requests.id(), Resolution::OneMinute, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        written[0].1.sum, 3.0,
        "pay served traces 1, 2 and 4 in this batch"
    );
}
