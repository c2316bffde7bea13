//! At-least-once delivery (Kinesis → Lambda redelivers, retries from the lowest failed sequence
//! number, times out whole batches) must still count every record exactly once — cumulative counters
//! included. The reference is each record applied once, on its own, to a fresh store.

use flowscope_core::testing::memory_store;
use flowscope_core::testing::points;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use flowscope_core::aggregate::{Aggregator, BatchOutcome};
use flowscope_core::model::{MetricPoint, PointData, Resolution, Retention, Temporality};
use flowscope_core::ports::{BucketKey, MetricStore, StreamRecord};
use memory_store::{FailingStore, MemoryStore};
use points::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Fingerprint = (u64, u64, Option<u64>, Option<u64>, Vec<u8>);

const RECORDS: u128 = 15;

/// Record `i` (1-based) of a workload that touches every normalization path: a gauge, a delta sum,
/// two sources of a cumulative counter (one resets, one restarts), an up-down counter and a
/// cumulative histogram. Records are 20 s apart, so each 1m bucket gets several records.
fn workload_points(i: u128) -> Vec<MetricPoint> {
    let i64_ = i as u64;
    let t = T0 + i64_ * 20;
    let long_ago = T0 - 86_400;
    let k = i64_ as f64;
    let mut points = vec![
        gauge("cpu", t, k / 4.0),
        delta_sum("hits", t, k * 3.0),
        // Source 1: steady counter that resets at record 8.
        cumulative_sum(
            "requests",
            1,
            long_ago,
            t,
            if i < 8 { 100.0 + k * k } else { k },
            true,
        ),
        cumulative_sum("queue", 1, long_ago, t, (k * 7.0) % 11.0, false),
    ];
    // Source 2 restarts at record 9 (new start time, 20 s before its export).
    let (start2, value2) = if i < 9 {
        (long_ago, 5000.0 + 10.0 * k)
    } else {
        (t - 20, 2.0 * (k - 8.0))
    };
    points.push(cumulative_sum("requests", 2, start2, t, value2, true));
    let c = i64_;
    points.push(point(
        "latency",
        1,
        t,
        PointData::Histogram {
            temporality: Temporality::Cumulative {
                start_time_unix_nano: long_ago * SEC,
            },
            count: 6 * c,
            sum: Some(250.0 * c as f64 + (c * c) as f64),
            min: Some(1.0),
            max: Some(300.0 + c as f64),
            bounds: vec![10.0, 100.0],
            bucket_counts: vec![c, 3 * c, 2 * c],
        },
    ));
    points
}

fn workload() -> Vec<StreamRecord> {
    (1..=RECORDS)
        .map(|i| record(i, &workload_points(i)))
        .collect()
}

fn aggregator<S: MetricStore + ?Sized>(store: Arc<S>) -> Aggregator<S> {
    Aggregator::new(store, Retention::default()).with_clock(|| NOW)
}

fn snapshot(store: &MemoryStore) -> BTreeMap<BucketKey, Fingerprint> {
    store
        .buckets()
        .into_iter()
        .map(|(k, b)| (k, fingerprint(&b.stats)))
        .collect()
}

/// Each record applied once, on its own, in order.
async fn reference(records: &[StreamRecord]) -> BTreeMap<BucketKey, Fingerprint> {
    let store = MemoryStore::new();
    let aggregator = aggregator(store.clone());
    for record in records {
        let outcome = aggregator
            .process(&batch(std::slice::from_ref(record)))
            .await;
        assert_eq!(outcome.retry_from, None);
    }
    snapshot(&store)
}

fn assert_same(
    actual: &BTreeMap<BucketKey, Fingerprint>,
    expected: &BTreeMap<BucketKey, Fingerprint>,
) {
    assert_eq!(actual.len(), expected.len(), "bucket sets differ");
    for (key, fp) in expected {
        let got = actual
            .get(key)
            .unwrap_or_else(|| panic!("missing bucket {key:?}"));
        assert_eq!(
            got, fp,
            "bucket {key:?} (count, sum bits, min, max, sketch)"
        );
    }
}

fn records_from(
    records: &[StreamRecord],
    from: &flowscope_core::ports::SequenceNumber,
) -> Vec<StreamRecord> {
    records
        .iter()
        .filter(|r| r.sequence_number >= *from)
        .cloned()
        .collect()
}

fn total_points() -> u64 {
    (1..=RECORDS).map(|i| workload_points(i).len() as u64).sum()
}

#[tokio::test]
async fn the_same_batch_delivered_twice_leaves_identical_buckets() {
    let records = workload();
    let expected = reference(&records).await;
    let store = MemoryStore::new();
    let aggregator = aggregator(store.clone());

    let first = aggregator.process(&batch(&records)).await;
    assert_eq!(first.retry_from, None);
    assert_same(&snapshot(&store), &expected);
    // One conditional write per (bucket, batch), not per record; the 1d buckets are derived by the
    // store from the 1h writes.
    let written = expected
        .keys()
        .filter(|key| key.resolution != Resolution::OneDay)
        .count();
    assert_eq!(store.apply_calls(), written);

    let second = aggregator.process(&batch(&records)).await;
    assert_eq!(second.retry_from, None);
    assert_same(&snapshot(&store), &expected);
    assert!(second.updates.is_empty(), "nothing new to push live");
    assert_eq!(second.points_applied, 0);
    assert_eq!(second.points_duplicate, total_points());
}

