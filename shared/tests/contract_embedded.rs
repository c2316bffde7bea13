//! The port contracts run against the embedded adapters, plus what only the embedded adapters
//! promise: data survives a restart, a torn tail is recovered, retention deletes only what expired.

mod contract;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use contract::{delta, fresh_series, now_unix_s, stats_of, unique};
use flowscope_core::cardinality::{LimitKind, MetricSeries};
use flowscope_core::embedded::{
    EmbeddedError, EmbeddedStream, MemoryConnections, MemorySeriesAdmission, RedbAlertStore,
    RedbStore, RedbTraceStore, StreamOptions,
};
use flowscope_core::model::{MetricKind, Resolution, Retention, SeriesId, SeriesMeta};
use flowscope_core::ports::{
    ApplyOutcome, BucketKey, BucketStore, Purge, SequenceNumber, SeriesAdmission, SeriesCatalog,
    StateStore, StreamEntry, StreamRecord, StreamSink, StreamSource,
};

fn entries(key: &str, range: std::ops::Range<usize>) -> Vec<StreamEntry> {
    range
        .map(|i| StreamEntry {
            partition_key: key.to_string(),
            data: Bytes::from(format!("{key}/{i}")),
        })
        .collect()
}

async fn read_all(stream: &EmbeddedStream, shard: &str) -> Vec<StreamRecord> {
    let mut out: Vec<StreamRecord> = Vec::new();
    loop {
        let after = out.last().map(|r| r.sequence_number.clone());
        let page = stream.read(shard, after.as_ref(), 100).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn data_of(records: &[StreamRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(segment_files(&path));
        } else if path.extension().is_some_and(|e| e == "log") {
            found.push(path);
        }
    }
    found.sort();
    found
}

// ---- the contracts ----

#[tokio::test]
async fn embedded_stream_passes_the_stream_contract() {
    let dir = tempfile::tempdir().unwrap();
    let stream = EmbeddedStream::open(dir.path(), 4).unwrap();
    contract::stream_contract(&stream).await;
}

#[tokio::test]
async fn redb_store_passes_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("flowscope.redb")).unwrap();
    contract::store_contract(&store).await;
    // The suites must not assume an empty store: a second run over the same data passes too.
    contract::store_contract(&store).await;
}

#[tokio::test]
async fn memory_connections_pass_the_connections_contract() {
    let connections = MemoryConnections::default();
    contract::connections_contract(&connections).await;
    contract::connections_contract(&connections).await;
}

#[tokio::test]
async fn redb_trace_store_passes_the_trace_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbTraceStore::open(dir.path()).unwrap();
    contract::traces::trace_store_contract(&store).await;
    contract::traces::trace_store_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_alert_store_passes_the_alert_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap();
    contract::alerts::alert_store_contract(&store).await;
    contract::alerts::alert_store_contract(&store).await;
}

// ---- embedded only ----

