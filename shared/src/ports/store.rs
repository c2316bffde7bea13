//! Durable storage of buckets, the series registry and per-series state (DynamoDB on AWS, redb locally),
//! as small ports: [`BucketStore`], [`SeriesCatalog`], [`StateStore`] and [`Purge`];
//! [`MetricStore`] is all four.

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::stats::BucketStats;
use crate::model::{Resolution, SeriesId, SeriesMeta};

use super::sequence::SequenceNumber;

/// Address of one bucket item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub series: SeriesId,
    pub resolution: Resolution,
    /// Unix seconds, a multiple of `resolution.seconds()`.
    pub start_unix_s: i64,
}

/// What one batch adds to one bucket, guarded by a per-shard watermark so a redelivered batch cannot
/// be counted twice.
#[derive(Debug, Clone)]
pub struct BucketDelta {
    pub key: BucketKey,
    pub shard_id: String,
    /// Lowest sequence number that contributed. The write applies only if the bucket's watermark for
    /// `shard_id` is absent or below it.
    pub first_seq: SequenceNumber,
    /// Highest sequence number that contributed; becomes the new watermark.
    pub last_seq: SequenceNumber,
    pub stats: BucketStats,
    /// Unix seconds after which the bucket may be deleted (retention; DynamoDB TTL attribute).
    pub expires_at_unix_s: i64,
}

#[derive(Debug, Clone)]
pub enum ApplyOutcome {
    /// Written; carries the bucket's statistics after the write (for live updates).
    Applied(BucketStats),
    /// The bucket's watermark for this shard is already at or above `first_seq`: some of these
    /// contributions were applied before. The caller drops contributions at or below `watermark` and
    /// applies the rest.
    AlreadyApplied { watermark: SequenceNumber },
}

/// Every storage port's error (metrics, traces, alerts): one enum, so the read API maps it to one set
/// of statuses (503 when throttled, else 500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store is throttling; retry later: {0}")]
    Throttled(String),
    #[error("store is unavailable: {0}")]
    Unavailable(String),
    #[error("stored item {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Bucket writes in flight at once in the default [`BucketStore::apply_buckets`].
pub const APPLY_CONCURRENCY: usize = 16;

/// The 1m/5m/1h buckets: exactly-once merges of batch contributions, and range reads.
#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Conditionally merges `delta` into its bucket (see [`BucketDelta`]).
    async fn apply_bucket(&self, delta: &BucketDelta) -> Result<ApplyOutcome, StoreError>;

    /// [`BucketStore::apply_bucket`] for each of `deltas` (distinct buckets), one outcome per delta in
    /// order. The default runs at most [`APPLY_CONCURRENCY`] at once; a store that can commit many
    /// writes together (redb: one transaction, one fsync) overrides it.
    async fn apply_buckets(&self, deltas: &[BucketDelta]) -> Vec<Result<ApplyOutcome, StoreError>> {
        // `buffered` by hand: its closure would fail the `Send` check (a rustc limitation with
        // higher-ranked lifetimes).
        use futures::stream::{FuturesOrdered, StreamExt};
        let mut pending = deltas.iter();
        let mut in_flight = FuturesOrdered::new();
        let mut outcomes = Vec::with_capacity(deltas.len());
        loop {
            while in_flight.len() < APPLY_CONCURRENCY {
                let Some(delta) = pending.next() else {
                    break;
                };
                in_flight.push_back(self.apply_bucket(delta));
            }
            match in_flight.next().await {
                Some(outcome) => outcomes.push(outcome),
                None => return outcomes,
            }
        }
    }

    /// Whether the store builds the `1d` buckets itself from the `1h` deltas it applies (each day
    /// exactly the merge of its hours). Then writers send 1m/5m/1h deltas only; otherwise they send
    /// a `1d` delta too, guarded by the same watermarks. No default: a wrapper that forgot to pass
    /// it through would count every point twice in its day.
    fn derives_daily(&self) -> bool;

    /// Buckets of one series and resolution with `from_unix_s <= start < to_unix_s`, oldest first.
    async fn query_buckets(
        &self,
        series: SeriesId,
        resolution: Resolution,
        from_unix_s: i64,
        to_unix_s: i64,
    ) -> Result<Vec<(i64, BucketStats)>, StoreError>;
}

/// The series registry: which services and series exist, and their metadata. (Named so it does not
/// clash with the service registry of live services.)
#[async_trait]
pub trait SeriesCatalog: Send + Sync {
    /// Registers or refreshes series; `last_seen_unix_s` only moves forward.
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError>;

    /// Every service with at least one registered series, sorted.
    async fn list_services(&self) -> Result<Vec<String>, StoreError>;

    /// The series of one service, sorted by metric name then id.
    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError>;

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError>;
}

/// Opaque per-key state the aggregator keeps between batches (cumulative → delta tracking).
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Missing keys are absent from the result.
    async fn load_state(&self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StoreError>;

    /// Overwrites state items; `expires_at_unix_s` lets idle series' state age out.
    async fn save_state(&self, items: &[(String, Bytes, i64)]) -> Result<(), StoreError>;
}

/// Purge of what a metric store holds (buckets, state items).
#[async_trait]
pub trait Purge: Send + Sync {
    /// Deletes items whose expiry has passed. DynamoDB's TTL does this by itself, so its adapter
    /// may do nothing; the embedded store runs it periodically. Returns how many were deleted.
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, StoreError>;
}

/// All of a metric store's ports at once, for the code that needs them all (the aggregator, the
/// wiring in local mode and the functions). Processing code asks for the narrow port it uses.
/// Implemented by every type that implements the four.
pub trait MetricStore: BucketStore + SeriesCatalog + StateStore + Purge {}

impl<T: BucketStore + SeriesCatalog + StateStore + Purge + ?Sized> MetricStore for T {}
