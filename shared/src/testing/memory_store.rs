//! Test doubles for the metric ports: an in-memory [`MemoryStore`] that implements the watermark
//! contract, and [`FailingStore`], which wraps any metric store, makes chosen calls fail with
//! `StoreError::Unavailable` or `Corrupt`, and counts the calls that cost writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::stats::BucketStats;
use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{
    ApplyOutcome, BucketDelta, BucketKey, BucketStore, MetricStore, Purge, SequenceNumber,
    SeriesCatalog, StateStore, StoreError,
};
use async_trait::async_trait;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
pub struct StoredBucket {
    pub stats: BucketStats,
    /// Highest sequence number applied, per shard.
    pub watermarks: HashMap<String, SequenceNumber>,
    pub expires_at_unix_s: i64,
}

#[derive(Default)]
struct Inner {
    buckets: BTreeMap<BucketKey, StoredBucket>,
    series: BTreeMap<SeriesId, SeriesMeta>,
    state: HashMap<String, (Bytes, i64)>,
    apply_calls: usize,
}

/// A `MetricStore` in a mutex: what a correct adapter does, without persistence.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub fn bucket(&self, key: BucketKey) -> Option<StoredBucket> {
        self.lock().buckets.get(&key).cloned()
    }

    pub fn buckets(&self) -> BTreeMap<BucketKey, StoredBucket> {
        self.lock().buckets.clone()
    }

    /// Every `apply_bucket` call so far, refused or not.
    pub fn apply_calls(&self) -> usize {
        self.lock().apply_calls
    }

    pub fn state_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().state.keys().cloned().collect();
        keys.sort();
        keys
    }
}

#[async_trait]
impl BucketStore for MemoryStore {
    async fn apply_bucket(&self, delta: &BucketDelta) -> Result<ApplyOutcome, StoreError> {
        let mut inner = self.lock();
        inner.apply_calls += 1;
        let bucket = inner
            .buckets
            .entry(delta.key)
            .or_insert_with(|| StoredBucket {
                stats: BucketStats::new(),
                watermarks: HashMap::new(),
                expires_at_unix_s: delta.expires_at_unix_s,
            });
        if let Some(watermark) = bucket.watermarks.get(&delta.shard_id) {
            if *watermark >= delta.first_seq {
                return Ok(ApplyOutcome::AlreadyApplied {
                    watermark: watermark.clone(),
                });
            }
        }
        bucket.stats.merge(&delta.stats);
        bucket
            .watermarks
            .insert(delta.shard_id.clone(), delta.last_seq.clone());
        bucket.expires_at_unix_s = bucket.expires_at_unix_s.max(delta.expires_at_unix_s);
        let after = bucket.stats.clone();
        if delta.key.resolution == Resolution::OneHour {
            // Derived daily buckets (see `derives_daily`): an applied hour goes into its day.
            let day = BucketKey {
                resolution: Resolution::OneDay,
                start_unix_s: Resolution::OneDay.bucket_start(delta.key.start_unix_s),
                ..delta.key
            };
            // The default 1d retention (this double is not told the retention).
            let expires_at = day.start_unix_s
                + Resolution::OneDay.seconds()
                + Resolution::OneDay.default_retention_seconds();
            let daily = inner.buckets.entry(day).or_insert_with(|| StoredBucket {
                stats: BucketStats::new(),
                watermarks: HashMap::new(),
                expires_at_unix_s: expires_at,
            });
            daily.stats.merge(&delta.stats);
            daily.expires_at_unix_s = daily.expires_at_unix_s.max(expires_at);
        }
        Ok(ApplyOutcome::Applied(after))
    }

    /// Like the redb store, this store builds the 1d buckets from the 1h deltas it applies.
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
        if from_unix_s >= to_unix_s {
            return Ok(Vec::new());
        }
        // Keys order by series, resolution, start: one range of the map, not a scan of it.
        let key = |start_unix_s| BucketKey {
            series,
            resolution,
            start_unix_s,
        };
        Ok(self
            .lock()
            .buckets
            .range(key(from_unix_s)..key(to_unix_s))
            .map(|(k, b)| (k.start_unix_s, b.stats.clone()))
            .collect())
    }
}