#[tokio::test]
async fn restart_keeps_buckets_series_state_and_stream_records() {
    let dir = tempfile::tempdir().unwrap();
    let stream_dir = dir.path().join("stream");
    let store_path = dir.path().join("flowscope.redb");
    let key = "api";
    let series = fresh_series("api", "latency");
    let bucket = BucketKey {
        series: series.id(),
        resolution: Resolution::OneMinute,
        start_unix_s: Resolution::OneMinute.bucket_start(now_unix_s()),
    };
    let expires = now_unix_s() + 86_400;
    let first_delta = delta(bucket, "shard-0", "1", "10", &[1.0, 2.0, 4.0], expires);
    let meta = SeriesMeta {
        id: series.id(),
        key: series.clone(),
        kind: MetricKind::Histogram,
        unit: "ms".into(),
        last_seen_unix_s: now_unix_s(),
    };

    let (shard, before) = {
        let stream = EmbeddedStream::open(&stream_dir, 4).unwrap();
        stream.put_all(entries(key, 0..10)).await.unwrap();
        let shard = stream.shard_of(key).to_string();
        let records = read_all(&stream, &shard).await;
        stream
            .checkpoint(&shard, &records[4].sequence_number)
            .unwrap();

        let store = RedbStore::open(&store_path).unwrap();
        store.apply_bucket(&first_delta).await.unwrap();
        store
            .upsert_series(std::slice::from_ref(&meta))
            .await
            .unwrap();
        store
            .save_state(&[("cumulative/x".into(), Bytes::from_static(b"state"), expires)])
            .await
            .unwrap();
        (shard, records)
    };

    let stream = EmbeddedStream::open(&stream_dir, 4).unwrap();
    let after = read_all(&stream, &shard).await;
    assert_eq!(
        after, before,
        "every record, sequence number and arrival time survives"
    );
    assert_eq!(
        stream.checkpoint_of(&shard),
        Some(before[4].sequence_number.clone())
    );
    stream.put_all(entries(key, 10..11)).await.unwrap();
    let newest = read_all(&stream, &shard).await.pop().unwrap();
    assert!(
        newest.sequence_number > before[9].sequence_number,
        "sequence numbers keep rising after a restart"
    );
    assert_eq!(&newest.data[..], b"api/10");

    let store = RedbStore::open(&store_path).unwrap();
    let rows = store
        .query_buckets(
            bucket.series,
            bucket.resolution,
            bucket.start_unix_s,
            bucket.start_unix_s + 60,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].1.count, rows[0].1.sum), (3, 7.0));
    assert!(
        matches!(
            store.apply_bucket(&first_delta).await.unwrap(),
            ApplyOutcome::AlreadyApplied { watermark } if watermark == SequenceNumber::from_u128(10)
        ),
        "the watermark survives, so a redelivery after a restart is not counted twice"
    );
    assert_eq!(store.get_series(series.id()).await.unwrap(), Some(meta));
    assert_eq!(
        store.list_services().await.unwrap(),
        vec!["api".to_string()]
    );
    assert_eq!(
        store.load_state(&["cumulative/x".into()]).await.unwrap(),
        vec![("cumulative/x".to_string(), Bytes::from_static(b"state"))]
    );
}

#[tokio::test]
async fn torn_tail_frame_is_truncated_on_open_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let options = StreamOptions {
        shards: 1,
        ..StreamOptions::default()
    };
    let acknowledged = {
        let stream = EmbeddedStream::open_with(dir.path(), options).unwrap();
        stream.put_all(entries("k", 0..3)).await.unwrap();
        read_all(&stream, "shard-0").await
    };
    let segment = segment_files(dir.path()).pop().unwrap();
    let clean_len = std::fs::metadata(&segment).unwrap().len();
    // A crash in the middle of an append: a header announcing 100 bytes, and only 10 of them.
    let mut torn = Vec::new();
    torn.extend_from_slice(&100u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[7u8; 10]);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&torn);
    std::fs::write(&segment, &bytes).unwrap();

    let stream = EmbeddedStream::open_with(dir.path(), options).unwrap();
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        clean_len,
        "the torn frame is cut off"
    );
    assert_eq!(read_all(&stream, "shard-0").await, acknowledged);
    stream.put_all(entries("k", 3..5)).await.unwrap();
    let records = read_all(&stream, "shard-0").await;
    assert_eq!(data_of(&records), ["k/0", "k/1", "k/2", "k/3", "k/4"]);
    assert!(records[3].sequence_number > acknowledged[2].sequence_number);
    drop(stream);

    // A crash can also cut a frame short: the frames before it stay.
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(len - 3).unwrap();
    drop(file);
    let stream = EmbeddedStream::open_with(dir.path(), options).unwrap();
    assert_eq!(
        data_of(&read_all(&stream, "shard-0").await),
        ["k/0", "k/1", "k/2", "k/3"]
    );
    stream.put_all(entries("k", 5..6)).await.unwrap();
    assert_eq!(
        data_of(&read_all(&stream, "shard-0").await),
        ["k/0", "k/1", "k/2", "k/3", "k/5"]
    );
}

