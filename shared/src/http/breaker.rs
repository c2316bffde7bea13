//! A circuit breaker around the query path's store reads (issue 15 item 7b), with `failsafe`'s
//! state machine (closed → open → half-open probes), so a store that throttles, hangs or is gone
//! costs a query at most [`BreakerSettings::timeout`] and, once the breaker is open, nothing: reads
//! are refused at once as `Unavailable` and the API answers from its recent results, marked stale
//! ([`super::caching`]).
//!
//! - Every read runs under a timeout; a timeout, `Throttled` or `Unavailable` counts as a failure
//!   (`Corrupt` does not: the store answered).
//! - The breaker opens after `consecutive_failures` failures in a row, or when under
//!   `min_success_rate` of at least `min_requests` reads within `window` succeed.
//! - Open for `open_for` at first, doubling while probes keep failing (at most `open_for_max`);
//!   then half-open: reads go through again as probes, and a success closes it.
//!
//! Writes (the aggregator's) never pass through here: only the API's store is wrapped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use failsafe::failure_policy::{
    consecutive_failures, success_rate_over_time_window, ConsecutiveFailures, FailurePolicy as _,
    OrElse, SuccessRateOverTimeWindow,
};
use failsafe::futures::CircuitBreaker;
use failsafe::StateMachine;

use crate::domain::stats::BucketStats;
use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{
    ApplyOutcome, BucketDelta, BucketStore, MetricStore, Purge, SeriesCatalog, StateStore,
    StoreError,
};

/// The breaker's settings (local mode: `--query-store-*` flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// One store read may take this long.
    pub timeout: Duration,
    /// Failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// Success rate below which the breaker opens (with `min_requests` reads in `window`).
    pub min_success_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    /// First open period; doubles while half-open probes fail, up to `open_for_max`.
    pub open_for: Duration,
    pub open_for_max: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            timeout: Duration::from_secs(2),
            consecutive_failures: 5,
            min_success_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(5),
            open_for_max: Duration::from_secs(60),
        }
    }
}

type Policy = OrElse<SuccessRateOverTimeWindow<Doubling>, ConsecutiveFailures<Doubling>>;

/// The open periods: `start`, doubling up to `max`. (failsafe's own exponential backoff refuses — by
/// panicking — starts under a second.)
#[derive(Debug, Clone, Copy)]
pub struct Doubling {
    next: Duration,
    max: Duration,
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next.min(self.max);
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(current)
    }
}

/// A metric store whose reads pass through a circuit breaker.
pub struct BreakerStore {
    inner: Arc<dyn MetricStore>,
    breaker: StateMachine<Policy, ()>,
    timeout: Duration,
}

impl BreakerStore {
    pub fn new(inner: Arc<dyn MetricStore>, settings: BreakerSettings) -> BreakerStore {
        let backoff = Doubling {
            next: settings.open_for,
            max: settings.open_for_max.max(settings.open_for),
        };
        let policy = success_rate_over_time_window(
            settings.min_success_rate.clamp(0.0, 1.0),
            settings.min_requests,
            settings.window,
            backoff,
        )
        .or_else(consecutive_failures(
            settings.consecutive_failures.max(1),
            backoff,
        ));
        BreakerStore {
            inner,
            breaker: failsafe::Config::new().failure_policy(policy).build(),
            timeout: settings.timeout,
        }
    }

    /// Whether reads are let through now (closed or half-open).
    pub fn is_closed(&self) -> bool {
        self.breaker.is_call_permitted()
    }

    async fn guarded<T>(
        &self,
        read: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let timeout = self.timeout;
        let timed = async move {
            tokio::time::timeout(timeout, read)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(format!(
                        "no answer within {timeout:?}"
                    )))
                })
        };
        let is_outage = |e: &StoreError| !matches!(e, StoreError::Corrupt { .. });
        match self.breaker.call_with(is_outage, timed).await {
            Ok(value) => Ok(value),
            Err(failsafe::Error::Inner(e)) => Err(e),
            Err(failsafe::Error::Rejected) => Err(StoreError::Unavailable(
                "circuit breaker open: the store failed recently, reads resume after a pause"
                    .into(),
            )),
        }
    }
}

#[async_trait]
impl BucketStore for BreakerStore {
    async fn apply_bucket(&self, delta: &BucketDelta) -> Result<ApplyOutcome, StoreError> {
        self.inner.apply_bucket(delta).await
    }

    async fn apply_buckets(&self, deltas: &[BucketDelta]) -> Vec<Result<ApplyOutcome, StoreError>> {
        self.inner.apply_buckets(deltas).await
    }

    fn derives_daily(&self) -> bool {
        self.inner.derives_daily()
    }

    async fn query_buckets(
        &self,
        series: SeriesId,
        resolution: Resolution,
        from_unix_s: i64,
        to_unix_s: i64,
    ) -> Result<Vec<(i64, BucketStats)>, StoreError> {
        self.guarded(
            self.inner
                .query_buckets(series, resolution, from_unix_s, to_unix_s),
        )
        .await
    }
}

#[async_trait]
impl SeriesCatalog for BreakerStore {
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError> {
        self.inner.upsert_series(series).await
    }

    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        self.guarded(self.inner.list_services()).await
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        self.guarded(self.inner.list_series(service)).await
    }

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError> {
        self.guarded(self.inner.get_series(id)).await
    }
}

#[async_trait]
impl StateStore for BreakerStore {
    async fn load_state(&self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StoreError> {
        self.inner.load_state(keys).await
    }

    async fn save_state(&self, items: &[(String, Bytes, i64)]) -> Result<(), StoreError> {
        self.inner.save_state(items).await
    }
}

#[async_trait]
impl Purge for BreakerStore {
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, StoreError> {
        self.inner.purge_expired(now_unix_s).await
    }
}
