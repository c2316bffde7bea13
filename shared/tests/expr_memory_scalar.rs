//! Peak memory of the ordinary dashboard query the default sample budget must admit (issue 15,
//! `--query-max-samples`): `sum(rate(http_requests[5m])) by (route)` over 24 h at 1m for 1,000
//! counter series (1,440 evaluation times, 1,444 buckets loaded per series: ≈2.9M samples). No sketch
//! is read, so each loaded bucket drops its sketch and counts 1. Prints the peak RSS the query added;
//! one test in this file so the process holds nothing else.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use flowscope_core::domain::stats::BucketStats;
use flowscope_core::expr::{evaluate, ExprLimits, QueryTimes, DEFAULT_MAX_SAMPLES};
use flowscope_core::model::{MetricKind, Resolution, SeriesId, SeriesKey, SeriesMeta};
use flowscope_core::ports::{ApplyOutcome, BucketDelta, BucketStore, SeriesCatalog, StoreError};
use flowscope_core::testing::process::proc_status_kib;

/// A read-only store indexing its 1m buckets by series: `testing::MemoryStore` scans all 1.44M
/// buckets on every read (1.44 billion comparisons for this query in a debug build). Reads return
/// owned copies with their sketches, as the redb store decodes them.
#[derive(Default)]
struct SeriesIndexedStore {
    series: Mutex<Vec<SeriesMeta>>,
    buckets: Mutex<HashMap<SeriesId, Vec<(i64, BucketStats)>>>,
}

#[async_trait]
impl BucketStore for SeriesIndexedStore {
    async fn apply_bucket(&self, _delta: &BucketDelta) -> Result<ApplyOutcome, StoreError> {
        unreachable!("filled directly")
    }

    fn derives_daily(&self) -> bool {
        true
    }

    async fn query_buckets(
        &self,
        series: SeriesId,
        resolution: Resolution,
        from_unix_s: i64,
        to_unix_s: i64,
    ) -> Result<Vec<(i64, BucketStats)>, StoreError> {
        assert_eq!(resolution, Resolution::OneMinute);
        let buckets = self.buckets.lock().unwrap();
        Ok(buckets
            .get(&series)
            .map(|list| {
                list.iter()
                    .filter(|(t, _)| (from_unix_s..to_unix_s).contains(t))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl SeriesCatalog for SeriesIndexedStore {
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError> {
        self.series.lock().unwrap().extend_from_slice(series);
        Ok(())
    }

    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec!["api".into()])
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        let series = self.series.lock().unwrap();
        Ok(series
            .iter()
            .filter(|m| m.key.service == service)
            .cloned()
            .collect())
    }

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError> {
        let series = self.series.lock().unwrap();
        Ok(series.iter().find(|m| m.id == id).cloned())
    }
}

#[tokio::test]
async fn a_day_of_a_thousand_counters_fits_the_default_budget_below_300_mb() {
    const SERIES: usize = 1000;
    const ROUTES: usize = 20;
    const STEPS: i64 = 1440;
    // Buckets from the first window's start (5 minutes before the first step) to the last step.
    const MINUTES: i64 = STEPS + 4;
    let store = SeriesIndexedStore::default();
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
        let list = (0..MINUTES).map(|m| (m * 60, stats.clone())).collect();
        store.buckets.lock().unwrap().insert(meta.id, list);
    }
    // Reset the peak (VmHWM) to the current RSS: what follows is the query's.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let before = proc_status_kib("VmRSS:");
    // Evaluation times 5m..=5m+1439m: the first window [0, 5m) is the first bucket stored.
    let times = QueryTimes {
        start: 300,
        end: 300 + (STEPS - 1) * 60,
        step: 60,
        resolution: Some(Resolution::OneMinute),
    };
    let result = evaluate(
        &store,
        "sum(rate(http_requests[5m])) by (route)",
        times,
        false,
        ExprLimits::default(),
    )
    .await
    .expect("the query fits the default budget");
    let peak = proc_status_kib("VmHWM:");
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
