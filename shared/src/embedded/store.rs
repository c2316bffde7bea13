//! The local [`MetricStore`](crate::ports::MetricStore): one redb file holding buckets, the series registry and aggregator state.
//!
//! Keys are byte strings built so that redb's byte order is the order queries need: a bucket key is
//! `series id (u64 BE) | resolution code | start (order-preserving i64 BE)`, so one series and
//! resolution is a contiguous, time-ordered range. Expiry and `last_seen` have index tables keyed by
//! time first, so purging reads only what has expired instead of scanning everything.
//!
//! Bucket items are a compact binary encoding with a version byte (see [`encode_item`]); anything that
//! does not decode is reported as [`StoreError::Corrupt`], never a panic. Every port call is one redb
//! transaction run on the blocking pool; writes are durable when they return — unless the store was
//! opened with [`RedbStore::with_deferred_durability`] (local mode): then the aggregator's writes are
//! redb `Durability::None` commits (no fsync) and [`RedbStore::sync`] makes everything committed so far
//! durable in one fsync. The local event-source mapper calls it before it saves a stream checkpoint, so
//! whatever the checkpoint says is processed is on disk, and the stream log replays the rest after a
//! crash (redb reverts to its last durable commit: a prefix of the commits, watermarks included).
//!
//! # Daily buckets
//!
//! The store builds the `1d` buckets from the `1h` deltas it applies
//! ([`BucketStore::derives_daily`]), so the aggregator writes three buckets per point, not four. A
//! time `T` ([`FOLDED_THROUGH`], only moving forward; a new file starts before every hour, a file
//! written by an earlier version at the next hour) splits the hours:
//! - a 1h delta for an hour before `T` is merged into the hour's 1d bucket too, in the same
//!   transaction (its watermark check on the 1h bucket makes that exactly once);
//! - an hour at or after `T` (the current one) is only written to its 1h bucket and listed in
//!   [`UNFOLDED_HOURS`] when created. [`Purge::purge_expired`] first moves `T` to the current hour,
//!   merging each listed hour into its day (one transaction, before anything expires), then purges;
//! - a read of 1d buckets is the stored 1d buckets merged with the unfolded hours of their days.
//!
//! Every applied 1h delta is so counted exactly once in its day, whenever it arrives. 1d deltas sent by the aggregator (a point whose 1h bucket is
//! already past its retention) are applied as before, under their own watermarks.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::ordered_keys::{from_ordered_i64, ordered_i64, service_prefix, take_expired, time_key};
use super::redb_file::{blocking, RedbFile};
use super::{unix_now_ms, EmbeddedError};
use crate::domain::stats::BucketStats;
use crate::model::{Resolution, Retention, SeriesId, SeriesMeta};
use crate::ports::{
    ApplyOutcome, BucketDelta, BucketKey, BucketStore, Purge, SequenceNumber, SeriesCatalog,
    StateStore, StoreError,
};
use crate::sketch::Sketch;
use crate::spans::hex;

/// bucket key → encoded bucket item.
const BUCKETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("buckets");
/// expires_at | bucket key → ().
const BUCKET_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("bucket_expiry");
/// series id → encoded [`SeriesMeta`].
const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
/// service length (u32 BE) | service | metric | 0x00 | series id → ().
const SERIES_BY_SERVICE: TableDefinition<&[u8], ()> = TableDefinition::new("series_by_service");
/// last_seen | series id → ().
const SERIES_BY_LAST_SEEN: TableDefinition<&[u8], ()> = TableDefinition::new("series_by_last_seen");
/// Services with at least one registered series.
const SERVICES: TableDefinition<&str, ()> = TableDefinition::new("services");
/// state key → version | expires_at (i64 LE) | opaque bytes.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// expires_at | state key → ().
const STATE_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("state_expiry");
/// Small named values: [`FOLDED_THROUGH`].
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
/// `start (order-preserving i64 BE) | 1h bucket key` of every 1h bucket at or after
/// [`FOLDED_THROUGH`]: the hours not yet merged into their day's 1d bucket.
const UNFOLDED_HOURS: TableDefinition<&[u8], ()> = TableDefinition::new("unfolded_hours");
/// Daily buckets (see "Daily buckets" in the module documentation): every 1h bucket that starts before
/// this (unix seconds) is merged into its 1d bucket, and 1h deltas before it are applied to both.
const FOLDED_THROUGH: &str = "daily_folded_through";

const ITEM_VERSION: u8 = 1;
const SERIES_VERSION: u8 = 1;
const STATE_VERSION: u8 = 1;
const HAS_MIN: u8 = 0b01;
const HAS_MAX: u8 = 0b10;
/// redb's page cache (redb's default is 1 GiB). Local mode shares the machine with everything else;
/// 10k active series' current buckets and state take ~10 MB of pages.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// redb-backed [`MetricStore`](crate::ports::MetricStore). Clones share one database.
#[derive(Clone)]
pub struct RedbStore {
    db: RedbFile,
    retention: Retention,
    applies: Arc<ApplyQueue>,
    /// Writes commit without fsync until [`RedbStore::sync`]; see the module documentation.
    deferred: Deferred,
    /// What the registry holds, per series id: (fingerprint of kind, unit, service and metric;
    /// `last_seen`), filled after each committed upsert. Every batch re-registers its series, and
    /// an upsert that would change nothing (same fingerprint, `last_seen` not newer) is skipped
    /// without a transaction or a JSON decode. Cleared by purges and when over
    /// [`MAX_REGISTERED_CACHE`] entries, so it only ever skips writes that are no-ops.
    registered: Arc<Mutex<foldhash::HashMap<u64, (u64, i64)>>>,
    /// [`RedbStore::with_last_seen_step`]: a re-registration that moves only `last_seen`, by less
    /// than this many seconds, is skipped (0: every newer `last_seen` is written).
    last_seen_step_s: i64,
}

/// Series remembered by [`RedbStore`]'s registry cache (~40 bytes each: ≤ 8 MB); beyond it the cache
/// starts over and the next upserts of each series write as before.
const MAX_REGISTERED_CACHE: usize = 200_000;

/// Default of [`RedbStore::with_sync_every`]: every 8th aggregator commit is durable.
pub const DEFAULT_SYNC_EVERY_COMMITS: u32 = 8;

/// How the aggregator's commits are made durable (see [`RedbStore::with_deferred_durability`]).
#[derive(Clone, Default)]
struct Deferred {
    /// `None`: every commit is durable.
    unsynced: Option<Arc<AtomicU32>>,
    /// A commit that would be this many non-durable commits after the last durable one is made
    /// durable itself; 0: only [`RedbStore::sync`] is.
    every: u32,
}

impl Deferred {
    /// Whether the next commit may skip its fsync; counts it.
    fn next_commit_deferred(&self) -> bool {
        let Some(unsynced) = &self.unsynced else {
            return false;
        };
        let count = unsynced.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if self.every > 0 && count >= self.every {
            unsynced.store(0, Ordering::Release);
            return false;
        }
        true
    }

    fn synced(&self) {
        if let Some(unsynced) = &self.unsynced {
            unsynced.store(0, Ordering::Release);
        }
    }
}