#[tokio::test]
async fn a_failed_bucket_write_is_retried_from_its_lowest_record_and_ends_exact() {
    let records = workload();
    let expected = reference(&records).await;
    let store = MemoryStore::new();
    let failing = FailingStore::new(store.clone());
    // The 1m bucket of the cumulative counter at minute 2 holds records 6, 7 and 8 (t = T0+120..160).
    let broken = bucket_key("requests", Resolution::OneMinute, T0 + 120);
    failing.fail_bucket_writes(broken, 1);
    let aggregator = aggregator(failing.clone());

    let outcome = aggregator.process(&batch(&records)).await;
    assert_eq!(outcome.retry_from, Some(seq(6)));
    assert!(store.bucket(broken).is_none());
    // Buckets before the failure are already complete.
    let minute0 = bucket_key("requests", Resolution::OneMinute, T0);
    assert_eq!(snapshot(&store).get(&minute0), expected.get(&minute0));

    // Lambda redelivers from retry_from (records 6..=15), some of which were applied elsewhere.
    let redelivery = aggregator
        .process(&batch(&records_from(&records, &seq(6))))
        .await;
    assert_eq!(redelivery.retry_from, None);
    assert!(
        redelivery.points_duplicate > 0,
        "written buckets refuse their part again"
    );
    assert_same(&snapshot(&store), &expected);
}

#[tokio::test]
async fn a_failed_coarse_bucket_is_retried_from_its_first_delta_keeping_the_baseline() {
    let records = workload();
    let expected = reference(&records).await;
    let store = MemoryStore::new();
    let failing = FailingStore::new(store.clone());
    // The 1h bucket holds every record's delta. Record 1 only sets the counters' baselines (they
    // started a day ago), so the batch must come back from record 2, with the state after record 1.
    failing.fail_bucket_writes(bucket_key("requests", Resolution::OneHour, T0), 2);
    let aggregator = aggregator(failing.clone());

    let first = aggregator.process(&batch(&records)).await;
    assert_eq!(first.retry_from, Some(seq(2)));
    let second = aggregator
        .process(&batch(&records_from(&records, &seq(2))))
        .await;
    assert_eq!(second.retry_from, Some(seq(2)));
    let third = aggregator
        .process(&batch(&records_from(&records, &seq(2))))
        .await;
    assert_eq!(third.retry_from, None);
    assert_same(&snapshot(&store), &expected);
}

#[tokio::test]
async fn a_failed_state_save_is_retried_and_ends_exact() {
    let records = workload();
    let expected = reference(&records).await;
    let store = MemoryStore::new();
    let failing = FailingStore::new(store.clone());
    failing.fail_state_saves(1);
    let aggregator = aggregator(failing.clone());

    let outcome = aggregator.process(&batch(&records)).await;
    // Every bucket was written, but the counters' new state was not: back from its first change.
    assert_eq!(outcome.retry_from, Some(seq(1)));
    assert!(store.state_keys().is_empty());
    let redelivery = aggregator.process(&batch(&records)).await;
    assert_eq!(redelivery.retry_from, None);
    assert_same(&snapshot(&store), &expected);
    assert!(!store.state_keys().is_empty());
}

#[tokio::test]
async fn overlapping_batches_count_the_overlap_once() {
    let records = workload();
    let expected = reference(&records).await;
    let store = MemoryStore::new();
    let aggregator = aggregator(store.clone());

    let first = aggregator.process(&batch(&records[0..10])).await; // records 1-10
    let second = aggregator.process(&batch(&records[4..15])).await; // records 5-15
    assert_eq!((first.retry_from, second.retry_from), (None, None));
    assert_same(&snapshot(&store), &expected);
}

#[tokio::test]
async fn poison_record_is_reported_and_the_rest_applied() {
    let records = workload();
    let mut with_poison = records.clone();
    let mut garbage = records[6].clone();
    garbage.sequence_number = seq(100); // after record 15
    garbage.data = Bytes::from_static(b"\x00\xffnot a record at all");
    with_poison.push(garbage);
    let expected = reference(&records).await;

    let store = MemoryStore::new();
    let outcome: BatchOutcome = aggregator(store.clone())
        .process(&batch(&with_poison))
        .await;
    assert_eq!(outcome.retry_from, None, "poison must not block the shard");
    assert_eq!(outcome.poison.len(), 1);
    assert_eq!(outcome.poison[0].0, seq(100));
    assert!(!outcome.poison[0].1.is_empty(), "the reason is reported");
    assert_same(&snapshot(&store), &expected);
}

#[tokio::test]
async fn random_failures_with_lambda_style_redelivery_converge_to_exact_buckets() {
    let records = workload();
    let expected = reference(&records).await;
    for seed in 0..50u64 {
        let store = MemoryStore::new();
        let failing = FailingStore::new(store.clone());
        failing.fail_randomly(0.15, seed);
        let aggregator = aggregator(failing.clone());
        let mut rng = StdRng::seed_from_u64(seed);
        let mut position = 0usize;
        let mut attempts = 0;
        while position < records.len() {
            attempts += 1;
            assert!(attempts < 500, "seed {seed}: no progress");
            let size = rng.random_range(1..=8);
            let end = (position + size).min(records.len());
            let outcome = aggregator.process(&batch(&records[position..end])).await;
            // A timed-out invocation is delivered again whole, whatever it managed to do.
            if rng.random_bool(0.1) {
                continue;
            }
            position = match outcome.retry_from {
                Some(from) => records
                    .iter()
                    .position(|r| r.sequence_number == from)
                    .unwrap(),
                None => end,
            };
        }
        failing.stop_failing();
        assert_same(&snapshot(&store), &expected);
    }
}
