//! Peak memory of the worst expression query the default sample budget admits (issue 15,
//! `--query-max-samples`): `histogram_quantile(0.99, sum(rate(h_bucket[5m])))` keeps a merged sketch
//! per series and evaluation time besides the loaded buckets, all of them keeping their sketches (each
//! counting `SKETCH_SAMPLE_WEIGHT` samples). `DEFAULT_MAX_SAMPLES / (2000 × SKETCH_SAMPLE_WEIGHT)`
//! histogram series × 995 evaluation times at 1m (50 series at the default: 99,750 weighted samples), each bucket a dense sketch of 100
//! latencies from 5 to 405 ms (≈220 sketch bins, as the expr bench's data). Prints the peak RSS the
//! query added; one test in this file so the process holds nothing else.

use flowscope_core::domain::stats::BucketStats;
use flowscope_core::expr::{
    evaluate, ExprLimits, QueryTimes, DEFAULT_MAX_SAMPLES, SKETCH_SAMPLE_WEIGHT,
};
use flowscope_core::model::{MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{BucketDelta, BucketKey, BucketStore, SequenceNumber, SeriesCatalog};
use flowscope_core::testing::process::proc_status_kib;
use flowscope_core::testing::MemoryStore;

#[tokio::test]
async fn the_worst_query_under_the_default_budget_peaks_below_300_mb() {
    // Each series holds 995 points and loads 1000 buckets: as many as the default budget admits.
    const SERIES: usize = DEFAULT_MAX_SAMPLES / (2000 * SKETCH_SAMPLE_WEIGHT);
    const MINUTES: i64 = 1000;
    let store = MemoryStore::new();
    for i in 0..SERIES {
        let key = SeriesKey {
            service: "api".into(),
            metric: "lat".into(),
            attributes: [("host".to_string(), format!("h{i}"))]
                .into_iter()
                .collect(),
        };
        let meta = SeriesMeta {
            id: key.id(),
            key,
            kind: MetricKind::Histogram,
            unit: String::new(),
            last_seen_unix_s: 0,
        };
        store
            .upsert_series(std::slice::from_ref(&meta))
            .await
            .unwrap();
        let mut stats = BucketStats::new();
        for k in 0..100 {
            stats.observe(5.0 + ((i * 7 + k * 13) % 400) as f64 + k as f64 / 100.0);
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
    let before = proc_status_kib("VmRSS:");
    let times = QueryTimes {
        start: 360,
        end: 360 + 994 * 60,
        step: 60,
        resolution: Some(Resolution::OneMinute),
    };
    let result = evaluate(
        store.as_ref(),
        "histogram_quantile(0.99, sum(rate(lat_bucket[5m])))",
        times,
        false,
        ExprLimits::default(),
    )
    .await
    .expect("the query fits the default budget");
    assert_eq!(result.times.len(), 995);
    let peak = proc_status_kib("VmHWM:");
    let added_mb = peak.saturating_sub(before) / 1024;
    println!(
        "default budget {DEFAULT_MAX_SAMPLES} samples: {SERIES} series × 995 steps, \
         store RSS {} MB, query peak RSS +{added_mb} MB",
        before / 1024
    );
    assert!(added_mb < 300, "the query added {added_mb} MB");
}