#[async_trait]
impl SeriesCatalog for MemoryStore {
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for meta in series {
            let entry = inner.series.entry(meta.id).or_insert_with(|| meta.clone());
            entry.last_seen_unix_s = entry.last_seen_unix_s.max(meta.last_seen_unix_s);
        }
        Ok(())
    }

    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        let mut services: Vec<String> = self
            .lock()
            .series
            .values()
            .map(|m| m.key.service.clone())
            .collect();
        services.sort();
        services.dedup();
        Ok(services)
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        let mut series: Vec<SeriesMeta> = self
            .lock()
            .series
            .values()
            .filter(|m| m.key.service == service)
            .cloned()
            .collect();
        series.sort_by(|a, b| (&a.key.metric, a.id).cmp(&(&b.key.metric, b.id)));
        Ok(series)
    }

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError> {
        Ok(self.lock().series.get(&id).cloned())
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load_state(&self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StoreError> {
        let inner = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| inner.state.get(k).map(|(b, _)| (k.clone(), b.clone())))
            .collect())
    }

    async fn save_state(&self, items: &[(String, Bytes, i64)]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (key, bytes, expires) in items {
            inner.state.insert(key.clone(), (bytes.clone(), *expires));
        }
        Ok(())
    }
}

#[async_trait]
impl Purge for MemoryStore {
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.buckets.len() + inner.state.len();
        inner
            .buckets
            .retain(|_, b| b.expires_at_unix_s > now_unix_s);
        inner.state.retain(|_, (_, expires)| *expires > now_unix_s);
        Ok((before - inner.buckets.len() - inner.state.len()) as u64)
    }
}

/// Wraps any metric store (the [`MemoryStore`], redb, DynamoDB) and fails chosen calls with
/// `StoreError::Unavailable` (writes) or `StoreError::Corrupt` (reads); every other call goes to the
/// wrapped store. It also counts the calls that cost writes ([`FailingStore::calls`]).
pub struct FailingStore<S: ?Sized> {
    pub inner: Arc<S>,
    /// Remaining failures per bucket key.
    failing_buckets: Mutex<HashMap<BucketKey, usize>>,
    /// Remaining failures per (series, resolution), any bucket start.
    failing_series_writes: Mutex<HashMap<(SeriesId, Resolution), usize>>,
    /// Series whose bucket reads fail.
    unreadable: Mutex<Vec<SeriesId>>,
    failing_saves: Mutex<usize>,
    /// What every read does (the store stopped, or hanging): see [`FailingStore::set_reads`].
    reads: Mutex<ReadMode>,
    /// When set, every bucket write and state save fails with this probability.
    random: Mutex<Option<(StdRng, f64)>>,
    applied: AtomicU64,
    already_applied: AtomicU64,
    series_upserted: AtomicU64,
    state_items_saved: AtomicU64,
    injected: AtomicU64,
}

/// How a [`FailingStore`] answers reads (`query_buckets`, `list_services`, `list_series`,
/// `get_series`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Passed on.
    #[default]
    Normal,
    /// `StoreError::Unavailable` at once (the store is stopped).
    Unavailable,
    /// Never answered (a store that hangs).
    Hang,
}

/// What a [`FailingStore`] passed on to its store: the calls that cost writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCalls {
    /// Bucket writes that applied.
    pub applied: u64,
    /// Bucket writes refused by a watermark (a redelivery).
    pub already_applied: u64,
    /// Series metadata items upserted.
    pub series_upserted: u64,
    /// State items saved.
    pub state_items_saved: u64,
    /// Calls failed on purpose (not passed on).
    pub injected_failures: u64,
}

impl<S: MetricStore + ?Sized> FailingStore<S> {
    pub fn new(inner: Arc<S>) -> Arc<Self> {
        Arc::new(FailingStore {
            inner,
            failing_buckets: Mutex::new(HashMap::new()),
            failing_series_writes: Mutex::new(HashMap::new()),
            unreadable: Mutex::new(Vec::new()),
            failing_saves: Mutex::new(0),
            reads: Mutex::new(ReadMode::Normal),
            random: Mutex::new(None),
            applied: AtomicU64::new(0),
            already_applied: AtomicU64::new(0),
            series_upserted: AtomicU64::new(0),
            state_items_saved: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        })
    }

    /// The next `times` writes to `key` fail.
    pub fn fail_bucket_writes(&self, key: BucketKey, times: usize) {
        self.failing_buckets.lock().unwrap().insert(key, times);
    }

    /// The next `times` writes to any bucket of `series` at `resolution` fail.
    pub fn fail_series_writes(&self, series: SeriesId, resolution: Resolution, times: usize) {
        self.failing_series_writes
            .lock()
            .unwrap()
            .insert((series, resolution), times);
    }

    /// Every read of `series`' buckets fails with `StoreError::Corrupt`.
    pub fn fail_bucket_reads(&self, series: SeriesId) {
        self.unreadable.lock().unwrap().push(series);
    }

    /// The next `times` `save_state` calls fail (without saving anything).
    pub fn fail_state_saves(&self, times: usize) {
        *self.failing_saves.lock().unwrap() = times;
    }

