//! Builders of points, records and batches for the aggregation tests.

use crate::aggregate::BucketStats;
use crate::model::{
    Attributes, MetricPoint, PointData, Resolution, SeriesKey, SourceId, Temporality,
};
use crate::ports::{BucketKey, SequenceNumber, ShardBatch, StreamRecord};
use crate::record;

pub const SEC: u64 = 1_000_000_000;
pub const SHARD: &str = "shardId-000000000000";
/// An hour boundary (so also a 5m and 1m boundary): every test point lives shortly after it.
pub const T0: u64 = 1_699_999_200;
/// The aggregator's clock in tests: an hour after `T0`, well inside every retention.
pub const NOW: i64 = T0 as i64 + 3600;

pub fn series(service: &str, metric: &str) -> SeriesKey {
    let mut attributes = Attributes::new();
    attributes.insert("route".into(), "/checkout".into());
    SeriesKey {
        service: service.into(),
        metric: metric.into(),
        attributes,
    }
}

pub fn point(metric: &str, source: u64, time_s: u64, data: PointData) -> MetricPoint {
    MetricPoint {
        series: series("api", metric).into(),
        source: SourceId(source),
        unit: "1".into(),
        time_unix_nano: time_s * SEC,
        data,
    }
}

pub fn gauge(metric: &str, time_s: u64, value: f64) -> MetricPoint {
    point(metric, 1, time_s, PointData::Gauge(value))
}

pub fn cumulative_sum(
    metric: &str,
    source: u64,
    start_s: u64,
    time_s: u64,
    value: f64,
    monotonic: bool,
) -> MetricPoint {
    point(
        metric,
        source,
        time_s,
        PointData::Sum {
            value,
            monotonic,
            temporality: Temporality::Cumulative {
                start_time_unix_nano: start_s * SEC,
            },
        },
    )
}

pub fn delta_sum(metric: &str, time_s: u64, value: f64) -> MetricPoint {
    point(
        metric,
        1,
        time_s,
        PointData::Sum {
            value,
            monotonic: true,
            temporality: Temporality::Delta,
        },
    )
}

pub fn seq(n: u128) -> SequenceNumber {
    // Real sequence numbers are ~56 digits; keep ours long too so ordering by length matters.
    SequenceNumber::parse(&format!(
        "4959033827149025660855969253836157109592157598913{n:08}"
    ))
    .unwrap()
}

/// One stream record holding `points` (all of one service), through the real codec.
pub fn record(n: u128, points: &[MetricPoint]) -> StreamRecord {
    let mut entries = record::encode_metrics(points);
    assert_eq!(entries.len(), 1, "test records hold one service");
    let entry = entries.remove(0);
    StreamRecord {
        shard_id: SHARD.into(),
        sequence_number: seq(n),
        partition_key: entry.partition_key,
        data: entry.data,
        arrival_unix_ms: NOW * 1000,
    }
}

pub fn batch(records: &[StreamRecord]) -> ShardBatch {
    ShardBatch {
        shard_id: SHARD.into(),
        records: records.to_vec(),
    }
}

pub fn bucket_key(metric: &str, resolution: Resolution, time_s: u64) -> BucketKey {
    BucketKey {
        series: series("api", metric).id(),
        resolution,
        start_unix_s: resolution.bucket_start(time_s as i64),
    }
}

/// Everything a bucket holds, in a comparable form (the sketch through its canonical bytes).
pub fn fingerprint(stats: &BucketStats) -> (u64, u64, Option<u64>, Option<u64>, Vec<u8>) {
    (
        stats.count,
        stats.sum.to_bits(),
        stats.min.map(f64::to_bits),
        stats.max.map(f64::to_bits),
        stats.sketch.to_bytes(),
    )
}

/// Writes one 1m bucket per series of `metas` and minute of `0..minutes` from `t0`, each of
/// `observations` latencies between 5 and 405 ms (varying by series and minute), in one
/// `apply_buckets` per minute: the data of the expression and export benches.
pub async fn fill_latency_minutes(
    store: &dyn crate::ports::BucketStore,
    metas: &[crate::model::SeriesMeta],
    t0: i64,
    minutes: i64,
    observations: usize,
) -> Result<(), crate::ports::StoreError> {
    let mut seq = 0u128;
    for m in 0..minutes {
        let deltas: Vec<crate::ports::BucketDelta> = metas
            .iter()
            .enumerate()
            .map(|(i, meta)| {
                let mut stats = BucketStats::new();
                for k in 0..observations {
                    stats.observe(5.0 + ((i * 7 + k * 13 + m as usize) % 400) as f64);
                }
                seq += 1;
                crate::ports::BucketDelta {
                    key: BucketKey {
                        series: meta.id,
                        resolution: Resolution::OneMinute,
                        start_unix_s: t0 + m * 60,
                    },
                    shard_id: "shard-0".into(),
                    first_seq: SequenceNumber::from_u128(seq),
                    last_seq: SequenceNumber::from_u128(seq),
                    stats,
                    expires_at_unix_s: i64::MAX,
                }
            })
            .collect();
        for outcome in store.apply_buckets(&deltas).await {
            outcome?;
        }
    }
    Ok(())
}
