//! Every metric type, through the real record codec and the aggregator, lands in buckets with the
//! numbers a dashboard shows: levels for gauges, increases (rates) for counters, quantiles for
//! distributions.

use flowscope_core::testing::memory_store;
use flowscope_core::testing::points;

use std::sync::Arc;

use flowscope_core::aggregate::{Aggregator, BatchOutcome};
use flowscope_core::model::{MetricKind, PointData, Resolution, Retention, Temporality};
use flowscope_core::record;
use flowscope_core::spans::{Span, SpanKind, SpanStatus};
use memory_store::MemoryStore;
use points::*;

fn aggregator(store: &Arc<MemoryStore>) -> Aggregator<MemoryStore> {
    Aggregator::new(store.clone(), Retention::default()).with_clock(|| NOW)
}

/// Each point in its own record, in order, in one batch.
async fn run(
    store: &Arc<MemoryStore>,
    points: &[flowscope_core::model::MetricPoint],
) -> BatchOutcome {
    let records: Vec<_> = points
        .iter()
        .enumerate()
        .map(|(i, p)| record(i as u128 + 1, std::slice::from_ref(p)))
        .collect();
    let outcome = aggregator(store).process(&batch(&records)).await;
    assert_eq!(outcome.retry_from, None);
    assert!(outcome.poison.is_empty());
    outcome
}

/// The 1m bucket's (count, sum) at `time_s`, or None when nothing was written there.
fn minute(store: &MemoryStore, metric: &str, time_s: u64) -> Option<(u64, f64)> {
    store
        .bucket(bucket_key(metric, Resolution::OneMinute, time_s))
        .map(|b| (b.stats.count, b.stats.sum))
}

#[tokio::test]
async fn gauge_values_are_observed_as_levels() {
    let store = MemoryStore::new();
    let outcome = run(
        &store,
        &[
            gauge("cpu", T0, 1.5),
            gauge("cpu", T0 + 10, 4.0),
            gauge("cpu", T0 + 20, 2.5),
        ],
    )
    .await;
    let stats = store
        .bucket(bucket_key("cpu", Resolution::OneMinute, T0))
        .unwrap()
        .stats;
    assert_eq!(
        (stats.count, stats.sum, stats.min, stats.max),
        (3, 8.0, Some(1.5), Some(4.0))
    );
    let p50 = stats.quantile(0.5).unwrap();
    assert!((p50 - 2.5).abs() <= 0.025, "p50 {p50}");
    assert_eq!(outcome.points_applied, 3);
    // The same points in the 5m, 1h and 1d buckets.
    for resolution in [
        Resolution::FiveMinutes,
        Resolution::OneHour,
        Resolution::OneDay,
    ] {
        assert_eq!(
            store
                .bucket(bucket_key("cpu", resolution, T0))
                .unwrap()
                .stats
                .count,
            3
        );
    }
    // Live updates carry the series and the stats after the write.
    let update = outcome
        .updates
        .iter()
        .find(|u| u.resolution == Resolution::OneMinute)
        .unwrap();
    assert_eq!(update.series.kind, MetricKind::Gauge);
    assert_eq!(update.series.key.metric, "cpu");
    assert_eq!(update.series.last_seen_unix_s, (T0 + 20) as i64);
    assert_eq!(update.view.count, 3);
    // One per written resolution: the store builds the 1d bucket from the 1h one (no 1d write).
    assert_eq!(outcome.updates.len(), 3, "one per written resolution");
}

#[tokio::test]
async fn delta_sums_add_up_to_the_increase_per_bucket() {
    let store = MemoryStore::new();
    run(
        &store,
        &[
            delta_sum("hits", T0 + 5, 3.0),
            delta_sum("hits", T0 + 35, 4.0),
            delta_sum("hits", T0 + 65, 10.0),
        ],
    )
    .await;
    assert_eq!(minute(&store, "hits", T0), Some((2, 7.0)));
    assert_eq!(minute(&store, "hits", T0 + 60), Some((1, 10.0)));
    let five = store
        .bucket(bucket_key("hits", Resolution::FiveMinutes, T0))
        .unwrap();
    assert_eq!(five.stats.sum, 17.0);
}

