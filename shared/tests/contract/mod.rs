//! Port contract suites, run against every adapter (embedded here, AWS emulators elsewhere) so the
//! adapters cannot drift apart.
//!
//! Rules that let them run against a shared, long-lived stream or table: every key, series, service
//! and connection id carries a random suffix; nothing assumes the stream, store or table starts empty;
//! assertions look only at what this run wrote (or at properties such as sortedness that hold
//! whatever else is there); expiries are far in the future so a real TTL cannot interfere.
#![allow(dead_code)] // Each test binary uses the suites of the adapters it has.

pub mod admission;
pub mod alerts;
pub mod daily;
pub mod registry;
pub mod rules;
pub mod traces;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use flowscope_core::aggregate::stats::BucketStats;
use flowscope_core::model::{MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{
    ApplyOutcome, BucketDelta, BucketKey, ConnectionStore, MetricStore, SequenceNumber,
    StreamEntry, StreamError, StreamRecord, StreamSink, StreamSource, Subscription,
};

/// Kinesis (and the embedded stream) refuse records above this many bytes (partition key + data).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// How often an empty read is retried before a record is declared missing. A real stream may return
/// empty pages before it reaches fresh records; the embedded one never needs a retry.
const READ_ROUNDS: usize = 30;
const READ_RETRY_DELAY: Duration = Duration::from_millis(200);

/// A name no other run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

pub fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Far enough ahead that no TTL sweeper touches what a suite writes while it runs.
fn far_future() -> i64 {
    now_unix_s() + 7 * 86_400
}

pub fn seq(digits: &str) -> SequenceNumber {
    SequenceNumber::parse(digits).expect("test sequence numbers are decimal")
}

pub fn stats_of(values: &[f64]) -> BucketStats {
    let mut stats = BucketStats::new();
    for v in values {
        stats.observe(*v);
    }
    stats
}

fn entry(key: &str, data: impl Into<Bytes>) -> StreamEntry {
    StreamEntry {
        partition_key: key.to_string(),
        data: data.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// Everything a [`StreamSink`] + [`StreamSource`] must do.
pub async fn stream_contract<T: StreamSink + StreamSource>(stream: &T) {
    stream_keeps_order_per_partition_key(stream).await;
    stream_reads_strictly_after_a_sequence_number(stream).await;
    stream_refuses_oversized_records(stream).await;
}

/// Reads every shard from its oldest retained record until `expected` records of each key in `keys`
/// have been seen, and returns them per key in the order the stream returned them. Asserts on the way
/// that every page is in rising sequence order and continues after the previous one.
pub async fn read_keys<T: StreamSource>(
    stream: &T,
    keys: &[&str],
    expected: usize,
) -> BTreeMap<String, Vec<StreamRecord>> {
    let shards = stream.shard_ids().await.expect("shard ids");
    assert!(!shards.is_empty(), "a stream has at least one shard");
    let mut cursors: Vec<Option<SequenceNumber>> = vec![None; shards.len()];
    let mut found: BTreeMap<String, Vec<StreamRecord>> =
        keys.iter().map(|k| (k.to_string(), Vec::new())).collect();
    for _round in 0..READ_ROUNDS {
        for (shard, cursor) in shards.iter().zip(cursors.iter_mut()) {
            loop {
                let page = stream
                    .read(shard, cursor.as_ref(), 500)
                    .await
                    .expect("read");
                if page.is_empty() {
                    break;
                }
                for record in &page {
                    assert_eq!(&record.shard_id, shard, "a record reports its own shard");
                    if let Some(previous) = cursor.as_ref() {
                        assert!(
                            &record.sequence_number > previous,
                            "sequence numbers rise within shard {shard}: {} after {}",
                            record.sequence_number,
                            previous
                        );
                    }
                    *cursor = Some(record.sequence_number.clone());
                    if let Some(list) = found.get_mut(&record.partition_key) {
                        list.push(record.clone());
                    }
                }
            }
        }
        if found.values().all(|records| records.len() >= expected) {
            return found;
        }
        tokio::time::sleep(READ_RETRY_DELAY).await;
    }
    found
}

/// Records with one partition key come back on one shard, in the order they were put, with rising
/// sequence numbers, across separate `put_all` calls and interleaved with other keys.
pub async fn stream_keeps_order_per_partition_key<T: StreamSink + StreamSource>(stream: &T) {
    let first = unique("order-a");
    let second = unique("order-b");
    // One call mixing both keys, then a second call for each.
    let mut batch = Vec::new();
    for i in 0..5 {
        batch.push(entry(&first, format!("{first}/{i}")));
        batch.push(entry(&second, format!("{second}/{i}")));
    }
    stream.put_all(batch).await.expect("first put_all");
    let rest: Vec<StreamEntry> = (5..10)
        .map(|i| entry(&first, format!("{first}/{i}")))
        .chain((5..10).map(|i| entry(&second, format!("{second}/{i}"))))
        .collect();
    stream.put_all(rest).await.expect("second put_all");
    let started_ms = (now_unix_s() - 3600) * 1000;

    let found = read_keys(stream, &[&first, &second], 10).await;
    for key in [&first, &second] {
        let records = &found[key.as_str()];
        let data: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8(r.data.to_vec()).expect("utf-8 data"))
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("{key}/{i}")).collect();
        assert_eq!(
            data, expected,
            "records of {key} come back once each, in put order"
        );
        let shard = &records[0].shard_id;
        assert!(
            records.iter().all(|r| &r.shard_id == shard),
            "one partition key stays on one shard"
        );
        assert!(
            records
                .windows(2)
                .all(|w| w[0].sequence_number < w[1].sequence_number),
            "sequence numbers rise in put order"
        );
        assert!(
            records
                .iter()
                .all(|r| r.partition_key == *key && r.arrival_unix_ms > started_ms),
            "partition key and arrival time are reported"
        );
    }
}

/// `read(after = s)` returns only records above `s`, starting with the very next one, and at most
/// `max` of them.
pub async fn stream_reads_strictly_after_a_sequence_number<T: StreamSink + StreamSource>(
    stream: &T,
) {
    let key = unique("after");
    let entries: Vec<StreamEntry> = (0..6).map(|i| entry(&key, format!("{i}"))).collect();
    stream.put_all(entries).await.expect("put_all");
    let records = read_keys(stream, &[&key], 6).await.remove(&key).unwrap();
    assert_eq!(records.len(), 6, "all six records are readable");
    let shard = &records[0].shard_id;

    let pivot = &records[2].sequence_number;
    let page = stream.read(shard, Some(pivot), 2).await.expect("read");
    assert!(!page.is_empty(), "records exist after the pivot");
    assert!(page.len() <= 2, "read honours max");
    assert!(
        page.iter().all(|r| &r.sequence_number > pivot),
        "read returns only records after the given sequence number"
    );
    assert!(
        page[0].sequence_number <= records[3].sequence_number,
        "read skips nothing: the record right after the pivot comes first"
    );

    let last = &records[5].sequence_number;
    let mut after_last = Vec::new();
    let mut cursor = Some(last.clone());
    loop {
        let page = stream
            .read(shard, cursor.as_ref(), 500)
            .await
            .expect("read");
        let Some(tail) = page.last() else { break };
        cursor = Some(tail.sequence_number.clone());
        after_last.extend(page);
    }
    assert!(
        after_last.iter().all(|r| r.partition_key != key),
        "nothing of this key follows its last record"
    );
}

/// A record over the per-record limit is refused as `RecordTooLarge`; one at the limit is not.
pub async fn stream_refuses_oversized_records<T: StreamSink + StreamSource>(stream: &T) {
    let key = unique("large");
    let too_big = entry(&key, vec![b'x'; MAX_RECORD_BYTES - key.len() + 1]);
    match stream.put_all(vec![too_big]).await {
        Err(StreamError::RecordTooLarge { size, limit }) => {
            assert!(size > limit, "size {size} is reported above limit {limit}");
            assert_eq!(limit, MAX_RECORD_BYTES);
        }
        other => panic!("an oversized record must be refused, got {other:?}"),
    }
    let at_limit = vec![b'y'; MAX_RECORD_BYTES - key.len()];
    stream
        .put_all(vec![entry(&key, at_limit.clone())])
        .await
        .expect("a record of exactly the limit is accepted");
    let records = read_keys(stream, &[&key], 1).await.remove(&key).unwrap();
    assert_eq!(records.len(), 1, "only the accepted record was written");
    assert_eq!(records[0].data.len(), at_limit.len());
    assert!(records[0].data.iter().all(|b| *b == b'y'));
}

// ---------------------------------------------------------------------------------------------
// Metric store
// ---------------------------------------------------------------------------------------------

/// Everything a [`MetricStore`] must do.
pub async fn store_contract<S: MetricStore>(store: &S) {
    store_watermarks_make_apply_idempotent(store).await;
    store_concurrent_applies_lose_nothing(store).await;
    store_queries_ranges_in_order(store).await;
    store_registry_lists_sorted_and_last_seen_only_moves_forward(store).await;
    store_state_round_trips(store).await;
}

pub fn fresh_series(service: &str, metric: &str) -> SeriesKey {
    let mut attributes = BTreeMap::new();
    attributes.insert("run".to_string(), unique("r"));
    SeriesKey {
        service: service.to_string(),
        metric: metric.to_string(),
        attributes,
    }
}

pub fn delta(
    key: BucketKey,
    shard: &str,
    first: &str,
    last: &str,
    values: &[f64],
    expires_at_unix_s: i64,
) -> BucketDelta {
    BucketDelta {
        key,
        shard_id: shard.to_string(),
        first_seq: seq(first),
        last_seq: seq(last),
        stats: stats_of(values),
        expires_at_unix_s,
    }
}

fn applied(outcome: ApplyOutcome) -> BucketStats {
    match outcome {
        ApplyOutcome::Applied(stats) => stats,
        ApplyOutcome::AlreadyApplied { watermark } => {
            panic!("expected the delta to apply, but the watermark is already {watermark}")
        }
    }
}

fn already_applied(outcome: ApplyOutcome) -> SequenceNumber {
    match outcome {
        ApplyOutcome::AlreadyApplied { watermark } => watermark,
        ApplyOutcome::Applied(stats) => {
            panic!(
                "a replayed delta must not apply, but it did (count now {})",
                stats.count
            )
        }
    }
}

fn assert_stats(stats: &BucketStats, count: u64, sum: f64, min: f64, max: f64) {
    assert_eq!(stats.count, count, "count");
    assert_eq!(stats.sum, sum, "sum");
    assert_eq!(stats.min, Some(min), "min");
    assert_eq!(stats.max, Some(max), "max");
    assert_eq!(
        stats.sketch.count(),
        count,
        "the sketch holds every observation"
    );
}

/// The per-shard watermark: a first write applies, a replay (or overlap) returns the watermark and
/// changes nothing, a later batch applies, other shards have their own watermark, and sequence
/// numbers compare as numbers (also beyond u128), not as strings.
pub async fn store_watermarks_make_apply_idempotent<S: MetricStore>(store: &S) {
    let series = fresh_series(&unique("svc"), "latency").id();
    let key = BucketKey {
        series,
        resolution: Resolution::OneMinute,
        start_unix_s: Resolution::OneMinute.bucket_start(now_unix_s()),
    };
    let shard = "shardId-000000000000";
    let expires = far_future();

    let first = delta(key, shard, "90", "99", &[1.0, 2.0, 3.0], expires);
    assert_stats(
        &applied(store.apply_bucket(&first).await.unwrap()),
        3,
        6.0,
        1.0,
        3.0,
    );

    let replay = store.apply_bucket(&first).await.unwrap();
    assert_eq!(
        already_applied(replay),
        seq("99"),
        "a replay reports the watermark"
    );
    let overlap = delta(key, shard, "95", "120", &[1000.0], expires);
    assert_eq!(
        already_applied(store.apply_bucket(&overlap).await.unwrap()),
        seq("99"),
        "a batch starting at or below the watermark does not apply"
    );

    // "100" < "99" as strings: the store must compare numerically.
    let later = delta(key, shard, "100", "150", &[10.0, 20.0], expires);
    assert_stats(
        &applied(store.apply_bucket(&later).await.unwrap()),
        5,
        36.0,
        1.0,
        20.0,
    );

    let other_shard = delta(key, "shardId-000000000001", "1", "1", &[0.5], expires);
    assert_stats(
        &applied(store.apply_bucket(&other_shard).await.unwrap()),
        6,
        36.5,
        0.5,
        20.0,
    );

    // Real Kinesis sequence numbers are 56 digits, beyond u128.
    let kinesis_first = "49590338271490256608559692538361571095921575989136588898";
    let kinesis_last = "49590338271490256608559692540925702759324208523137515618";
    let big = delta(key, shard, kinesis_first, kinesis_last, &[40.0], expires);
    assert_stats(
        &applied(store.apply_bucket(&big).await.unwrap()),
        7,
        76.5,
        0.5,
        40.0,
    );
    assert_eq!(
        already_applied(store.apply_bucket(&big).await.unwrap()),
        seq(kinesis_last)
    );
    let below_big = delta(key, shard, "151", "160", &[5.0], expires);
    assert_eq!(
        already_applied(store.apply_bucket(&below_big).await.unwrap()),
        seq(kinesis_last),
        "a smaller number after a big one is below the watermark"
    );

    // The merged sketch is exactly the sketch of all observations.
    let everything = stats_of(&[1.0, 2.0, 3.0, 10.0, 20.0, 0.5, 40.0]);
    let stored = store
        .query_buckets(
            series,
            key.resolution,
            key.start_unix_s,
            key.start_unix_s + 60,
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "one bucket item");
    assert_eq!(stored[0].0, key.start_unix_s);
    assert_stats(&stored[0].1, 7, 76.5, 0.5, 40.0);
    for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
        assert_eq!(
            stored[0].1.quantile(q),
            everything.quantile(q),
            "quantile {q} of the merged bucket"
        );
    }
}