#[tokio::test]
async fn purge_deletes_expired_items_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        one_minute_seconds: 60,
        five_minutes_seconds: 300,
        one_hour_seconds: 3600,
        one_day_seconds: 3600,
    };
    let store =
        RedbStore::open_with_retention(&dir.path().join("flowscope.redb"), retention).unwrap();
    let now = now_unix_s();
    let series = fresh_series("svc", "m").id();
    let at = |minutes_ago: i64| BucketKey {
        series,
        resolution: Resolution::OneMinute,
        start_unix_s: Resolution::OneMinute.bucket_start(now) - 60 * minutes_ago,
    };
    // Expired; expires exactly now (kept: expiry means "after this second"); not yet expired;
    // expired once but extended by a later write.
    store
        .apply_bucket(&delta(at(3), "s", "1", "1", &[1.0], now - 1))
        .await
        .unwrap();
    store
        .apply_bucket(&delta(at(2), "s", "1", "1", &[2.0], now))
        .await
        .unwrap();
    store
        .apply_bucket(&delta(at(1), "s", "1", "1", &[3.0], now + 600))
        .await
        .unwrap();
    store
        .apply_bucket(&delta(at(0), "s", "1", "1", &[4.0], now - 1))
        .await
        .unwrap();
    store
        .apply_bucket(&delta(at(0), "s", "2", "2", &[5.0], now + 600))
        .await
        .unwrap();

    let stale_state = unique("state");
    let live_state = unique("state");
    store
        .save_state(&[
            (stale_state.clone(), Bytes::from_static(b"old"), now - 1),
            (live_state.clone(), Bytes::from_static(b"new"), now + 600),
        ])
        .await
        .unwrap();
    assert_eq!(
        store
            .load_state(&[stale_state.clone(), live_state.clone()])
            .await
            .unwrap(),
        vec![(live_state.clone(), Bytes::from_static(b"new"))],
        "expired state reads as absent even before the purge"
    );

    let gone_key = fresh_series("gone", "m");
    let kept_key = fresh_series("kept", "m");
    let meta = |key: &flowscope_core::model::SeriesKey, last_seen| SeriesMeta {
        id: key.id(),
        key: key.clone(),
        kind: MetricKind::Gauge,
        unit: String::new(),
        last_seen_unix_s: last_seen,
    };
    store
        .upsert_series(&[meta(&gone_key, now - 7200), meta(&kept_key, now - 60)])
        .await
        .unwrap();

    let deleted = store.purge_expired(now).await.unwrap();
    assert_eq!(deleted, 3, "one bucket, one state item and one series");
    let starts: Vec<(i64, u64)> = store
        .query_buckets(series, Resolution::OneMinute, now - 3600, now + 3600)
        .await
        .unwrap()
        .into_iter()
        .map(|(start, stats)| (start, stats.count))
        .collect();
    assert_eq!(
        starts,
        vec![
            (at(2).start_unix_s, 1),
            (at(1).start_unix_s, 1),
            (at(0).start_unix_s, 2)
        ]
    );
    assert_eq!(
        store
            .load_state(std::slice::from_ref(&live_state))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.get_series(gone_key.id()).await.unwrap(), None);
    assert!(store.get_series(kept_key.id()).await.unwrap().is_some());
    assert_eq!(
        store.list_services().await.unwrap(),
        vec!["kept".to_string()]
    );
    assert!(store.list_series("gone").await.unwrap().is_empty());
    assert_eq!(
        store.purge_expired(now).await.unwrap(),
        0,
        "nothing left to purge"
    );
    assert_eq!(
        store.purge_expired(now + 3600).await.unwrap(),
        5,
        "an hour later the rest has expired, and the series is idle past the longest retention"
    );
}