/// What must match for an upsert to be a no-op besides `last_seen` (the id is the key's hash).
fn registry_fingerprint(meta: &SeriesMeta) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut hasher = foldhash::fast::FixedState::with_seed(0x5e71e5).build_hasher();
    meta.kind.hash(&mut hasher);
    meta.unit.hash(&mut hasher);
    meta.key.service.hash(&mut hasher);
    meta.key.metric.hash(&mut hasher);
    hasher.finish()
}

/// Group commit for `apply_bucket`: the aggregator writes many buckets concurrently, and one redb
/// transaction (one fsync) for all that are waiting is far cheaper than one each.
#[derive(Default)]
struct ApplyQueue {
    waiting: Mutex<Vec<Arc<PendingApply>>>,
    /// Held by the thread committing a group.
    committer: Mutex<()>,
}

struct PendingApply {
    delta: BucketDelta,
    outcome: Mutex<Option<Result<ApplyOutcome, StoreError>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole, never left half-written, so a poisoned lock is usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedbStore {
    /// Resolves once the file is closed: every clone and every call still running has dropped it.
    pub fn released(&self) -> super::Released {
        self.db.released()
    }

    /// Opens (or creates) the store at `path` with the default retention.
    pub fn open(path: &Path) -> Result<RedbStore, EmbeddedError> {
        RedbStore::open_with_retention(path, Retention::default())
    }

    /// Opens (or creates) the store at `path`. The aggregator gives every bucket its `expires_at`;
    /// `retention` decides only when a series that stopped reporting leaves the registry (after the
    /// longest retention, when its last buckets are gone too).
    pub fn open_with_retention(
        path: &Path,
        retention: Retention,
    ) -> Result<RedbStore, EmbeddedError> {
        RedbStore::open_with_cache(path, retention, DEFAULT_CACHE_BYTES)
    }

    /// [`RedbStore::open_with_retention`] with a page cache of `cache_bytes` (redb's own default is
    /// 1 GiB, which an idle local mode would grow into).
    pub fn open_with_cache(
        path: &Path,
        retention: Retention,
        cache_bytes: usize,
    ) -> Result<RedbStore, EmbeddedError> {
        Ok(RedbStore {
            db: RedbFile::open(path, "store", Some(cache_bytes), create_tables)?,
            retention,
            applies: Arc::new(ApplyQueue::default()),
            deferred: Deferred::default(),
            registered: Arc::default(),
            last_seen_step_s: 0,
        })
    }

    /// Stores a series' `last_seen` in steps of `seconds`: a re-registration whose only change is
    /// a `last_seen` less than `seconds` newer than the stored one is skipped (kind, unit or names
    /// changed are always written; an older `last_seen` never is). The stored value then trails
    /// the newest point by less than `seconds`. Every batch re-registers its series, and a series
    /// sending once a second would otherwise rewrite its registry entry and two index entries per
    /// batch — with deferred durability each such commit copies those pages anew until the next
    /// durable commit, which is most of what redb holds under load (docs/performance.md
    /// "Round 6"). 0 (the default) writes every newer `last_seen`.
    pub fn with_last_seen_step(mut self, seconds: u32) -> RedbStore {
        self.last_seen_step_s = i64::from(seconds);
        self
    }

    /// Bucket, series and state writes commit without an fsync (redb `Durability::None`): they are
    /// visible to readers at once but reach the disk only with the next [`RedbStore::sync`] (or
    /// purge). Only for a caller that can replay what a crash takes back — local mode's mapper syncs
    /// before each stream checkpoint.
    pub fn with_deferred_durability(mut self) -> RedbStore {
        self.deferred = Deferred {
            unsynced: Some(Arc::default()),
            every: DEFAULT_SYNC_EVERY_COMMITS,
        };
        self
    }

    /// With deferred durability: every `commits`-th aggregator commit is durable (fsync) as well
    /// as each [`RedbStore::sync`]; 0 = only the syncs. Bounds what redb holds between syncs: a
    /// non-durable commit's freed pages are reused only after a durable commit, so until then every
    /// commit writes its changed pages to new places, and the page cache fills with them.
    pub fn with_sync_every(mut self, commits: u32) -> RedbStore {
        self.deferred.every = commits;
        self
    }

    /// Makes every write committed so far durable: one empty `Durability::Immediate` commit (one
    /// fsync), which persists the non-durable commits before it.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let deferred = self.deferred.clone();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            txn.commit().map_err(unavailable)?;
            deferred.synced();
            Ok(())
        })
        .await
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }
}

/// A write transaction for the aggregator's writes: without fsync when `deferred` says so.
fn begin_write(db: &Database, deferred: &Deferred) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(unavailable)?;
    if deferred.next_commit_deferred() {
        txn.set_durability(redb::Durability::None)
            .map_err(unavailable)?;
    }
    Ok(txn)
}

fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    let fresh = txn
        .open_table(BUCKETS)?
        .is_empty()
        .map_err(redb::TableError::Storage)?;
    txn.open_table(BUCKET_EXPIRY)?;
    txn.open_table(SERIES)?;
    txn.open_table(SERIES_BY_SERVICE)?;
    txn.open_table(SERIES_BY_LAST_SEEN)?;
    txn.open_table(SERVICES)?;
    txn.open_table(STATE)?;
    txn.open_table(STATE_EXPIRY)?;
    txn.open_table(UNFOLDED_HOURS)?;
    let mut meta = txn.open_table(META)?;
    if meta
        .get(FOLDED_THROUGH)
        .map_err(redb::TableError::Storage)?
        .is_none()
    {
        // A file with buckets comes from a version whose aggregator wrote the 1d deltas itself
        // (up to the current hour): fold only hours from the next one. A new file folds every hour.
        let through = if fresh {
            i64::MIN
        } else {
            Resolution::OneHour.bucket_start(unix_now_ms() / 1000) + 3600
        };
        meta.insert(FOLDED_THROUGH, through)
            .map_err(redb::TableError::Storage)?;
    }
    Ok(())
}

