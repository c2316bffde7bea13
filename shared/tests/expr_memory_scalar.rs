//! Peak memory of the ordinary dashboard query the default sample budget must admit (issue 15,
//! `--query-max-samples`): `sum(rate(http_requests[5m])) by (route)` over 24 h at 1m for 1,000
//! counter series (1,440 evaluation times, 1,444 buckets loaded per series: ≈2.9M samples). No sketch
//! is read, so each loaded bucket drops its sketch and counts 1. Prints the peak RSS the query added;
//! one test in this file so the process holds nothing else.

use flowscope_core::domain::stats::BucketStats;
use flowscope_core::expr::{evaluate, ExprLimits, QueryTimes, DEFAULT_MAX_SAMPLES};
use flowscope_core::model::{MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{BucketDelta, BucketKey, BucketStore, SequenceNumber, SeriesCatalog};
use flowscope_core::testing::MemoryStore;

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_day_of_a_thousand_counters_fits_the_default_budget_below_300_mb() {
    const SERIES: usize = 1000;
    const ROUTES: usize = 20;
    const STEPS: i64 = 1440;
    // Buckets from the first window's start (5 minutes before the first step) to the last step.
    const MINUTES: i64 = STEPS + 4;
    let store = MemoryStore::new();
    for i in 0..SERIES {
        let key = SeriesKey {
            service: "api".into(),
            metric: "http_requests".into(),
            attributes: [
                ("host".to_string(), format!("h{i}")),
                ("route".to_string(), format!("/r{}", i % ROUTES)),
            ]
            .into_iter()
            .collect(),
        };
        let meta = SeriesMeta {
            id: key.id(),
            key,
            kind: MetricKind::Counter,
            unit: String::new(),
            last_seen_unix_s: 0,
        };
        store
            .upsert_series(std::slice::from_ref(&meta))
            .await
            .unwrap();
        // A counter's bucket: the deltas of the minute (each bucket carries their sketch).
        let mut stats = BucketStats::new();
        for k in 0..12 {
            stats.observe(1.0 + ((i + k * 7) % 10) as f64);
        }
        let deltas: Vec<BucketDelta> = (0..MINUTES)
            .map(|m| {
                let seq = SequenceNumber::from_u128((i as u128) << 32 | m as u128);
                BucketDelta {
                    key: BucketKey {
                        series: meta.id,
                        resolution: Resolution::OneMinute,
                        start_unix_s: m * 60,
                    },
                    shard_id: format!("s{i}-{m}"),
                    first_seq: seq.clone(),
                    last_seq: seq,
                    stats: stats.clone(),
                    expires_at_unix_s: i64::MAX,
                }
            })
            .collect();
        for outcome in store.apply_buckets(&deltas).await {
            outcome.unwrap();
        }
    }
    // Reset the peak (VmHWM) to the current RSS: what follows is the query's.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let before = status_kb("VmRSS:");
    // Evaluation times 5m..=5m+1439m: the first window [0, 5m) is the first bucket stored.
    let times = QueryTimes {
        start: 300,
        end: 300 + (STEPS - 1) * 60,
        step: 60,
        resolution: Some(Resolution::OneMinute),
    };
    let result = evaluate(
        store.as_ref(),
        "sum(rate(http_requests[5m])) by (route)",
        times,
        false,
        ExprLimits::default(),
    )
    .await
    .expect("the query fits the default budget");
    let peak = status_kb("VmHWM:");
    assert_eq!(result.times.len(), STEPS as usize);
    let series = result.series();
    assert_eq!(series.len(), ROUTES);
    // Every step answers: each window holds 5 whole buckets of every series.
    assert!(series
        .iter()
        .all(|(_, points)| points.iter().all(|p| p.is_some())));
    let added_mb = peak.saturating_sub(before) / 1024;
    println!(
        "default budget {DEFAULT_MAX_SAMPLES} samples: {SERIES} counter series × {STEPS} steps, \
         store RSS {} MB, query peak RSS +{added_mb} MB",
        before / 1024
    );
    assert!(added_mb < 300, "the query added {added_mb} MB");
}