#[tokio::test]
async fn checkpoint_survives_restart_and_retention_drops_only_consumed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let small_segments = StreamOptions {
        shards: 1,
        segment_bytes: 100,
        retention: Duration::from_secs(3600),
    };
    let (records, segments_before) = {
        let stream = EmbeddedStream::open_with(dir.path(), small_segments).unwrap();
        for i in 0..40 {
            stream.put_all(entries("k", i..i + 1)).await.unwrap();
        }
        let records = read_all(&stream, "shard-0").await;
        let segments = stream.segment_count("shard-0").unwrap();
        assert!(segments > 5, "small segments roll: {segments}");
        stream
            .checkpoint("shard-0", &records[19].sequence_number)
            .unwrap();
        assert_eq!(
            stream.segment_count("shard-0"),
            Some(segments),
            "segments younger than the retention stay, even when consumed"
        );
        (records, segments)
    };

    let no_retention = StreamOptions {
        retention: Duration::ZERO,
        ..small_segments
    };
    let stream = EmbeddedStream::open_with(dir.path(), no_retention).unwrap();
    assert_eq!(
        stream.checkpoint_of("shard-0"),
        Some(records[19].sequence_number.clone()),
        "the checkpoint survives a restart"
    );
    let deleted = stream.purge_segments(SystemTime::now()).unwrap();
    assert!(deleted > 0, "consumed old segments are deleted");
    assert_eq!(
        stream.segment_count("shard-0"),
        Some(segments_before - deleted)
    );
    assert_eq!(segment_files(dir.path()).len(), segments_before - deleted);
    let left = read_all(&stream, "shard-0").await;
    assert!(
        left[0].sequence_number <= records[20].sequence_number,
        "nothing after the checkpoint is deleted"
    );
    assert!(
        left[0].sequence_number > records[0].sequence_number,
        "something before it is"
    );
    assert_eq!(&left[left.len() - 20..], &records[20..]);

    // Checkpointing further deletes more, never the active segment.
    stream
        .checkpoint("shard-0", &records[39].sequence_number)
        .unwrap();
    assert_eq!(stream.segment_count("shard-0"), Some(1));
    assert!(stream
        .read("shard-0", Some(&records[39].sequence_number), 10)
        .await
        .unwrap()
        .is_empty());
    stream.put_all(entries("k", 40..41)).await.unwrap();
    let newest = read_all(&stream, "shard-0").await.pop().unwrap();
    assert!(newest.sequence_number > records[39].sequence_number);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_never_interleave_frames() {
    let dir = tempfile::tempdir().unwrap();
    let stream = Arc::new(EmbeddedStream::open(dir.path(), 2).unwrap());
    let writers = 8;
    let per_writer = 50;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in 0..per_writer / 5 {
                let batch = (chunk * 5..chunk * 5 + 5)
                    .map(|i| StreamEntry {
                        partition_key: "hot".into(),
                        data: Bytes::from(format!("{writer}:{i}:{}", "p".repeat(100 * writer))),
                    })
                    .collect();
                stream.put_all(batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let records = read_all(&stream, stream.shard_of("hot")).await;
    assert_eq!(
        records.len(),
        writers * per_writer,
        "every record reads back intact"
    );
    let mut next = vec![0usize; writers];
    for record in &records {
        let text = String::from_utf8(record.data.to_vec()).unwrap();
        let mut parts = text.split(':');
        let writer: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(i, next[writer], "each writer's records stay in its order");
        next[writer] += 1;
    }
}

#[tokio::test]
async fn appends_wake_the_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let stream = Arc::new(EmbeddedStream::open(dir.path(), 4).unwrap());
    let notify = stream.notifier();
    let notified = notify.notified();
    let writer = stream.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.put_all(entries("wake", 0..1)).await.unwrap();
    });
    tokio::time::timeout(Duration::from_secs(2), notified)
        .await
        .expect("a consumer waiting on the notifier is woken by an append");
    let shard = stream.shard_of("wake").to_string();
    assert_eq!(data_of(&read_all(&stream, &shard).await), ["wake/0"]);
}

#[tokio::test]
async fn reopening_with_another_shard_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStream::open(dir.path(), 4).unwrap());
    match EmbeddedStream::open(dir.path(), 2) {
        Err(EmbeddedError::ShardCountMismatch {
            existing,
            requested,
            ..
        }) => assert_eq!((existing, requested), (4, 2)),
        Err(other) => panic!("expected a shard count mismatch, got {other}"),
        Ok(_) => panic!("expected a shard count mismatch, but the stream opened"),
    }
    assert!(EmbeddedStream::open(dir.path(), 4).is_ok());
}