fn unavailable(e: impl Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl BucketStore for RedbStore {
    async fn apply_bucket(&self, delta: &BucketDelta) -> Result<ApplyOutcome, StoreError> {
        let request = Arc::new(PendingApply {
            delta: delta.clone(),
            outcome: Mutex::new(None),
        });
        lock(&self.applies.waiting).push(request.clone());
        let queue = self.applies.clone();
        let deferred = self.deferred.clone();
        let retention = self.retention;
        blocking(&self.db, move |db| {
            let _committer = lock(&queue.committer);
            if let Some(outcome) = lock(&request.outcome).take() {
                // Committed by the thread that held the committer before us.
                return outcome;
            }
            let group = std::mem::take(&mut *lock(&queue.waiting));
            match apply_group(
                db,
                &deferred,
                &retention,
                group.iter().map(|member| &member.delta),
            ) {
                Ok(outcomes) => {
                    for (member, outcome) in group.iter().zip(outcomes) {
                        *lock(&member.outcome) = Some(outcome);
                    }
                }
                Err(e) => {
                    for member in &group {
                        *lock(&member.outcome) = Some(Err(copy_error(&e)));
                    }
                }
            }
            lock(&request.outcome).take().unwrap_or_else(|| {
                Err(StoreError::Unavailable(
                    "bucket write was not part of any commit".into(),
                ))
            })
        })
        .await
    }

    /// All of `deltas` in one transaction (one fsync), on one blocking thread.
    async fn apply_buckets(&self, deltas: &[BucketDelta]) -> Vec<Result<ApplyOutcome, StoreError>> {
        if deltas.is_empty() {
            return Vec::new();
        }
        let deltas = deltas.to_vec();
        let count = deltas.len();
        let deferred = self.deferred.clone();
        let retention = self.retention;
        let outcomes = blocking(&self.db, move |db| {
            apply_group(db, &deferred, &retention, deltas.iter())
        })
        .await;
        match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => (0..count).map(|_| Err(copy_error(&e))).collect(),
        }
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
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let buckets = txn.open_table(BUCKETS).map_err(unavailable)?;
            let stored = read_range(&buckets, series, resolution, from_unix_s, to_unix_s)?;
            if resolution != Resolution::OneDay {
                return Ok(stored);
            }
            // The days' hours not folded into them yet (see the module documentation).
            let folded_through = folded_through(&txn.open_table(META).map_err(unavailable)?)?;
            let day = |t: i64| Resolution::OneDay.bucket_start(t.saturating_add(86_399));
            let hours = read_range(
                &buckets,
                series,
                Resolution::OneHour,
                day(from_unix_s).max(folded_through),
                day(to_unix_s),
            )?;
            if hours.is_empty() {
                return Ok(stored);
            }
            let mut days: BTreeMap<i64, BucketStats> = stored.into_iter().collect();
            for (start, stats) in hours {
                days.entry(Resolution::OneDay.bucket_start(start))
                    .or_default()
                    .merge(&stats);
            }
            Ok(days.into_iter().collect())
        })
        .await
    }

    fn derives_daily(&self) -> bool {
        true
    }
}

#[async_trait]
impl SeriesCatalog for RedbStore {
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError> {
        // A newer `last_seen` is written once it is at least one step newer (1 s: any newer one).
        let step = self.last_seen_step_s.max(1);
        let changed: Vec<(SeriesMeta, u64)> = {
            let registered = lock(&self.registered);
            series
                .iter()
                .map(|meta| (meta, registry_fingerprint(meta)))
                .filter(|(meta, fingerprint)| {
                    !matches!(registered.get(&meta.id.0),
                        Some((known, seen)) if known == fingerprint
                            && meta.last_seen_unix_s.saturating_sub(*seen) < step)
                })
                .map(|(meta, fingerprint)| (meta.clone(), fingerprint))
                .collect()
        };
        if changed.is_empty() {
            return Ok(());
        }
        let deferred = self.deferred.clone();
        let registered = self.registered.clone();
        blocking(&self.db, move |db| {
            let txn = begin_write(db, &deferred)?;
            let metas: Vec<SeriesMeta> = changed.iter().map(|(meta, _)| meta.clone()).collect();
            let stored = upsert_series_in(&txn, &metas)?;
            // Held across the commit (as the purge does), so the cache follows the commit order.
            let mut cache = lock(&registered);
            txn.commit().map_err(unavailable)?;
            if cache.len() + stored.len() > MAX_REGISTERED_CACHE {
                cache.clear();
            }
            for ((meta, fingerprint), last_seen) in changed.iter().zip(stored) {
                cache.insert(meta.id.0, (*fingerprint, last_seen));
            }
            Ok(())
        })
        .await
    }

    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let services = txn.open_table(SERVICES).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in services.iter().map_err(unavailable)? {
                let (service, ()) = entry.map(|(k, _)| (k, ())).map_err(unavailable)?;
                out.push(service.value().to_string());
            }
            Ok(out)
        })
        .await
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        let service = service.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let index = txn.open_table(SERIES_BY_SERVICE).map_err(unavailable)?;
            let registry = txn.open_table(SERIES).map_err(unavailable)?;
            let prefix = service_prefix(&service);
            let mut out = Vec::new();
            for entry in index.range::<&[u8]>(&prefix[..]..).map_err(unavailable)? {
                let (key, _) = entry.map_err(unavailable)?;
                let key = key.value();
                if !key.starts_with(&prefix) {
                    break;
                }
                let Some(id) = trailing_u64(key) else {
                    continue;
                };
                if let Some(value) = registry.get(id).map_err(unavailable)? {
                    let meta = decode_series(id, value.value())?;
                    if meta.key.service == service {
                        out.push(meta);
                    }
                }
            }
            // The index is already in this order for ordinary names; sorting makes it exact even
            // for metric names containing NUL.
            out.sort_by(|a, b| (&a.key.metric, a.id).cmp(&(&b.key.metric, b.id)));
            Ok(out)
        })
        .await
    }

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let registry = txn.open_table(SERIES).map_err(unavailable)?;
            match registry.get(id.0).map_err(unavailable)? {
                Some(value) => decode_series(id.0, value.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }
}

