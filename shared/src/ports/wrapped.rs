//! One forwarding implementation of the metric store's ports for every store wrapper: a wrapper
//! states only what it adds ([`StoreHooks`]: around reads, after bucket writes) and [`Wrapped`]
//! forwards each call of [`BucketStore`], [`SeriesCatalog`], [`StateStore`] and [`Purge`] to the
//! inner store through those hooks. Used by the query routes' circuit breaker and local mode's
//! `/metrics` store timing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::store::{
    ApplyOutcome, BucketDelta, BucketStore, MetricStore, Purge, SeriesCatalog, StateStore,
    StoreError,
};
use crate::domain::stats::BucketStats;
use crate::model::{Resolution, SeriesId, SeriesMeta};

/// What a store wrapper adds to the calls it forwards; every hook defaults to doing nothing.
pub trait StoreHooks: Send + Sync + 'static {
    /// Runs one read of the store (`query_buckets`, `list_services`, `list_series`, `get_series`).
    fn read<'a, T: Send + 'a>(
        &'a self,
        read: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        read
    }

    /// Called after `apply_bucket`/`apply_buckets` with their outcomes and how long they took.
    fn wrote(&self, _outcomes: &[Result<ApplyOutcome, StoreError>], _took: Duration) {}
}

/// `inner` seen through `hooks`; a [`MetricStore`] itself.
pub struct Wrapped<H> {
    inner: Arc<dyn MetricStore>,
    hooks: H,
}

impl<H: StoreHooks> Wrapped<H> {
    pub fn new(inner: Arc<dyn MetricStore>, hooks: H) -> Wrapped<H> {
        Wrapped { inner, hooks }
    }

    pub fn hooks(&self) -> &H {
        &self.hooks
    }
}

#[async_trait]
impl<H: StoreHooks> BucketStore for Wrapped<H> {
    async fn apply_bucket(&self, delta: &BucketDelta) -> Result<ApplyOutcome, StoreError> {
        let started = Instant::now();
        let outcome = self.inner.apply_bucket(delta).await;
        self.hooks
            .wrote(std::slice::from_ref(&outcome), started.elapsed());
        outcome
    }

    async fn apply_buckets(&self, deltas: &[BucketDelta]) -> Vec<Result<ApplyOutcome, StoreError>> {
        let started = Instant::now();
        let outcomes = self.inner.apply_buckets(deltas).await;
        self.hooks.wrote(&outcomes, started.elapsed());
        outcomes
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
        self.hooks
            .read(
                self.inner
                    .query_buckets(series, resolution, from_unix_s, to_unix_s),
            )
            .await
    }
}

#[async_trait]
impl<H: StoreHooks> SeriesCatalog for Wrapped<H> {
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError> {
        self.inner.upsert_series(series).await
    }

    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        self.hooks.read(self.inner.list_services()).await
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        self.hooks.read(self.inner.list_series(service)).await
    }

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError> {
        self.hooks.read(self.inner.get_series(id)).await
    }
}

#[async_trait]
impl<H: StoreHooks> StateStore for Wrapped<H> {
    async fn load_state(&self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StoreError> {
        self.inner.load_state(keys).await
    }

    async fn save_state(&self, items: &[(String, Bytes, i64)]) -> Result<(), StoreError> {
        self.inner.save_state(items).await
    }
}

#[async_trait]
impl<H: StoreHooks> Purge for Wrapped<H> {
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, StoreError> {
        self.inner.purge_expired(now_unix_s).await
    }
}