/// Throughput of the embedded adapters (fsync-bound). Run with
/// `cargo test -p flowscope-core --test contract_embedded -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints numbers"]
async fn benchmark_embedded_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let stream = EmbeddedStream::open(&dir.path().join("stream"), 4).unwrap();
    let record = Bytes::from(vec![b'r'; 4096]);
    let batches = 200;
    let per_batch = 50;
    let started = Instant::now();
    for b in 0..batches {
        let batch = (0..per_batch)
            .map(|i| StreamEntry {
                partition_key: format!("svc-{}", (b * per_batch + i) % 16),
                data: record.clone(),
            })
            .collect();
        stream.put_all(batch).await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = batches * per_batch;
    println!(
        "stream put_all: {batches} calls x {per_batch} records of 4 KiB in {elapsed:?}: \
         {:.0} records/s, {:.1} MiB/s, {:.2} ms/call",
        total as f64 / elapsed.as_secs_f64(),
        (total * 4096) as f64 / elapsed.as_secs_f64() / (1024.0 * 1024.0),
        elapsed.as_secs_f64() * 1000.0 / batches as f64
    );
    let started = Instant::now();
    let mut read = 0;
    for shard in stream.shard_names() {
        read += read_all(&stream, &shard).await.len();
    }
    let elapsed = started.elapsed();
    assert_eq!(read, total);
    println!(
        "stream read: {read} records in {elapsed:?}: {:.0} records/s",
        read as f64 / elapsed.as_secs_f64()
    );

    let store = Arc::new(RedbStore::open(&dir.path().join("flowscope.redb")).unwrap());
    let series: Vec<_> = (0..50)
        .map(|i| fresh_series("bench", &format!("m{i}")).id())
        .collect();
    let contribution = stats_of(&(1..=100).map(f64::from).collect::<Vec<_>>());
    let rounds = 10u64;
    let started = Instant::now();
    for round in 1..=rounds {
        let mut writes = Vec::new();
        for id in &series {
            let store = store.clone();
            let mut d = delta(
                BucketKey {
                    series: *id,
                    resolution: Resolution::OneMinute,
                    start_unix_s: 0,
                },
                "shard-0",
                &round.to_string(),
                &round.to_string(),
                &[],
                i64::MAX,
            );
            d.stats = contribution.clone();
            writes.push(tokio::spawn(async move { store.apply_bucket(&d).await }));
        }
        for write in writes {
            assert!(matches!(
                write.await.unwrap().unwrap(),
                ApplyOutcome::Applied(_)
            ));
        }
    }
    let elapsed = started.elapsed();
    let applies = rounds as usize * series.len();
    println!(
        "store apply_bucket: {applies} conditional merges (rounds of 50 concurrent calls) \
         in {elapsed:?}: {:.0} applies/s",
        applies as f64 / elapsed.as_secs_f64()
    );
}

// ---- series admission (active-series limits) ----

#[tokio::test]
async fn memory_series_admission_passes_the_admission_contract() {
    let admission = MemorySeriesAdmission::new(contract::admission::CONTRACT_LIMITS);
    contract::admission::admission_contract(&admission).await;
}

#[tokio::test]
async fn memory_series_admission_frees_a_slot_one_window_after_a_series_was_last_seen() {
    let limits = contract::admission::CONTRACT_LIMITS;
    let admission = MemorySeriesAdmission::new(limits);
    let now = now_unix_s();
    let group = |ids: &[u64]| MetricSeries {
        service: "api".into(),
        metric: "latency".into(),
        ids: ids.iter().map(|i| SeriesId(*i)).collect(),
    };
    let verdicts = admission.admit(now, &[group(&[1, 2, 3])]).await.unwrap();
    assert!(verdicts[0].ids.is_empty());
    // Series 1 stays active; 2 and 3 are not seen again.
    admission.admit(now + 30, &[group(&[1])]).await.unwrap();
    let verdicts = admission.admit(now + 59, &[group(&[4])]).await.unwrap();
    assert_eq!(
        verdicts[0].ids,
        vec![SeriesId(4)],
        "2 and 3 are still active"
    );
    let verdicts = admission
        .admit(now + limits.active_window_seconds + 1, &[group(&[4, 5, 6])])
        .await
        .unwrap();
    assert_eq!(
        verdicts[0].ids,
        vec![SeriesId(6)],
        "2 and 3 expired and freed two slots; 1 (seen at +30) still holds one"
    );
}