#[tokio::test]
async fn cumulative_counter_becomes_increases_across_reset_and_restart() {
    let store = MemoryStore::new();
    // Started a day ago: the first point only sets the baseline.
    let start = T0 - 86_400;
    let outcome = run(
        &store,
        &[
            cumulative_sum("requests", 1, start, T0, 1000.0, true),
            cumulative_sum("requests", 1, start, T0 + 60, 1030.0, true),
            cumulative_sum("requests", 1, start, T0 + 120, 1050.0, true),
            // Reset under the same start time: a smaller value is the whole increase.
            cumulative_sum("requests", 1, start, T0 + 180, 5.0, true),
            // Process restarted at T0+200 (new start time): its value counts whole.
            cumulative_sum("requests", 1, T0 + 200, T0 + 240, 7.0, true),
            cumulative_sum("requests", 1, T0 + 200, T0 + 300, 19.0, true),
        ],
    )
    .await;
    assert_eq!(minute(&store, "requests", T0), None);
    assert_eq!(minute(&store, "requests", T0 + 60), Some((1, 30.0)));
    assert_eq!(minute(&store, "requests", T0 + 120), Some((1, 20.0)));
    assert_eq!(minute(&store, "requests", T0 + 180), Some((1, 5.0)));
    assert_eq!(minute(&store, "requests", T0 + 240), Some((1, 7.0)));
    assert_eq!(minute(&store, "requests", T0 + 300), Some((1, 12.0)));
    assert_eq!(outcome.points_noop, 1);
    assert_eq!(outcome.points_applied, 5);
    // Rate of the 1m bucket = sum / 60 s: 30 requests in the minute → 0.5/s.
    assert_eq!(minute(&store, "requests", T0 + 60).unwrap().1 / 60.0, 0.5);
}

#[tokio::test]
async fn sdk_default_first_export_counts_whole_and_state_persists_across_batches() {
    let store = MemoryStore::new();
    // Python/JS SDK: cumulative since process start, exported every 60 s.
    let start = T0 - 60;
    run(&store, &[cumulative_sum("jobs", 1, start, T0, 42.0, true)]).await;
    assert_eq!(minute(&store, "jobs", T0), Some((1, 42.0)));
    // The next export arrives in a later batch: the state saved by the first gives the delta.
    let next = record(10, &[cumulative_sum("jobs", 1, start, T0 + 60, 50.0, true)]);
    aggregator(&store).process(&batch(&[next])).await;
    assert_eq!(minute(&store, "jobs", T0 + 60), Some((1, 8.0)));
}

#[tokio::test]
async fn two_sources_of_one_series_are_tracked_separately_and_merge_in_buckets() {
    let store = MemoryStore::new();
    let start = T0 - 86_400;
    run(
        &store,
        &[
            cumulative_sum("requests", 1, start, T0, 100.0, true),
            cumulative_sum("requests", 2, start, T0, 9000.0, true),
            cumulative_sum("requests", 1, start, T0 + 60, 110.0, true),
            cumulative_sum("requests", 2, start, T0 + 60, 9003.0, true),
        ],
    )
    .await;
    assert_eq!(minute(&store, "requests", T0 + 60), Some((2, 13.0)));
}

#[tokio::test]
async fn up_down_counter_changes_may_be_negative() {
    let store = MemoryStore::new();
    let start = T0 - 86_400;
    run(
        &store,
        &[
            cumulative_sum("queue", 1, start, T0, 10.0, false),
            cumulative_sum("queue", 1, start, T0 + 60, 7.0, false),
            cumulative_sum("queue", 1, start, T0 + 120, 12.0, false),
        ],
    )
    .await;
    assert_eq!(minute(&store, "queue", T0 + 60), Some((1, -3.0)));
    assert_eq!(minute(&store, "queue", T0 + 120), Some((1, 5.0)));
    let hour = store
        .bucket(bucket_key("queue", Resolution::OneHour, T0))
        .unwrap()
        .stats;
    assert_eq!(hour.sum, 2.0);
    assert_eq!(hour.min, Some(-3.0));
}

fn histogram(
    temporality: Temporality,
    count: u64,
    sum: f64,
    max: f64,
    counts: Vec<u64>,
) -> PointData {
    PointData::Histogram {
        temporality,
        count,
        sum: Some(sum),
        min: Some(2.0),
        max: Some(max),
        bounds: vec![10.0, 100.0],
        bucket_counts: counts,
    }
}

