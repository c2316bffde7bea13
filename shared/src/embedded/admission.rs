//! In-memory series admission for local mode: per service and metric, a map of active series ids
//! (u64 → last seen) bounded by the limits themselves — no strings per series.
//!
//! Seeded lazily, the first time a service is seen, from the store's series registry
//! ([`SeriesCatalog::list_series`](crate::ports::SeriesCatalog::list_series) has `last_seen`), so a restart does not admit a fresh set of
//! series on top of the ones already active.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;

use crate::cardinality::{
    LimitKind, MetricSeries, RefusalLog, RefusalReport, RefusedSeries, SeriesLimits, SeriesRefusal,
};
use crate::model::stable_hash;
use crate::ports::admission::{AdmissionError, SeriesAdmission};
use crate::ports::MetricStore;

/// Expired series are swept from a full metric or service at most this often (seconds), so a flood
/// of refused series costs one sweep per interval, not one per series.
const SWEEP_INTERVAL_S: i64 = 1;

#[derive(Default)]
struct MetricState {
    /// Series id → unix seconds last seen.
    series: HashMap<u64, i64>,
    last_sweep: i64,
}

#[derive(Default)]
struct ServiceState {
    seeded: bool,
    /// Sum of the metrics' series counts.
    active: usize,
    metrics: HashMap<u64, MetricState>,
    last_sweep: i64,
}

impl ServiceState {
    fn sweep_metric(&mut self, metric: u64, oldest: i64, now: i64) {
        if let Some(state) = self.metrics.get_mut(&metric) {
            if now - state.last_sweep < SWEEP_INTERVAL_S {
                return;
            }
            state.last_sweep = now;
            let before = state.series.len();
            state.series.retain(|_, seen| *seen >= oldest);
            self.active -= before - state.series.len();
        }
    }

    fn sweep_all(&mut self, oldest: i64, now: i64) {
        if now - self.last_sweep < SWEEP_INTERVAL_S {
            return;
        }
        self.last_sweep = now;
        let mut active = 0;
        self.metrics.retain(|_, state| {
            state.series.retain(|_, seen| *seen >= oldest);
            active += state.series.len();
            !state.series.is_empty()
        });
        self.active = active;
    }

    fn metric_len(&self, metric: u64) -> usize {
        self.metrics.get(&metric).map_or(0, |m| m.series.len())
    }

    fn insert(&mut self, metric: u64, id: u64, seen: i64) {
        let state = self.metrics.entry(metric).or_default();
        if state.series.insert(id, seen).is_none() {
            self.active += 1;
        }
    }
}

pub struct MemorySeriesAdmission {
    limits: SeriesLimits,
    /// Weak: the admission must not keep the store (and its file lock) open after local mode stops.
    seed: Option<Weak<dyn MetricStore>>,
    services: Mutex<HashMap<u64, ServiceState>>,
    refusals: Mutex<RefusalLog>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemorySeriesAdmission {
    pub fn new(limits: SeriesLimits) -> Self {
        MemorySeriesAdmission {
            limits,
            seed: None,
            services: Mutex::new(HashMap::new()),
            refusals: Mutex::new(RefusalLog::default()),
        }
    }

    /// Seeds each service, when first seen, with its series active in the store's registry.
    pub fn with_seed(mut self, store: Arc<dyn MetricStore>) -> Self {
        self.seed = Some(Arc::downgrade(&store));
        self
    }

    fn oldest(&self, now: i64) -> i64 {
        now.saturating_sub(self.limits.active_window_seconds)
    }

    /// Loads the registry of services not seen yet (outside the lock: it reads the store).
    async fn seed_services(&self, now: i64, groups: &[MetricSeries]) -> Result<(), AdmissionError> {
        let Some(store) = self.seed.as_ref().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let mut unseeded: Vec<&str> = {
            let services = lock(&self.services);
            groups
                .iter()
                .map(|g| g.service.as_str())
                .filter(|s| !services.get(&stable_hash(&[s])).is_some_and(|st| st.seeded))
                .collect()
        };
        unseeded.sort_unstable();
        unseeded.dedup();
        let oldest = self.oldest(now);
        let max_service = self.limits.max_series_per_service as usize;
        let max_metric = self.limits.max_series_per_metric as usize;
        for service in unseeded {
            let mut series = store
                .list_series(service)
                .await
                .map_err(|e| AdmissionError::Unavailable(e.to_string()))?;
            series.retain(|meta| meta.last_seen_unix_s >= oldest);
            // Newest first: when the registry holds more than the limits, the latest ones count.
            series.sort_by_key(|meta| std::cmp::Reverse(meta.last_seen_unix_s));
            let mut services = lock(&self.services);
            let state = services.entry(stable_hash(&[service])).or_default();
            if state.seeded {
                continue;
            }
            state.seeded = true;
            for meta in series {
                if state.active >= max_service {
                    break;
                }
                let metric = stable_hash(&[&meta.key.metric]);
                if state.metric_len(metric) < max_metric {
                    state.insert(metric, meta.id.0, meta.last_seen_unix_s);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SeriesAdmission for MemorySeriesAdmission {
    fn limits(&self) -> SeriesLimits {
        self.limits
    }

    async fn admit(
        &self,
        now_unix_s: i64,
        groups: &[MetricSeries],
    ) -> Result<Vec<RefusedSeries>, AdmissionError> {
        self.seed_services(now_unix_s, groups).await?;
        let oldest = self.oldest(now_unix_s);
        let max_service = self.limits.max_series_per_service as usize;
        let max_metric = self.limits.max_series_per_metric as usize;
        let mut services = lock(&self.services);
        let mut verdicts = Vec::with_capacity(groups.len());
        for group in groups {
            let service = services.entry(stable_hash(&[&group.service])).or_default();
            let metric = stable_hash(&[&group.metric]);
            let mut verdict = RefusedSeries::default();
            for id in &group.ids {
                if let Some(seen) = service
                    .metrics
                    .get_mut(&metric)
                    .and_then(|m| m.series.get_mut(&id.0))
                {
                    // Present (even if expired but not swept yet): it holds its slot, so it passes.
                    *seen = (*seen).max(now_unix_s);
                    continue;
                }
                if service.metric_len(metric) >= max_metric {
                    service.sweep_metric(metric, oldest, now_unix_s);
                }
                if service.active >= max_service {
                    service.sweep_all(oldest, now_unix_s);
                }
                let refused_by = if service.metric_len(metric) >= max_metric {
                    Some(LimitKind::PerMetric)
                } else if service.active >= max_service {
                    Some(LimitKind::PerService)
                } else {
                    None
                };
                match refused_by {
                    None => service.insert(metric, id.0, now_unix_s),
                    Some(limit) => {
                        verdict.limit.get_or_insert(limit);
                        verdict.ids.push(*id);
                    }
                }
            }
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    async fn record_refusals(
        &self,
        now_unix_s: i64,
        refusals: &[SeriesRefusal],
    ) -> Result<(), AdmissionError> {
        let mut log = lock(&self.refusals);
        for refusal in refusals {
            log.add(now_unix_s, refusal);
        }
        Ok(())
    }

    async fn refusals(&self) -> Result<RefusalReport, AdmissionError> {
        Ok(lock(&self.refusals).report(self.limits))
    }
}