#[tokio::test]
async fn memory_series_admission_seeded_from_the_registry_does_not_readmit_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("flowscope.redb")).unwrap());
    let limits = contract::admission::CONTRACT_LIMITS;
    let now = now_unix_s();
    let service = unique("svc");
    // The registry a previous run left: 3 active series of one metric, 1 long idle one.
    let registered: Vec<SeriesMeta> = (0..4)
        .map(|i| {
            let mut key = fresh_series(&service, "latency");
            key.attributes.insert("n".into(), i.to_string());
            SeriesMeta {
                id: key.id(),
                key,
                kind: MetricKind::Gauge,
                unit: String::new(),
                last_seen_unix_s: if i == 3 {
                    now - 10 * limits.active_window_seconds
                } else {
                    now - 5
                },
            }
        })
        .collect();
    store.upsert_series(&registered).await.unwrap();

    let admission = MemorySeriesAdmission::new(limits).with_seed(store.clone());
    let group = |ids: Vec<SeriesId>| MetricSeries {
        service: service.clone(),
        metric: "latency".into(),
        ids,
    };
    let known: Vec<SeriesId> = registered[..3].iter().map(|m| m.id).collect();
    let verdicts = admission
        .admit(now, &[group(known.clone()), group(vec![SeriesId(42)])])
        .await
        .unwrap();
    assert!(
        verdicts[0].ids.is_empty(),
        "the registry's active series pass"
    );
    assert_eq!(
        verdicts[1].ids,
        vec![SeriesId(42)],
        "the metric was already at its limit before the restart"
    );
    // The idle one did not take a slot: the service (limit 5) has room for another metric's 2.
    let other = MetricSeries {
        service: service.clone(),
        metric: "errors".into(),
        ids: vec![SeriesId(7), SeriesId(8), SeriesId(9)],
    };
    let verdicts = admission.admit(now, &[other]).await.unwrap();
    assert_eq!(verdicts[0].ids, vec![SeriesId(9)]);
    assert_eq!(verdicts[0].limit, Some(LimitKind::PerService));
}

/// Daily buckets on the redb store: the day is the sum of its hours (see `contract::daily`), and
/// retention is per resolution: purging removes the expired 1m items of that day and keeps its 1h
/// and 1d buckets (1 year by default).
#[tokio::test]
async fn daily_buckets_are_the_sum_of_their_hours_and_outlive_expired_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        one_minute_seconds: 3 * 86_400,
        ..Retention::default()
    };
    let store = Arc::new(
        RedbStore::open_with_retention(&dir.path().join("flowscope.redb"), retention).unwrap(),
    );
    let run =
        contract::daily::daily_buckets_are_the_sum_of_their_hours(store.clone(), retention).await;
    let day = run.day;
    let count = |resolution: Resolution, from: i64, to: i64| {
        let store = store.clone();
        async move {
            store
                .query_buckets(run.series, resolution, from, to)
                .await
                .unwrap()
                .len()
        }
    };
    assert!(count(Resolution::OneMinute, day, day + 86_400).await > 0);
    // Two days later the day's 1m buckets (kept 3 days) have expired; its 1h and 1d have not.
    let later = run.now + 2 * 86_400;
    assert!(store.purge_expired(later).await.unwrap() > 0);
    assert_eq!(
        count(Resolution::OneMinute, day, day + 86_400).await,
        0,
        "expired 1m items are deleted"
    );
    assert_eq!(count(Resolution::OneHour, day, day + 86_400).await, 4);
    assert_eq!(count(Resolution::OneDay, day, day + 86_400).await, 1);
    // And once a year has passed, the 1d bucket goes too.
    store
        .purge_expired(day + 2 * 86_400 + retention.one_day_seconds)
        .await
        .unwrap();
    assert_eq!(count(Resolution::OneDay, day, day + 86_400).await, 0);
}

// ---- service registry ----

#[tokio::test]
async fn redb_registry_store_passes_the_registry_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        flowscope_core::embedded::RedbRegistryStore::open(&dir.path().join("registry.redb"))
            .unwrap();
    contract::registry::registry_store_contract(&store).await;
    // The suite does not assume an empty store.
    contract::registry::registry_store_contract(&store).await;
}

// ---- alert rules put through the API ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_alert_store_passes_the_rule_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.redb");
    let store = RedbAlertStore::open(&path).unwrap();
    contract::rules::rule_store_first_write(&store).await;
    contract::rules::rule_store_contract(&store).await;
    contract::rules::rule_store_contract(&store).await;
    // The version survives a restart.
    let before = flowscope_core::ports::RuleStore::current(&store)
        .await
        .unwrap()
        .unwrap();
    let released = store.released();
    drop(store);
    released.wait().await;
    let store = RedbAlertStore::open(&path).unwrap();
    let after = flowscope_core::ports::RuleStore::current(&store)
        .await
        .unwrap();
    assert_eq!(after, Some(before));
}