#[tokio::test]
async fn cumulative_histogram_becomes_delta_buckets_with_exact_count_and_sum() {
    let store = MemoryStore::new();
    let cumulative = Temporality::Cumulative {
        start_time_unix_nano: (T0 - 86_400) * SEC,
    };
    run(
        &store,
        &[
            point(
                "latency",
                1,
                T0,
                histogram(cumulative, 3, 120.0, 60.0, vec![1, 2, 0]),
            ),
            point(
                "latency",
                1,
                T0 + 60,
                histogram(cumulative, 9, 870.0, 400.0, vec![3, 5, 1]),
            ),
        ],
    )
    .await;
    let stats = store
        .bucket(bucket_key("latency", Resolution::OneMinute, T0 + 60))
        .unwrap()
        .stats;
    // Delta: 2 values ≤ 10, 3 in (10, 100], 1 above 100; count and sum from the points.
    assert_eq!(stats.count, 6);
    assert_eq!(stats.sum, 750.0);
    // The running max rose (60 → 400), so 400 happened in this interval; the running min (2) did not
    // move, so the interval's min is estimated from the lowest bucket: its two values spread over
    // (0, 10] sit at 2.5 and 7.5.
    assert_eq!(stats.sketch.count(), 6);
    assert_eq!((stats.min, stats.max), (Some(2.5), Some(400.0)));
    let top = stats.quantile(1.0).unwrap();
    assert!(
        (top - 400.0).abs() <= 4.0 + 1e-9,
        "open-ended bucket sits at the known max: {top}"
    );
    // p50 is the 3rd of 6 values: the first of the three spread over (10, 100], at 25.
    let p50 = stats.quantile(0.5).unwrap();
    assert!(
        (p50 - 25.0).abs() <= 0.25 + 1e-9,
        "p50 {p50} should be interpolated within (10,100]"
    );
    assert_eq!(
        minute(&store, "latency", T0),
        None,
        "first cumulative point is a baseline"
    );
}

#[tokio::test]
async fn delta_histogram_keeps_the_points_min_max_and_sum() {
    let store = MemoryStore::new();
    let data = PointData::Histogram {
        temporality: Temporality::Delta,
        count: 4,
        sum: Some(61.0),
        min: Some(1.0),
        max: Some(40.0),
        bounds: vec![5.0, 25.0],
        bucket_counts: vec![2, 1, 1],
    };
    run(&store, &[point("latency", 1, T0, data)]).await;
    let stats = store
        .bucket(bucket_key("latency", Resolution::OneMinute, T0))
        .unwrap()
        .stats;
    assert_eq!(
        (stats.count, stats.sum, stats.min, stats.max),
        (4, 61.0, Some(1.0), Some(40.0))
    );
}

#[tokio::test]
async fn exponential_histogram_quantiles_come_from_geometric_bucket_midpoints() {
    let store = MemoryStore::new();
    // Scale 3: base 2^(1/8). 90 values in bucket 40 (32, 34.9], 10 in bucket 56 (128, 139.6], 5 zeros.
    let mut positive_counts = vec![0u64; 17];
    positive_counts[0] = 90;
    positive_counts[16] = 10;
    let data = PointData::ExponentialHistogram {
        temporality: Temporality::Delta,
        count: 105,
        sum: Some(4200.0),
        min: Some(0.0),
        max: Some(135.0),
        scale: 3,
        zero_count: 5,
        positive_offset: 40,
        positive_counts,
        negative_offset: 0,
        negative_counts: vec![],
    };
    run(&store, &[point("size", 1, T0, data)]).await;
    let stats = store
        .bucket(bucket_key("size", Resolution::OneMinute, T0))
        .unwrap()
        .stats;
    assert_eq!(
        (stats.count, stats.sum, stats.min, stats.max),
        (105, 4200.0, Some(0.0), Some(135.0))
    );
    let base = 2f64.powf(1.0 / 8.0);
    let p50 = stats.quantile(0.5).unwrap();
    let mid40 = base.powf(40.5);
    assert!(
        (p50 - mid40).abs() / mid40 <= 0.01 + 1e-9,
        "p50 {p50} vs {mid40}"
    );
    assert!(p50 > 32.0 && p50 <= 34.9);
    let p99 = stats.quantile(0.99).unwrap();
    let mid56 = base.powf(56.5);
    assert!(
        (p99 - mid56).abs() / mid56 <= 0.01 + 1e-9,
        "p99 {p99} vs {mid56}"
    );
    assert_eq!(stats.quantile(0.0), Some(0.0), "zero bucket");
}