#[async_trait]
impl StateStore for RedbStore {
    async fn load_state(&self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        let now = unix_now_ms() / 1000;
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let state = txn.open_table(STATE).map_err(unavailable)?;
            let mut out = Vec::new();
            for key in keys {
                let Some(value) = state.get(key.as_str()).map_err(unavailable)? else {
                    continue;
                };
                let (expires_at, data) =
                    decode_state(value.value()).map_err(|reason| StoreError::Corrupt {
                        key: format!("state {key}"),
                        reason,
                    })?;
                // Expired but not yet purged reads as absent, as it will be after the purge.
                if expires_at >= now {
                    out.push((key, Bytes::copy_from_slice(data)));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn save_state(&self, items: &[(String, Bytes, i64)]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let items = items.to_vec();
        let deferred = self.deferred.clone();
        blocking(&self.db, move |db| {
            let txn = begin_write(db, &deferred)?;
            {
                let mut state = txn.open_table(STATE).map_err(unavailable)?;
                let mut expiry = txn.open_table(STATE_EXPIRY).map_err(unavailable)?;
                for (key, data, expires_at) in &items {
                    let old_expiry = state
                        .get(key.as_str())
                        .map_err(unavailable)?
                        .and_then(|old| decode_state(old.value()).ok().map(|(at, _)| at));
                    if let Some(old) = old_expiry {
                        expiry
                            .remove(&time_key(old, key.as_bytes())[..])
                            .map_err(unavailable)?;
                    }
                    state
                        .insert(key.as_str(), &encode_state(*expires_at, data)[..])
                        .map_err(unavailable)?;
                    expiry
                        .insert(&time_key(*expires_at, key.as_bytes())[..], ())
                        .map_err(unavailable)?;
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl Purge for RedbStore {
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, StoreError> {
        let retention = self.retention;
        let registered = self.registered.clone();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            // Before anything expires: every closed hour goes into its day.
            fold_hours(
                &txn,
                Resolution::OneHour.bucket_start(now_unix_s),
                &retention,
            )?;
            let mut deleted = purge_buckets(&txn, now_unix_s)?;
            deleted += purge_state(&txn, now_unix_s)?;
            let longest = Resolution::ALL
                .iter()
                .map(|r| retention.seconds(*r))
                .max()
                .unwrap_or(0);
            deleted += purge_series(&txn, now_unix_s.saturating_sub(longest))?;
            // Held across the commit so that no upsert refills it with a purged series meanwhile.
            let mut cache = lock(&registered);
            txn.commit().map_err(unavailable)?;
            cache.clear();
            Ok(deleted)
        })
        .await
    }
}

/// Applies every waiting delta in one transaction, in queue order (so two deltas for one bucket see
/// each other's watermark). A corrupt item fails only its own delta; a storage failure fails all.
fn apply_group<'a>(
    db: &Database,
    deferred: &Deferred,
    retention: &Retention,
    group: impl ExactSizeIterator<Item = &'a BucketDelta>,
) -> Result<Vec<Result<ApplyOutcome, StoreError>>, StoreError> {
    let txn = begin_write(db, deferred)?;
    let mut outcomes = Vec::with_capacity(group.len());
    let mut wrote = false;
    let result = (|| {
        let mut buckets = txn.open_table(BUCKETS).map_err(unavailable)?;
        let mut expiry = txn.open_table(BUCKET_EXPIRY).map_err(unavailable)?;
        let mut unfolded = txn.open_table(UNFOLDED_HOURS).map_err(unavailable)?;
        let mut daily = Daily {
            folded_through: folded_through(&txn.open_table(META).map_err(unavailable)?)?,
            retention,
            unfolded: &mut unfolded,
        };
        for delta in group {
            match apply_in(&mut buckets, &mut expiry, &mut daily, delta) {
                Ok(outcome) => {
                    wrote |= matches!(outcome, ApplyOutcome::Applied(_));
                    outcomes.push(Ok(outcome));
                }
                Err(e @ StoreError::Corrupt { .. }) => outcomes.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = txn.abort();
        return Err(e);
    }
    if wrote {
        txn.commit().map_err(unavailable)?;
    } else {
        txn.abort().map_err(unavailable)?;
    }
    Ok(outcomes)
}

/// The stored buckets of `series` at `resolution` with `from <= start < to`, oldest first.
fn read_range(
    buckets: &impl ReadableTable<&'static [u8], &'static [u8]>,
    series: SeriesId,
    resolution: Resolution,
    from_unix_s: i64,
    to_unix_s: i64,
) -> Result<Vec<(i64, BucketStats)>, StoreError> {
    let mut out = Vec::new();
    if from_unix_s >= to_unix_s {
        return Ok(out);
    }
    let from = bucket_key(&BucketKey {
        series,
        resolution,
        start_unix_s: from_unix_s,
    });
    let to = bucket_key(&BucketKey {
        series,
        resolution,
        start_unix_s: to_unix_s,
    });
    for entry in buckets
        .range::<&[u8]>(&from[..]..&to[..])
        .map_err(unavailable)?
    {
        let (key, value) = entry.map_err(unavailable)?;
        let key = key.value();
        let start = decode_bucket_start(key).ok_or_else(|| StoreError::Corrupt {
            key: hex(key),
            reason: "bucket key has the wrong length".into(),
        })?;
        let item = decode_item(value.value()).map_err(|reason| StoreError::Corrupt {
            key: describe_bucket(series, resolution, start),
            reason,
        })?;
        out.push((start, item.stats));
    }
    Ok(out)
}

/// `StoreError` is not `Clone`; a failed group commit reports the same error to every member.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Throttled(m) => StoreError::Throttled(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt { key, reason } => StoreError::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        },
    }
}

/// What [`apply_in`] needs to keep the daily buckets (see the module documentation).
struct Daily<'t, 'a> {
    folded_through: i64,
    retention: &'a Retention,
    unfolded: &'a mut redb::Table<'t, &'static [u8], ()>,
}

/// [`FOLDED_THROUGH`] as stored (a file without it folds nothing before the epoch's hours).
fn folded_through(meta: &impl ReadableTable<&'static str, i64>) -> Result<i64, StoreError> {
    Ok(meta
        .get(FOLDED_THROUGH)
        .map_err(unavailable)?
        .map_or(i64::MIN, |v| v.value()))
}

/// The 1d bucket holding 1h bucket `hour`, with its expiry under `retention`.
fn day_of(hour: &BucketKey, retention: &Retention) -> (BucketKey, i64) {
    let day = BucketKey {
        series: hour.series,
        resolution: Resolution::OneDay,
        start_unix_s: Resolution::OneDay.bucket_start(hour.start_unix_s),
    };
    let expires_at = day
        .start_unix_s
        .saturating_add(Resolution::OneDay.seconds())
        .saturating_add(retention.seconds(Resolution::OneDay));
    (day, expires_at)
}

/// Decodes the stored item at `key` (of bucket `what`), if any.
fn read_item(
    buckets: &redb::Table<&'static [u8], &'static [u8]>,
    key: &[u8],
    what: &BucketKey,
) -> Result<Option<BucketItem>, StoreError> {
    match buckets.get(key).map_err(unavailable)? {
        Some(value) => Ok(Some(decode_item(value.value()).map_err(|reason| {
            StoreError::Corrupt {
                key: describe_bucket(what.series, what.resolution, what.start_unix_s),
                reason,
            }
        })?)),
        None => Ok(None),
    }
}

/// Writes `item` at `key`, moving its expiry index entry from `old_expiry`.
fn write_item(
    buckets: &mut redb::Table<&'static [u8], &'static [u8]>,
    expiry: &mut redb::Table<&'static [u8], ()>,
    key: &[u8],
    item: &BucketItem,
    old_expiry: Option<i64>,
) -> Result<(), StoreError> {
    buckets
        .insert(key, &encode_item(item)[..])
        .map_err(unavailable)?;
    if old_expiry != Some(item.expires_at_unix_s) {
        if let Some(old) = old_expiry {
            expiry
                .remove(&time_key(old, key)[..])
                .map_err(unavailable)?;
        }
        expiry
            .insert(&time_key(item.expires_at_unix_s, key)[..], ())
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Merges `stats` of 1h bucket `hour` into its day's 1d bucket (no watermark: the 1h bucket's
/// watermark already decided that they are applied once).
fn merge_into_day(
    buckets: &mut redb::Table<&'static [u8], &'static [u8]>,
    expiry: &mut redb::Table<&'static [u8], ()>,
    hour: &BucketKey,
    stats: &BucketStats,
    retention: &Retention,
) -> Result<(), StoreError> {
    let (day, expires_at) = day_of(hour, retention);
    let key = bucket_key(&day);
    let existing = read_item(buckets, &key, &day)?;
    let old_expiry = existing.as_ref().map(|item| item.expires_at_unix_s);
    let mut item = existing.unwrap_or_default();
    item.stats.merge(stats);
    item.expires_at_unix_s = expires_at;
    write_item(buckets, expiry, &key, &item, old_expiry)
}

/// Moves [`FOLDED_THROUGH`] forward to `to`: merges every unfolded hour before it into its day.
/// A corrupt hour is left out of its day (reported), so that it cannot stop purges forever.
fn fold_hours(txn: &WriteTransaction, to: i64, retention: &Retention) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META).map_err(unavailable)?;
    if folded_through(&meta)? >= to {
        return Ok(0);
    }
    let mut buckets = txn.open_table(BUCKETS).map_err(unavailable)?;
    let mut expiry = txn.open_table(BUCKET_EXPIRY).map_err(unavailable)?;
    let mut unfolded = txn.open_table(UNFOLDED_HOURS).map_err(unavailable)?;
    let mut folded = 0;
    for key in take_expired::<StoreError>(&mut unfolded, to)? {
        let (Some(start), Ok(series)) = (
            decode_bucket_start(&key),
            key.get(..8)
                .unwrap_or_default()
                .try_into()
                .map(u64::from_be_bytes),
        ) else {
            continue;
        };
        let hour = BucketKey {
            series: SeriesId(series),
            resolution: Resolution::OneHour,
            start_unix_s: start,
        };
        match read_item(&buckets, &key, &hour) {
            Ok(Some(item)) => {
                merge_into_day(&mut buckets, &mut expiry, &hour, &item.stats, retention)?;
                folded += 1;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "leaving a corrupt hour out of its day"),
        }
    }
    meta.insert(FOLDED_THROUGH, to).map_err(unavailable)?;
    Ok(folded)
}

/// The conditional merge of [`BucketStore::apply_bucket`], inside the caller's transaction.
fn apply_in(
    buckets: &mut redb::Table<&'static [u8], &'static [u8]>,
    expiry: &mut redb::Table<&'static [u8], ()>,
    daily: &mut Daily<'_, '_>,
    delta: &BucketDelta,
) -> Result<ApplyOutcome, StoreError> {
    let key = bucket_key(&delta.key);
    let existing = read_item(buckets, &key, &delta.key)?;
    let old_expiry = existing.as_ref().map(|item| item.expires_at_unix_s);
    let mut item = existing.unwrap_or_default();
    if let Some(watermark) = item.watermarks.get(&delta.shard_id) {
        if *watermark >= delta.first_seq {
            return Ok(ApplyOutcome::AlreadyApplied {
                watermark: watermark.clone(),
            });
        }
    }
    item.stats.merge(&delta.stats);
    item.watermarks
        .insert(delta.shard_id.clone(), delta.last_seq.clone());
    item.expires_at_unix_s = delta.expires_at_unix_s;
    write_item(buckets, expiry, &key, &item, old_expiry)?;
    if delta.key.resolution == Resolution::OneHour {
        if delta.key.start_unix_s < daily.folded_through {
            merge_into_day(buckets, expiry, &delta.key, &delta.stats, daily.retention)?;
        } else if old_expiry.is_none() {
            daily
                .unfolded
                .insert(&time_key(delta.key.start_unix_s, &key)[..], ())
                .map_err(unavailable)?;
        }
    }
    Ok(ApplyOutcome::Applied(item.stats))
}

/// Registers `series`; returns the `last_seen` each now has in the registry, in order.
fn upsert_series_in(txn: &WriteTransaction, series: &[SeriesMeta]) -> Result<Vec<i64>, StoreError> {
    let mut stored = Vec::with_capacity(series.len());
    let mut registry = txn.open_table(SERIES).map_err(unavailable)?;
    let mut by_service = txn.open_table(SERIES_BY_SERVICE).map_err(unavailable)?;
    let mut by_last_seen = txn.open_table(SERIES_BY_LAST_SEEN).map_err(unavailable)?;
    let mut services = txn.open_table(SERVICES).map_err(unavailable)?;
    for meta in series {
        let id = meta.id.0;
        let old = match registry.get(id).map_err(unavailable)? {
            Some(value) => match decode_series(id, value.value()) {
                Ok(old) => Some(old),
                Err(e) => {
                    // Replacing a corrupt entry is better than refusing the series forever.
                    tracing::warn!(series = %meta.id, error = %e, "overwriting a corrupt registry entry");
                    None
                }
            },
            None => None,
        };
        let mut new = meta.clone();
        if let Some(old) = &old {
            new.last_seen_unix_s = new.last_seen_unix_s.max(old.last_seen_unix_s);
            let old_index = series_index_key(&old.key.service, &old.key.metric, id);
            if old_index != series_index_key(&new.key.service, &new.key.metric, id) {
                by_service.remove(&old_index[..]).map_err(unavailable)?;
                if !service_has_series(&by_service, &old.key.service)? {
                    services
                        .remove(old.key.service.as_str())
                        .map_err(unavailable)?;
                }
            }
            by_last_seen
                .remove(&time_id_key(old.last_seen_unix_s, id)[..])
                .map_err(unavailable)?;
        }
        registry
            .insert(id, &encode_series(&new)?[..])
            .map_err(unavailable)?;
        by_service
            .insert(
                &series_index_key(&new.key.service, &new.key.metric, id)[..],
                (),
            )
            .map_err(unavailable)?;
        by_last_seen
            .insert(&time_id_key(new.last_seen_unix_s, id)[..], ())
            .map_err(unavailable)?;
        services
            .insert(new.key.service.as_str(), ())
            .map_err(unavailable)?;
        stored.push(new.last_seen_unix_s);
    }
    Ok(stored)
}

fn service_has_series(
    by_service: &impl ReadableTable<&'static [u8], ()>,
    service: &str,
) -> Result<bool, StoreError> {
    let prefix = service_prefix(service);
    let mut range = by_service
        .range::<&[u8]>(&prefix[..]..)
        .map_err(unavailable)?;
    match range.next() {
        Some(entry) => {
            let (key, _) = entry.map_err(unavailable)?;
            Ok(key.value().starts_with(&prefix))
        }
        None => Ok(false),
    }
}

fn purge_buckets(txn: &WriteTransaction, now: i64) -> Result<u64, StoreError> {
    let mut buckets = txn.open_table(BUCKETS).map_err(unavailable)?;
    let mut expiry = txn.open_table(BUCKET_EXPIRY).map_err(unavailable)?;
    let mut deleted = 0;
    for key in take_expired::<StoreError>(&mut expiry, now)? {
        if buckets.remove(&key[..]).map_err(unavailable)?.is_some() {
            deleted += 1;
        }
    }
    Ok(deleted)
}

fn purge_state(txn: &WriteTransaction, now: i64) -> Result<u64, StoreError> {
    let mut state = txn.open_table(STATE).map_err(unavailable)?;
    let mut expiry = txn.open_table(STATE_EXPIRY).map_err(unavailable)?;
    let mut deleted = 0;
    for key in take_expired::<StoreError>(&mut expiry, now)? {
        let Ok(key) = std::str::from_utf8(&key) else {
            continue;
        };
        if state.remove(key).map_err(unavailable)?.is_some() {
            deleted += 1;
        }
    }
    Ok(deleted)
}

fn purge_series(txn: &WriteTransaction, seen_before: i64) -> Result<u64, StoreError> {
    let mut registry = txn.open_table(SERIES).map_err(unavailable)?;
    let mut by_service = txn.open_table(SERIES_BY_SERVICE).map_err(unavailable)?;
    let mut by_last_seen = txn.open_table(SERIES_BY_LAST_SEEN).map_err(unavailable)?;
    let mut services = txn.open_table(SERVICES).map_err(unavailable)?;
    let mut deleted = 0;
    for id_bytes in take_expired::<StoreError>(&mut by_last_seen, seen_before)? {
        let Some(id) = trailing_u64(&id_bytes) else {
            continue;
        };
        let old = registry.remove(id).map_err(unavailable)?;
        let Some(old) = old else { continue };
        deleted += 1;
        let Ok(meta) = decode_series(id, old.value()) else {
            continue;
        };
        drop(old);
        by_service
            .remove(&series_index_key(&meta.key.service, &meta.key.metric, id)[..])
            .map_err(unavailable)?;
        if !service_has_series(&by_service, &meta.key.service)? {
            services
                .remove(meta.key.service.as_str())
                .map_err(unavailable)?;
        }
    }
    Ok(deleted)
}

// ---- keys ----

fn resolution_code(resolution: Resolution) -> u8 {
    match resolution {
        Resolution::OneMinute => 1,
        Resolution::FiveMinutes => 2,
        Resolution::OneHour => 3,
        Resolution::OneDay => 4,
    }
}

fn bucket_key(key: &BucketKey) -> [u8; 17] {
    let mut out = [0u8; 17];
    out[..8].copy_from_slice(&key.series.0.to_be_bytes());
    out[8] = resolution_code(key.resolution);
    out[9..].copy_from_slice(&ordered_i64(key.start_unix_s));
    out
}

fn decode_bucket_start(key: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    (key.len() == 17).then(|| from_ordered_i64(bytes))
}

fn time_id_key(unix_s: i64, id: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&ordered_i64(unix_s));
    out[8..].copy_from_slice(&id.to_be_bytes());
    out
}

fn series_index_key(service: &str, metric: &str, id: u64) -> Vec<u8> {
    let mut out = service_prefix(service);
    out.extend_from_slice(metric.as_bytes());
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

fn trailing_u64(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    Some(u64::from_be_bytes(key[start..].try_into().ok()?))
}

fn describe_bucket(series: SeriesId, resolution: Resolution, start: i64) -> String {
    format!("bucket {series}#{resolution}@{start}")
}

// ---- values ----

/// A bucket as stored: its statistics, the highest sequence number applied per shard, and its expiry.
#[derive(Debug, Default)]
struct BucketItem {
    stats: BucketStats,
    watermarks: BTreeMap<String, SequenceNumber>,
    expires_at_unix_s: i64,
}

/// `[version][count varint][sum f64][flags][min f64]?[max f64]?[expires_at i64]`
/// `[watermark count varint]([shard len varint][shard][seq len varint][seq digits])*`
/// `[sketch len varint][sketch]` — all little-endian.
fn encode_item(item: &BucketItem) -> Vec<u8> {
    let sketch = item.stats.sketch.to_bytes();
    let mut out = Vec::with_capacity(64 + sketch.len());
    out.push(ITEM_VERSION);
    put_varint(&mut out, item.stats.count);
    out.extend_from_slice(&item.stats.sum.to_le_bytes());
    let flags = if item.stats.min.is_some() { HAS_MIN } else { 0 }
        | if item.stats.max.is_some() { HAS_MAX } else { 0 };
    out.push(flags);
    for extreme in [item.stats.min, item.stats.max].into_iter().flatten() {
        out.extend_from_slice(&extreme.to_le_bytes());
    }
    out.extend_from_slice(&item.expires_at_unix_s.to_le_bytes());
    put_varint(&mut out, item.watermarks.len() as u64);
    for (shard, seq) in &item.watermarks {
        put_bytes(&mut out, shard.as_bytes());
        put_bytes(&mut out, seq.as_str().as_bytes());
    }
    put_bytes(&mut out, &sketch);
    out
}

fn decode_item(bytes: &[u8]) -> Result<BucketItem, String> {
    let mut input = Input::new(bytes);
    let version = input.byte()?;
    if version != ITEM_VERSION {
        return Err(format!("unknown item version {version}"));
    }
    let count = input.varint()?;
    let sum = input.f64()?;
    let flags = input.byte()?;
    if flags & !(HAS_MIN | HAS_MAX) != 0 {
        return Err(format!("unknown flags {flags:#04x}"));
    }
    let min = if flags & HAS_MIN != 0 {
        Some(input.f64()?)
    } else {
        None
    };
    let max = if flags & HAS_MAX != 0 {
        Some(input.f64()?)
    } else {
        None
    };
    let expires_at_unix_s = input.i64()?;
    let watermark_count = input.varint()?;
    let mut watermarks = BTreeMap::new();
    for _ in 0..watermark_count {
        let shard = std::str::from_utf8(input.bytes()?)
            .map_err(|_| "watermark shard id is not UTF-8".to_string())?
            .to_string();
        let digits =
            std::str::from_utf8(input.bytes()?).map_err(|_| "watermark is not text".to_string())?;
        let seq = SequenceNumber::parse(digits).map_err(|e| e.to_string())?;
        watermarks.insert(shard, seq);
    }
    let sketch = Sketch::from_bytes(input.bytes()?).map_err(|e| e.to_string())?;
    if !input.is_empty() {
        return Err("trailing bytes after the sketch".into());
    }
    Ok(BucketItem {
        stats: BucketStats {
            count,
            sum,
            min,
            max,
            sketch,
        },
        watermarks,
        expires_at_unix_s,
    })
}

fn encode_series(meta: &SeriesMeta) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![SERIES_VERSION];
    serde_json::to_writer(&mut out, meta).map_err(|e| StoreError::Corrupt {
        key: format!("series {}", meta.id),
        reason: format!("cannot encode: {e}"),
    })?;
    Ok(out)
}

fn decode_series(id: u64, bytes: &[u8]) -> Result<SeriesMeta, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("series {}", SeriesId(id)),
        reason,
    };
    match bytes.split_first() {
        Some((&SERIES_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))
        }
        Some((version, _)) => Err(corrupt(format!("unknown series version {version}"))),
        None => Err(corrupt("empty series item".into())),
    }
}

fn encode_state(expires_at: i64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + data.len());
    out.push(STATE_VERSION);
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn decode_state(bytes: &[u8]) -> Result<(i64, &[u8]), String> {
    let mut input = Input::new(bytes);
    let version = input.byte()?;
    if version != STATE_VERSION {
        return Err(format!("unknown state version {version}"));
    }
    let expires_at = input.i64()?;
    Ok((expires_at, input.rest()))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A bounds-checked reader over stored bytes: every read past the end is an error.
struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err(format!(
                "item ends early: needed {n} bytes, {} left",
                self.bytes.len()
            ));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array8(&mut self) -> Result<[u8; 8], String> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8)?);
        Ok(out)
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array8()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array8()?))
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint is longer than 10 bytes".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| format!("length {len} is too large"))?;
        self.take(len)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The fuzz target `stored_bucket_item` (fuzz/): decodes a stored bucket item; one that decodes