/// Concurrent writers to one bucket (the aggregator writes with bounded concurrency, and several
/// shards can feed one bucket) neither lose nor double an update: from distinct shards every delta
/// applies; from one shard, exactly the deltas reported `Applied` are in the bucket.
pub async fn store_concurrent_applies_lose_nothing<S: MetricStore>(store: &S) {
    let expires = far_future();
    let bucket = |series: SeriesKey| BucketKey {
        series: series.id(),
        resolution: Resolution::OneMinute,
        start_unix_s: Resolution::OneMinute.bucket_start(now_unix_s()),
    };
    let writers = 16u32;

    let many_shards = bucket(fresh_series(&unique("svc"), "concurrent"));
    let deltas: Vec<BucketDelta> = (1..=writers)
        .map(|i| {
            let n = i.to_string();
            delta(
                many_shards,
                &format!("shard-{i}"),
                &n,
                &n,
                &[f64::from(i)],
                expires,
            )
        })
        .collect();
    let outcomes = futures::future::join_all(deltas.iter().map(|d| store.apply_bucket(d))).await;
    for outcome in outcomes {
        applied(outcome.expect("concurrent apply"));
    }
    let stored = store
        .query_buckets(many_shards.series, many_shards.resolution, 0, i64::MAX)
        .await
        .unwrap();
    let total: f64 = (1..=writers).map(f64::from).sum();
    assert_stats(
        &stored[0].1,
        u64::from(writers),
        total,
        1.0,
        f64::from(writers),
    );

    let one_shard = bucket(fresh_series(&unique("svc"), "concurrent"));
    let deltas: Vec<BucketDelta> = (1..=writers)
        .map(|i| {
            let n = i.to_string();
            delta(one_shard, "shard-0", &n, &n, &[f64::from(i)], expires)
        })
        .collect();
    let outcomes = futures::future::join_all(deltas.iter().map(|d| store.apply_bucket(d))).await;
    let mut applied_values = Vec::new();
    for (i, outcome) in (1..=writers).zip(outcomes) {
        match outcome.expect("concurrent apply") {
            ApplyOutcome::Applied(_) => applied_values.push(f64::from(i)),
            ApplyOutcome::AlreadyApplied { watermark } => assert!(
                watermark >= seq(&i.to_string()),
                "refused only because a delta at or above it applied first"
            ),
        }
    }
    let stored = store
        .query_buckets(one_shard.series, one_shard.resolution, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(stored[0].1.count, applied_values.len() as u64);
    assert_eq!(stored[0].1.sum, applied_values.iter().sum::<f64>());
}

/// `from <= start < to`, oldest first, one series and resolution only.
pub async fn store_queries_ranges_in_order<S: MetricStore>(store: &S) {
    let series = fresh_series(&unique("svc"), "requests").id();
    let neighbour = fresh_series(&unique("svc"), "requests").id();
    let t0 = Resolution::OneMinute.bucket_start(now_unix_s()) - 600;
    let expires = far_future();
    let minute = |start: i64| BucketKey {
        series,
        resolution: Resolution::OneMinute,
        start_unix_s: start,
    };
    // Written out of order; bucket i holds i + 1 observations.
    for (i, offset) in [(2u64, 120i64), (0, 0), (3, 180), (1, 60)] {
        let values: Vec<f64> = (0..=i).map(|v| v as f64).collect();
        store
            .apply_bucket(&delta(minute(t0 + offset), "s", "1", "1", &values, expires))
            .await
            .unwrap();
    }
    let five = BucketKey {
        series,
        resolution: Resolution::FiveMinutes,
        start_unix_s: Resolution::FiveMinutes.bucket_start(t0),
    };
    store
        .apply_bucket(&delta(five, "s", "1", "1", &[7.0; 9], expires))
        .await
        .unwrap();
    store
        .apply_bucket(&delta(
            BucketKey {
                series: neighbour,
                ..minute(t0 + 60)
            },
            "s",
            "1",
            "1",
            &[1.0; 50],
            expires,
        ))
        .await
        .unwrap();

    let counts = |rows: Vec<(i64, BucketStats)>| -> Vec<(i64, u64)> {
        rows.into_iter()
            .map(|(start, s)| (start, s.count))
            .collect()
    };
    let q = |from: i64, to: i64| store.query_buckets(series, Resolution::OneMinute, from, to);
    assert_eq!(
        counts(q(t0 + 60, t0 + 180).await.unwrap()),
        vec![(t0 + 60, 2), (t0 + 120, 3)],
        "from is inclusive, to is exclusive"
    );
    assert_eq!(
        counts(q(t0 - 3600, t0 + 3600).await.unwrap()),
        vec![(t0, 1), (t0 + 60, 2), (t0 + 120, 3), (t0 + 180, 4)],
        "oldest first, only this series and resolution"
    );
    assert!(
        q(t0 + 1, t0 + 60).await.unwrap().is_empty(),
        "no start in [t0+1, t0+60)"
    );
    assert!(
        q(t0 + 60, t0 + 60).await.unwrap().is_empty(),
        "an empty range is empty"
    );
    assert_eq!(
        counts(
            store
                .query_buckets(series, Resolution::FiveMinutes, t0 - 3600, t0 + 3600)
                .await
                .unwrap()
        ),
        vec![(five.start_unix_s, 9)]
    );
    assert!(
        store
            .query_buckets(
                fresh_series("nobody", "nothing").id(),
                Resolution::OneMinute,
                t0 - 3600,
                t0 + 3600
            )
            .await
            .unwrap()
            .is_empty(),
        "an unknown series has no buckets"
    );
}

fn meta(key: SeriesKey, kind: MetricKind, unit: &str, last_seen: i64) -> SeriesMeta {
    SeriesMeta {
        id: key.id(),
        key,
        kind,
        unit: unit.to_string(),
        last_seen_unix_s: last_seen,
    }
}

/// Services sorted, a service's series sorted by metric then id (and only that service's, even when
/// another service's name extends it), lookups by id, and `last_seen` never going back.
pub async fn store_registry_lists_sorted_and_last_seen_only_moves_forward<S: MetricStore>(
    store: &S,
) {
    let service = unique("svc");
    let longer = format!("{service}x");
    let t = now_unix_s();
    let requests = meta(
        fresh_series(&service, "requests"),
        MetricKind::Counter,
        "1",
        t,
    );
    let latency_a = meta(
        fresh_series(&service, "latency"),
        MetricKind::Histogram,
        "ms",
        t,
    );
    let latency_b = meta(
        fresh_series(&service, "latency"),
        MetricKind::Histogram,
        "ms",
        t,
    );
    let elsewhere = meta(fresh_series(&longer, "latency"), MetricKind::Gauge, "", t);
    store
        .upsert_series(&[requests.clone(), latency_a.clone()])
        .await
        .unwrap();
    store
        .upsert_series(&[latency_b.clone(), elsewhere.clone()])
        .await
        .unwrap();

    let services = store.list_services().await.unwrap();
    assert!(services.contains(&service) && services.contains(&longer));
    assert!(
        services.windows(2).all(|w| w[0] < w[1]),
        "services are sorted and distinct"
    );

    let mut expected = vec![requests.clone(), latency_a.clone(), latency_b.clone()];
    expected.sort_by(|a, b| (&a.key.metric, a.id).cmp(&(&b.key.metric, b.id)));
    assert_eq!(store.list_series(&service).await.unwrap(), expected);
    assert_eq!(store.list_series(&longer).await.unwrap(), vec![elsewhere]);
    assert!(store.list_series(&unique("svc")).await.unwrap().is_empty());

    assert_eq!(
        store.get_series(latency_a.id).await.unwrap(),
        Some(latency_a.clone())
    );
    assert_eq!(
        store
            .get_series(fresh_series(&service, "unknown").id())
            .await
            .unwrap(),
        None
    );

    let older = SeriesMeta {
        last_seen_unix_s: t - 100,
        ..latency_a.clone()
    };
    store.upsert_series(&[older]).await.unwrap();
    let seen = |m: Option<SeriesMeta>| m.expect("registered").last_seen_unix_s;
    assert_eq!(
        seen(store.get_series(latency_a.id).await.unwrap()),
        t,
        "an older last_seen does not move it back"
    );
    let newer = SeriesMeta {
        last_seen_unix_s: t + 100,
        ..latency_a.clone()
    };
    store
        .upsert_series(std::slice::from_ref(&newer))
        .await
        .unwrap();
    assert_eq!(seen(store.get_series(latency_a.id).await.unwrap()), t + 100);
    let listed = store.list_series(&service).await.unwrap();
    assert_eq!(
        listed.iter().filter(|m| m.id == latency_a.id).count(),
        1,
        "a refreshed series is listed once"
    );
    assert!(listed.contains(&newer));
}

/// Saved state comes back byte for byte, overwrites replace, missing keys are absent.
pub async fn store_state_round_trips<S: MetricStore>(store: &S) {
    let one = unique("state");
    let two = unique("state");
    let missing = unique("state");
    let expires = far_future();
    store
        .save_state(&[
            (one.clone(), Bytes::from_static(b"\x00one\xff"), expires),
            (two.clone(), Bytes::from_static(b"two"), expires),
        ])
        .await
        .unwrap();
    let load = |keys: Vec<String>| async move {
        let mut got = store.load_state(&keys).await.unwrap();
        got.sort();
        got
    };
    let mut expected = vec![
        (one.clone(), Bytes::from_static(b"\x00one\xff")),
        (two.clone(), Bytes::from_static(b"two")),
    ];
    expected.sort();
    assert_eq!(
        load(vec![one.clone(), missing.clone(), two.clone()]).await,
        expected
    );
    store
        .save_state(&[(one.clone(), Bytes::from_static(b"uno"), expires)])
        .await
        .unwrap();
    assert_eq!(
        load(vec![one.clone()]).await,
        vec![(one.clone(), Bytes::from_static(b"uno"))]
    );
    assert!(load(vec![]).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// Everything a [`ConnectionStore`] must do.
pub async fn connections_contract<C: ConnectionStore>(connections: &C) {
    let api = unique("api");
    let web = unique("web");
    let expires = now_unix_s() + 7200;
    let [only_api, everything, only_web, both] =
        ["only-api", "all", "only-web", "both"].map(unique);
    let api_subscription = Subscription {
        services: vec![api.clone()],
        metrics: vec![],
    };
    let both_subscription = Subscription {
        services: vec![web.clone(), api.clone()],
        metrics: vec!["latency".into()],
    };
    for (id, subscription) in [
        (&only_api, api_subscription.clone()),
        (&everything, Subscription::default()),
        (
            &only_web,
            Subscription {
                services: vec![web.clone()],
                metrics: vec![],
            },
        ),
        (&both, both_subscription.clone()),
    ] {
        connections
            .put_connection(id, "contract-test", expires)
            .await
            .unwrap();
        connections
            .set_subscription(id, &subscription, expires)
            .await
            .unwrap();
    }

    let ids = |found: Vec<(String, Subscription)>| -> Vec<String> {
        found.into_iter().map(|(id, _)| id).collect()
    };
    let api_subscribers = connections.subscribers(&api).await.unwrap();
    assert!(
        api_subscribers.contains(&(only_api.clone(), api_subscription.clone())),
        "a service subscriber is found, with its subscription"
    );
    assert!(
        api_subscribers.contains(&(both.clone(), both_subscription.clone())),
        "the whole subscription comes back so the caller can filter by metric"
    );
    assert!(
        api_subscribers.contains(&(everything.clone(), Subscription::default())),
        "a subscriber to everything is found for any service"
    );
    let api_ids = ids(api_subscribers);
    assert!(
        !api_ids.contains(&only_web),
        "another service's subscriber is not"
    );
    assert_eq!(
        api_ids.iter().filter(|id| **id == both).count(),
        1,
        "a connection is returned once per service"
    );
    let web_ids = ids(connections.subscribers(&web).await.unwrap());
    for id in [&everything, &only_web, &both] {
        assert!(web_ids.contains(id));
    }
    assert!(!web_ids.contains(&only_api));

    // Resubscribing moves the connection to its new topics.
    connections
        .set_subscription(
            &only_api,
            &Subscription {
                services: vec![web.clone()],
                metrics: vec![],
            },
            expires,
        )
        .await
        .unwrap();
    assert!(!ids(connections.subscribers(&api).await.unwrap()).contains(&only_api));
    assert!(ids(connections.subscribers(&web).await.unwrap()).contains(&only_api));

    // Deleting removes the connection from every topic; deleting again or an unknown id is fine.
    connections.delete_connection(&only_api).await.unwrap();
    connections.delete_connection(&everything).await.unwrap();
    connections.delete_connection(&only_api).await.unwrap();
    connections
        .delete_connection(&unique("never-connected"))
        .await
        .unwrap();
    let web_ids = ids(connections.subscribers(&web).await.unwrap());
    assert!(!web_ids.contains(&only_api) && !web_ids.contains(&everything));
    assert!(!ids(connections.subscribers(&api).await.unwrap()).contains(&everything));
    assert!(web_ids.contains(&only_web), "other connections stay");

    // An expired subscription is not a subscriber, even before a TTL sweeper removes it.
    let stale = unique("stale");
    connections
        .put_connection(&stale, "contract-test", now_unix_s() - 60)
        .await
        .unwrap();
    connections
        .set_subscription(&stale, &api_subscription, now_unix_s() - 60)
        .await
        .unwrap();
    assert!(!ids(connections.subscribers(&api).await.unwrap()).contains(&stale));

    for id in [&only_web, &both, &stale] {
        connections.delete_connection(id).await.unwrap();
    }
    assert!(!ids(connections.subscribers(&web).await.unwrap()).contains(&both));
}