    /// Every bucket write and state save fails with `probability` (reproducibly, from `seed`).
    pub fn fail_randomly(&self, probability: f64, seed: u64) {
        *self.random.lock().unwrap() = Some((StdRng::seed_from_u64(seed), probability));
    }

    /// Every read from now on behaves as `mode` (until set back to [`ReadMode::Normal`]).
    pub fn set_reads(&self, mode: ReadMode) {
        *self.reads.lock().unwrap() = mode;
    }

    /// Applies the read mode: `Err` when reads are down; never returns while they hang.
    async fn read_allowed(&self) -> Result<(), StoreError> {
        let mode = *self.reads.lock().unwrap();
        match mode {
            ReadMode::Normal => Ok(()),
            ReadMode::Unavailable => {
                self.injected.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Unavailable(
                    "injected: the store is stopped".into(),
                ))
            }
            ReadMode::Hang => std::future::pending().await,
        }
    }

    pub fn stop_failing(&self) {
        *self.random.lock().unwrap() = None;
        self.failing_buckets.lock().unwrap().clear();
        self.failing_series_writes.lock().unwrap().clear();
        self.unreadable.lock().unwrap().clear();
        *self.failing_saves.lock().unwrap() = 0;
    }

    /// The calls passed on so far.
    pub fn calls(&self) -> StoreCalls {
        StoreCalls {
            applied: self.applied.load(Ordering::Relaxed),
            already_applied: self.already_applied.load(Ordering::Relaxed),
            series_upserted: self.series_upserted.load(Ordering::Relaxed),
            state_items_saved: self.state_items_saved.load(Ordering::Relaxed),
            injected_failures: self.injected.load(Ordering::Relaxed),
        }
    }

    fn random_failure(&self) -> bool {
        match self.random.lock().unwrap().as_mut() {
            Some((rng, probability)) => rng.random_bool(*probability),
            None => false,
        }
    }

    fn take_failure(counter: &mut usize) -> bool {
        if *counter > 0 {
            *counter -= 1;
            true
        } else {
            false
        }
    }
}

#[async_trait]
impl<S: MetricStore + ?Sized> BucketStore for FailingStore<S> {
    async fn apply_bucket(&self, delta: &BucketDelta) -> Result<ApplyOutcome, StoreError> {
        let fail = self
            .failing_buckets
            .lock()
            .unwrap()
            .get_mut(&delta.key)
            .is_some_and(Self::take_failure)
            || self
                .failing_series_writes
                .lock()
                .unwrap()
                .get_mut(&(delta.key.series, delta.key.resolution))
                .is_some_and(Self::take_failure);
        if fail || self.random_failure() {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable(
                "injected bucket write failure".into(),
            ));
        }
        let outcome = self.inner.apply_bucket(delta).await?;
        match outcome {
            ApplyOutcome::Applied(_) => self.applied.fetch_add(1, Ordering::Relaxed),
            ApplyOutcome::AlreadyApplied { .. } => {
                self.already_applied.fetch_add(1, Ordering::Relaxed)
            }
        };
        Ok(outcome)
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
        self.read_allowed().await?;
        if self.unreadable.lock().unwrap().contains(&series) {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Corrupt {
                key: series.to_string(),
                reason: "injected read failure".into(),
            });
        }
        self.inner
            .query_buckets(series, resolution, from_unix_s, to_unix_s)
            .await
    }
}

#[async_trait]
impl<S: MetricStore + ?Sized> SeriesCatalog for FailingStore<S> {
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError> {
        self.series_upserted
            .fetch_add(series.len() as u64, Ordering::Relaxed);
        self.inner.upsert_series(series).await
    }

    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        self.read_allowed().await?;
        self.inner.list_services().await
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        self.read_allowed().await?;
        self.inner.list_series(service).await
    }

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError> {
        self.read_allowed().await?;
        self.inner.get_series(id).await
    }
}

#[async_trait]
impl<S: MetricStore + ?Sized> StateStore for FailingStore<S> {
    async fn load_state(&self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StoreError> {
        self.inner.load_state(keys).await
    }

    async fn save_state(&self, items: &[(String, Bytes, i64)]) -> Result<(), StoreError> {
        let fail = Self::take_failure(&mut self.failing_saves.lock().unwrap());
        if fail || self.random_failure() {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable(
                "injected state save failure".into(),
            ));
        }
        self.state_items_saved
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        self.inner.save_state(items).await
    }
}

#[async_trait]
impl<S: MetricStore + ?Sized> Purge for FailingStore<S> {
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, StoreError> {
        self.inner.purge_expired(now_unix_s).await
    }
}