/// must encode and decode again to the same item. Not part of the API.
#[doc(hidden)]
pub fn fuzz_bucket_item(bytes: &[u8]) {
    if let Ok(item) = decode_item(bytes) {
        let again = decode_item(&encode_item(&item))
            .unwrap_or_else(|e| panic!("a decoded item did not decode after encoding: {e}"));
        assert_eq!(again.stats.count, item.stats.count);
        assert_eq!(again.watermarks, item.watermarks);
        assert_eq!(again.expires_at_unix_s, item.expires_at_unix_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_item() -> BucketItem {
        let mut stats = BucketStats::new();
        for v in [1.5, 2.0, 250.0, 0.001, -3.0] {
            stats.observe(v);
        }
        let mut watermarks = BTreeMap::new();
        watermarks.insert("shard-0".to_string(), SequenceNumber::from_u128(17));
        watermarks.insert(
            "shardId-000000000001".to_string(),
            SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
                .unwrap(),
        );
        BucketItem {
            stats,
            watermarks,
            expires_at_unix_s: 1_900_000_000,
        }
    }

    #[test]
    fn item_round_trips_exact_stats_watermarks_and_expiry() {
        let item = sample_item();
        let back = decode_item(&encode_item(&item)).unwrap();
        assert_eq!(back.stats.count, 5);
        assert_eq!(back.stats.sum, item.stats.sum);
        assert_eq!(back.stats.min, Some(-3.0));
        assert_eq!(back.stats.max, Some(250.0));
        assert_eq!(back.stats.quantile(0.5), item.stats.quantile(0.5));
        assert_eq!(back.watermarks, item.watermarks);
        assert_eq!(back.expires_at_unix_s, 1_900_000_000);

        let empty = decode_item(&encode_item(&BucketItem::default())).unwrap();
        assert_eq!((empty.stats.min, empty.stats.max), (None, None));
    }

    #[test]
    fn truncated_or_mangled_items_are_errors_not_panics() {
        let bytes = encode_item(&sample_item());
        for cut in 0..bytes.len() {
            assert!(decode_item(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_item(&trailing).is_err());
        // Any single-byte change must decode to something or fail cleanly, never panic.
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut mangled = bytes.clone();
                mangled[at] ^= flip;
                let _ = decode_item(&mangled);
            }
        }
        assert!(decode_item(&[ITEM_VERSION + 1]).is_err());
    }

    #[test]
    fn key_encodings_sort_like_the_values_they_encode() {
        let times = [i64::MIN, -3601, -1, 0, 1, 59, 60, 1_700_000_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(ordered_i64(pair[0]) < ordered_i64(pair[1]), "{pair:?}");
            assert_eq!(from_ordered_i64(ordered_i64(pair[0])), pair[0]);
        }
        // One series and resolution is one contiguous range, whatever the other series' ids are.
        let key = |series: u64, resolution, start| {
            bucket_key(&BucketKey {
                series: SeriesId(series),
                resolution,
                start_unix_s: start,
            })
        };
        assert!(key(1, Resolution::OneHour, i64::MAX) < key(2, Resolution::OneMinute, i64::MIN));
        assert!(key(1, Resolution::OneMinute, 0) < key(1, Resolution::FiveMinutes, -300));
        // No service's index range contains another service's entries.
        assert!(!series_index_key("ab", "c", 1).starts_with(&service_prefix("a")));
    }

    #[test]
    fn varints_round_trip_at_the_edges_and_overlong_ones_fail() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Input::new(&out).varint().unwrap(), value);
        }
        assert!(Input::new(&[0xff; 11]).varint().is_err());
        assert!(
            Input::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
                .varint()
                .is_err()
        );
    }

    #[test]
    fn deferred_commits_are_made_durable_every_nth_and_a_sync_restarts_the_count() {
        let deferred = |every| Deferred {
            unsynced: Some(Arc::default()),
            every,
        };
        let every_third = deferred(3);
        let skips: Vec<bool> = (0..6).map(|_| every_third.next_commit_deferred()).collect();
        assert_eq!(skips, [true, true, false, true, true, false]);
        every_third.next_commit_deferred();
        every_third.synced();
        assert!(every_third.next_commit_deferred());
        assert!(every_third.next_commit_deferred());
        assert!(!every_third.next_commit_deferred());
        // 0: only the syncs; a store without deferred durability: every commit durable.
        let only_syncs = deferred(0);
        assert!((0..100).all(|_| only_syncs.next_commit_deferred()));
        assert!(!Deferred::default().next_commit_deferred());
    }

    fn delta(series: u64, first: u128, last: u128, value: f64) -> BucketDelta {
        let mut stats = BucketStats::new();
        stats.observe(value);
        BucketDelta {
            key: BucketKey {
                series: SeriesId(series),
                resolution: Resolution::OneMinute,
                start_unix_s: 1_700_000_040,
            },
            shard_id: "shard-0".into(),
            first_seq: SequenceNumber::from_u128(first),
            last_seq: SequenceNumber::from_u128(last),
            stats,
            expires_at_unix_s: i64::MAX / 2,
        }
    }

    #[tokio::test]
    async fn batched_writes_keep_each_buckets_watermark_and_answer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("store.redb")).unwrap();
        assert!(matches!(
            store.apply_bucket(&delta(1, 1, 5, 10.0)).await.unwrap(),
            ApplyOutcome::Applied(_)
        ));

        // Bucket 1 already holds records up to 5: a redelivery from 3 is refused with the
        // watermark; buckets 2 and 3 are new and written, in the same call.
        let outcomes = store
            .apply_buckets(&[
                delta(2, 3, 8, 1.0),
                delta(1, 3, 8, 1.0),
                delta(3, 3, 8, 2.0),
            ])
            .await;
        assert_eq!(outcomes.len(), 3);
        assert!(matches!(&outcomes[0], Ok(ApplyOutcome::Applied(s)) if s.count == 1));
        assert!(
            matches!(&outcomes[1], Ok(ApplyOutcome::AlreadyApplied { watermark }) if *watermark == SequenceNumber::from_u128(5))
        );
        assert!(matches!(&outcomes[2], Ok(ApplyOutcome::Applied(s)) if s.count == 1));

        // The written ones are durable and exact; the refused one is unchanged.
        let after = store
            .query_buckets(SeriesId(1), Resolution::OneMinute, 0, i64::MAX / 4)
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].1.count, 1);
        assert_eq!(after[0].1.sum, 10.0);
        let again = store.apply_buckets(&[delta(2, 6, 8, 1.0)]).await;
        assert!(matches!(&again[0], Ok(ApplyOutcome::AlreadyApplied { .. })));
    }

    /// A 1h delta of `value` for hour `start`, records `first..=last` of shard 0.
    fn hour(start: i64, first: u128, last: u128, value: f64) -> BucketDelta {
        let mut hourly = delta(7, first, last, value);
        hourly.key.resolution = Resolution::OneHour;
        hourly.key.start_unix_s = start;
        hourly
    }

    async fn days(store: &RedbStore, from: i64, to: i64) -> Vec<(i64, u64, f64)> {
        store
            .query_buckets(SeriesId(7), Resolution::OneDay, from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|(start, stats)| (start, stats.count, stats.sum))
            .collect()
    }

    #[tokio::test]
    async fn daily_buckets_are_their_hours_before_and_after_the_fold_and_count_each_delta_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = RedbStore::open(&path).unwrap();
        // A new file folds nothing yet: every hour is read from its 1h bucket until the purge.
        let now = unix_now_ms() / 1000;
        let day = Resolution::OneDay.bucket_start(now) + 86_400;
        let outcomes = store
            .apply_buckets(&[
                hour(day + 3600, 1, 2, 1.0),
                hour(day + 5 * 3600, 1, 2, 2.0),
                hour(day + 86_400, 1, 2, 4.0),
            ])
            .await;
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Ok(ApplyOutcome::Applied(_)))));
        let expected = vec![(day, 2, 3.0), (day + 86_400, 1, 4.0)];
        // Not folded yet: the days are read from their hours; nothing stored at 1d.
        assert_eq!(days(&store, day, day + 2 * 86_400).await, expected);
        assert_eq!(days(&store, day, day + 86_400).await, expected[..1]);
        // The purge folds every closed hour (both days) into stored 1d buckets, once.
        store.purge_expired(day + 3 * 86_400).await.unwrap();
        store.purge_expired(day + 3 * 86_400).await.unwrap();
        assert_eq!(days(&store, day, day + 2 * 86_400).await, expected);
        // A late delta to a folded hour goes to its day too; its redelivery to neither.
        let late = store.apply_buckets(&[hour(day + 3600, 3, 3, 8.0)]).await;
        assert!(matches!(&late[0], Ok(ApplyOutcome::Applied(s)) if s.count == 2));
        let again = store.apply_buckets(&[hour(day + 3600, 3, 3, 8.0)]).await;
        assert!(matches!(&again[0], Ok(ApplyOutcome::AlreadyApplied { .. })));
        let expected = vec![(day, 3, 11.0), (day + 86_400, 1, 4.0)];
        assert_eq!(days(&store, day, day + 2 * 86_400).await, expected);
        // The day is the merge of its hours, also after reopening the file.
        drop(store);
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(days(&store, day, day + 2 * 86_400).await, expected);
        let hours = store
            .query_buckets(SeriesId(7), Resolution::OneHour, day, day + 86_400)
            .await
            .unwrap();
        assert_eq!(
            crate::aggregate::rollup(&hours, Resolution::OneDay)
                .into_iter()
                .map(|(start, stats)| (start, stats.count, stats.sum))
                .collect::<Vec<_>>(),
            expected[..1]
        );
    }

    #[tokio::test]
    async fn deferred_writes_are_read_at_once_keep_watermarks_and_persist_with_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = RedbStore::open(&path).unwrap().with_deferred_durability();
        assert!(matches!(
            store.apply_bucket(&delta(1, 1, 5, 10.0)).await.unwrap(),
            ApplyOutcome::Applied(_)
        ));
        store
            .save_state(&[("s".to_string(), Bytes::from_static(b"x"), i64::MAX / 2)])
            .await
            .unwrap();
        // Visible to readers and to the next conditional write before any fsync.
        let read = store
            .query_buckets(SeriesId(1), Resolution::OneMinute, 0, i64::MAX / 4)
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        assert!(matches!(
            &store.apply_buckets(&[delta(1, 3, 8, 1.0)]).await[0],
            Ok(ApplyOutcome::AlreadyApplied { .. })
        ));
        store.sync().await.unwrap();
        drop(store);

        let reopened = RedbStore::open(&path).unwrap();
        let read = reopened
            .query_buckets(SeriesId(1), Resolution::OneMinute, 0, i64::MAX / 4)
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].1.sum, 10.0);
        assert_eq!(
            reopened.load_state(&["s".to_string()]).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn repeated_registrations_skip_only_what_would_not_change_and_a_purge_forgets() {
        use crate::model::{MetricKind, SeriesKey};
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("store.redb")).unwrap();
        let key = SeriesKey {
            service: "api".into(),
            metric: "m".into(),
            attributes: Default::default(),
        };
        let meta = |unit: &str, last_seen: i64| SeriesMeta {
            id: key.id(),
            key: key.clone(),
            kind: MetricKind::Gauge,
            unit: unit.into(),
            last_seen_unix_s: last_seen,
        };
        let stored = || async { store.get_series(key.id()).await.unwrap().unwrap() };
        store.upsert_series(&[meta("ms", 1_000)]).await.unwrap();
        // Older: skipped, and last_seen does not move back.
        store.upsert_series(&[meta("ms", 900)]).await.unwrap();
        assert_eq!(stored().await.last_seen_unix_s, 1_000);
        // Newer, or the same time with another unit: written.
        store.upsert_series(&[meta("ms", 1_001)]).await.unwrap();
        assert_eq!(stored().await.last_seen_unix_s, 1_001);
        store.upsert_series(&[meta("s", 1_001)]).await.unwrap();
        assert_eq!(stored().await.unit, "s");
        // A purge that removes the series makes the next registration write it again.
        assert_eq!(store.purge_expired(i64::MAX / 4).await.unwrap(), 1);
        assert!(store.get_series(key.id()).await.unwrap().is_none());
        store.upsert_series(&[meta("s", 1_001)]).await.unwrap();
        assert_eq!(stored().await.last_seen_unix_s, 1_001);
    }

    #[tokio::test]
    async fn with_a_last_seen_step_only_a_step_newer_last_seen_or_another_unit_is_written() {
        use crate::model::{MetricKind, SeriesKey};
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("store.redb"))
            .unwrap()
            .with_last_seen_step(30);
        let key = SeriesKey {
            service: "api".into(),
            metric: "m".into(),
            attributes: Default::default(),
        };
        let meta = |unit: &str, last_seen: i64| SeriesMeta {
            id: key.id(),
            key: key.clone(),
            kind: MetricKind::Gauge,
            unit: unit.into(),
            last_seen_unix_s: last_seen,
        };
        let stored = || async { store.get_series(key.id()).await.unwrap().unwrap() };
        store.upsert_series(&[meta("ms", 1_000)]).await.unwrap();
        assert_eq!(
            stored().await.last_seen_unix_s,
            1_000,
            "a new series is written"
        );
        // Less than a step newer: skipped, the stored value trails by less than the step.
        store.upsert_series(&[meta("ms", 1_029)]).await.unwrap();
        assert_eq!(stored().await.last_seen_unix_s, 1_000);
        // A step newer: written.
        store.upsert_series(&[meta("ms", 1_030)]).await.unwrap();
        assert_eq!(stored().await.last_seen_unix_s, 1_030);
        // Older: never written.
        store.upsert_series(&[meta("ms", 900)]).await.unwrap();
        assert_eq!(stored().await.last_seen_unix_s, 1_030);
        // Another unit within the step: written at once, with the newest last_seen.
        store.upsert_series(&[meta("s", 1_031)]).await.unwrap();
        let now = stored().await;
        assert_eq!((now.unit.as_str(), now.last_seen_unix_s), ("s", 1_031));
        // After reopening (no cache), the first registration is written again.
        drop(store);
        let store = RedbStore::open(&dir.path().join("store.redb"))
            .unwrap()
            .with_last_seen_step(30);
        store.upsert_series(&[meta("s", 1_040)]).await.unwrap();
        assert_eq!(
            store
                .get_series(key.id())
                .await
                .unwrap()
                .unwrap()
                .last_seen_unix_s,
            1_040
        );
    }
}