#[tokio::test]
async fn cumulative_exponential_histogram_becomes_delta() {
    let store = MemoryStore::new();
    let exp = |count: u64, sum: f64, counts: Vec<u64>| PointData::ExponentialHistogram {
        temporality: Temporality::Cumulative {
            start_time_unix_nano: (T0 - 86_400) * SEC,
        },
        count,
        sum: Some(sum),
        min: Some(1.0),
        max: Some(8.0),
        scale: 0,
        zero_count: 0,
        positive_offset: 0,
        positive_counts: counts,
        negative_offset: 0,
        negative_counts: vec![],
    };
    run(
        &store,
        &[
            point("size", 1, T0, exp(3, 10.0, vec![1, 1, 1])),
            point("size", 1, T0 + 60, exp(7, 30.0, vec![1, 4, 2])),
        ],
    )
    .await;
    let stats = store
        .bucket(bucket_key("size", Resolution::OneMinute, T0 + 60))
        .unwrap()
        .stats;
    assert_eq!((stats.count, stats.sum), (4, 20.0));
    // 3 new values in (2, 4] and 1 in (4, 8]: geometric midpoints 2√2 and 4√2.
    let p50 = stats.quantile(0.5).unwrap();
    assert!((p50 - 2.0 * 2f64.sqrt()).abs() / p50 <= 0.011, "p50 {p50}");
}

#[tokio::test]
async fn summary_contributes_count_and_sum_only() {
    let store = MemoryStore::new();
    // OTLP summaries are cumulative: the first is a baseline, then increases.
    run(
        &store,
        &[
            point(
                "rpc",
                1,
                T0,
                PointData::Summary {
                    count: 10,
                    sum: 50.0,
                },
            ),
            point(
                "rpc",
                1,
                T0 + 60,
                PointData::Summary {
                    count: 14,
                    sum: 70.5,
                },
            ),
        ],
    )
    .await;
    assert_eq!(minute(&store, "rpc", T0), None);
    let stats = store
        .bucket(bucket_key("rpc", Resolution::OneMinute, T0 + 60))
        .unwrap()
        .stats;
    assert_eq!((stats.count, stats.sum), (4, 20.5));
    assert_eq!(stats.avg(), Some(20.5 / 4.0));
    assert_eq!(
        stats.quantile(0.5),
        None,
        "summary quantiles are separate gauge series"
    );
}

#[tokio::test]
async fn points_past_retention_are_skipped_per_resolution() {
    let store = MemoryStore::new();
    let retention = Retention::default();
    // 10 days old: past the 7 d of 1m buckets, inside the 30 d of 5m.
    let old = (NOW - 10 * 86_400) as u64;
    let outcome = Aggregator::new(store.clone(), retention)
        .with_clock(|| NOW)
        .process(&batch(&[record(1, &[gauge("cpu", old, 1.0)])]))
        .await;
    assert_eq!(outcome.points_expired, 1);
    assert_eq!(outcome.points_applied, 1);
    assert!(store
        .bucket(bucket_key("cpu", Resolution::OneMinute, old))
        .is_none());
    let five = store
        .bucket(bucket_key("cpu", Resolution::FiveMinutes, old))
        .unwrap();
    let start = Resolution::FiveMinutes.bucket_start(old as i64);
    assert_eq!(
        five.expires_at_unix_s,
        start + 300 + retention.five_minutes_seconds
    );
}

#[tokio::test]
async fn span_records_are_ignored_not_poison() {
    let store = MemoryStore::new();
    let span = Span {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent_span_id: None,
        service: "api".into(),
        name: "GET /".into(),
        kind: SpanKind::Server,
        start_unix_nano: T0 * SEC,
        end_unix_nano: T0 * SEC + 5_000_000,
        status: SpanStatus::Ok,
        attributes: Default::default(),
    };
    let mut spans = record(2, &[gauge("cpu", T0, 1.0)]);
    spans.data = record::encode_spans(&[span]).remove(0).data;
    let outcome = aggregator(&store)
        .process(&batch(&[record(1, &[gauge("cpu", T0, 1.0)]), spans]))
        .await;
    assert!(outcome.poison.is_empty());
    assert_eq!(outcome.spans_ignored, 1);
    assert_eq!(outcome.retry_from, None);
    assert_eq!(minute(&store, "cpu", T0), Some((1, 1.0)));
}
