//! Daily (`1d`) buckets on every metric store: the aggregator writes them the same exactly-once way as
//! 1m/5m/1h (one conditional write per bucket and batch, per-shard watermarks), so a day's bucket is
//! the merge of its hours — also after a batch is delivered twice — and each resolution's items carry
//! their own expiry (`start + width + retention`).

use std::sync::Arc;

use flowscope_core::aggregate::{rollup, Aggregator, BucketStats};
use flowscope_core::model::{
    MetricPoint, PointData, Resolution, Retention, SeriesId, SourceId, Temporality,
};
use flowscope_core::ports::{MetricStore, SequenceNumber, ShardBatch, StreamRecord};
use flowscope_core::record;

use super::{fresh_series, now_unix_s, unique};

const SEC: u64 = 1_000_000_000;

/// What [`daily_buckets_are_the_sum_of_their_hours`] wrote, for adapter-specific checks.
pub struct DailyRun {
    pub series: SeriesId,
    /// Start of the UTC day the points fell in.
    pub day: i64,
    /// Start of the first 1m bucket written.
    pub first_minute: i64,
    /// The aggregator's clock for the run.
    pub now: i64,
}

fn sequence(n: u64) -> SequenceNumber {
    SequenceNumber::parse(&format!(
        "49590338271490256608559692538361571095921575989{n:010}"
    ))
    .expect("decimal")
}

/// Points of one series at `hours` of `day`: a gauge reading and a small latency histogram per hour.
fn points_of(series: &flowscope_core::model::SeriesKey, day: i64, hour: i64) -> Vec<MetricPoint> {
    let time = |minute: i64| ((day + hour * 3600 + minute * 60) as u64) * SEC;
    let gauge_series = series.clone();
    let mut histogram_series = series.clone();
    histogram_series.metric.push_str(".duration");
    vec![
        MetricPoint {
            series: gauge_series.clone().into(),
            source: SourceId(1),
            unit: "1".into(),
            time_unix_nano: time(1),
            data: PointData::Gauge(10.0 + hour as f64),
        },
        MetricPoint {
            series: gauge_series.into(),
            source: SourceId(1),
            unit: "1".into(),
            time_unix_nano: time(31),
            data: PointData::Gauge(0.5 * hour as f64),
        },
        MetricPoint {
            series: histogram_series.into(),
            source: SourceId(1),
            unit: "ms".into(),
            time_unix_nano: time(2),
            data: PointData::Histogram {
                temporality: Temporality::Delta,
                count: 6 + hour as u64,
                sum: Some(300.0 + hour as f64),
                min: Some(1.0 + hour as f64),
                max: Some(480.0),
                bounds: vec![5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0],
                bucket_counts: vec![1, 1, 1, 1 + hour as u64, 1, 0, 1, 0],
            },
        },
    ]
}

fn record_of(shard: &str, n: u64, points: &[MetricPoint]) -> StreamRecord {
    let mut entries = record::encode_metrics(points);
    assert_eq!(entries.len(), 1, "one service per record");
    let entry = entries.remove(0);
    StreamRecord {
        shard_id: shard.to_string(),
        sequence_number: sequence(n),
        partition_key: entry.partition_key,
        data: entry.data,
        arrival_unix_ms: 0,
    }
}

fn same_stats(what: &str, got: &BucketStats, expected: &BucketStats) {
    assert_eq!(got.count, expected.count, "{what}: count");
    assert_eq!(got.sum, expected.sum, "{what}: sum");
    assert_eq!(got.min, expected.min, "{what}: min");
    assert_eq!(got.max, expected.max, "{what}: max");
    assert_eq!(
        got.sketch.count(),
        expected.sketch.count(),
        "{what}: sketch count"
    );
    for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0] {
        assert_eq!(
            got.quantile(q),
            expected.quantile(q),
            "{what}: quantile {q}"
        );
    }
}

/// Runs two batches covering hours 0, 5, 11 and 23 of a closed UTC day (the second delivered twice),
/// then checks that the `1d` bucket of each series equals the rollup of its `1h` buckets and holds
/// every point once. `retention` is the aggregator's (and should be the store's).
pub async fn daily_buckets_are_the_sum_of_their_hours<S: MetricStore + ?Sized>(
    store: Arc<S>,
    retention: Retention,
) -> DailyRun {
    let now = now_unix_s();
    // The day before yesterday: every hour of it is closed, and well inside every default retention.
    let day = Resolution::OneDay.bucket_start(now - 2 * 86_400);
    let series = fresh_series(&unique("svc"), "load");
    let shard = unique("shard");
    let hours = [0i64, 5, 11, 23];
    let records: Vec<StreamRecord> = hours
        .iter()
        .enumerate()
        .map(|(i, hour)| record_of(&shard, i as u64 + 1, &points_of(&series, day, *hour)))
        .collect();
    let aggregator = Aggregator::new(store.clone(), retention).with_clock(move || now);
    let first = ShardBatch {
        shard_id: shard.clone(),
        records: records[..2].to_vec(),
    };
    let second = ShardBatch {
        shard_id: shard.clone(),
        records: records[2..].to_vec(),
    };
    for batch in [&first, &second, &second, &first] {
        let outcome = aggregator.process(batch).await;
        assert_eq!(outcome.retry_from, None, "the batch is applied");
    }

    let mut histogram = series.clone();
    histogram.metric.push_str(".duration");
    let gauge_counts: Vec<u64> = hours.iter().map(|_| 2).collect();
    let histogram_counts: Vec<u64> = hours.iter().map(|h| 6 + *h as u64).collect();
    for (key, per_hour) in [(&series, gauge_counts), (&histogram, histogram_counts)] {
        let id = key.id();
        let hourly = store
            .query_buckets(id, Resolution::OneHour, day, day + 86_400)
            .await
            .expect("1h buckets read");
        assert_eq!(
            hourly
                .iter()
                .map(|(start, s)| (*start, s.count))
                .collect::<Vec<_>>(),
            hours
                .iter()
                .zip(&per_hour)
                .map(|(h, n)| (day + h * 3600, *n))
                .collect::<Vec<_>>(),
            "one 1h bucket per hour with points, each counted once"
        );
        let observations: u64 = per_hour.iter().sum();
        let daily = store
            .query_buckets(id, Resolution::OneDay, day - 86_400, day + 2 * 86_400)
            .await
            .expect("1d buckets read");
        assert_eq!(daily.len(), 1, "one 1d bucket: {daily:?}");
        assert_eq!(daily[0].0, day, "the 1d bucket starts at the UTC day");
        assert_eq!(
            daily[0].1.count, observations,
            "every observation counted once, the redelivered batch not twice"
        );
        let expected = rollup(&hourly, Resolution::OneDay);
        assert_eq!(expected.len(), 1);
        same_stats(
            &format!("1d of {}", key.metric),
            &daily[0].1,
            &expected[0].1,
        );
    }
    let first_minute = Resolution::OneMinute.bucket_start(day + 60);
    DailyRun {
        series: series.id(),
        day,
        first_minute,
        now,
    }
}
