//! Writing the buckets of one shard batch, each exactly once under the per-shard watermark: step 4 of
//! the exactly-once scheme (see [`crate::aggregate::aggregator`]), shared by the metrics aggregator and
//! the trace processor ([`crate::traces::processor`]).
//!
//! A bucket gets **one** `apply_bucket(first_seq, last_seq)` with the merged contributions of the
//! batch's records. The store applies it only if the bucket's watermark for this shard is below
//! `first_seq`; on `AlreadyApplied{watermark}` the contributions at or below the watermark are dropped
//! (a redelivery; they were written before) and the rest re-sent. A watermark below `first_seq` cannot
//! refuse the write: the store is wrong, and the bucket counts as failed from `first_seq` (looping
//! would never end). Store errors are not retried here: the redelivery from the lowest failed sequence
//! number is the retry.

use futures::stream::{FuturesUnordered, StreamExt};

use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{ApplyOutcome, BucketDelta, BucketKey, MetricStore, SequenceNumber};

use super::stats::BucketStats;

/// Bucket writes in flight at once per batch.
pub const WRITE_CONCURRENCY: usize = 16;

/// A part of one record in one bucket (a record may have several, e.g. one per point).
pub trait Contribution {
    /// Sequence number of the record it comes from.
    fn seq(&self) -> &SequenceNumber;
    /// Adds it to the statistics written to the bucket.
    fn add_to(&self, stats: &mut BucketStats);
    /// How many points it counts for in [`BucketWrite::applied`] and [`BucketWrite::duplicates`].
    fn points(&self) -> u64 {
        1
    }
}

/// A record's contribution as ready-made statistics.
impl Contribution for (SequenceNumber, BucketStats) {
    fn seq(&self) -> &SequenceNumber {
        &self.0
    }

    fn add_to(&self, stats: &mut BucketStats) {
        stats.merge(&self.1);
    }
}

/// One bucket after this batch's write.
#[derive(Debug, Clone)]
pub struct BucketUpdate {
    pub series: SeriesMeta,
    pub resolution: Resolution,
    pub start_unix_s: i64,
    pub stats: BucketStats,
}

/// How one bucket's write ended.
#[derive(Debug, Clone)]
pub struct BucketWrite {
    pub key: BucketKey,
    /// The bucket's statistics after the write, when something was written.
    pub written: Option<BucketStats>,
    /// Points of the contributions written.
    pub applied: u64,
    /// Points of the contributions dropped because the bucket had applied them before (a redelivery).
    pub duplicates: u64,
    /// Lowest sequence number whose contribution was not written because the write failed.
    pub failed_from: Option<SequenceNumber>,
}

/// Writes `contributions` (in sequence order; several may come from one record) to bucket `key`
/// exactly once.
pub async fn write_watermarked<S, C>(
    store: &S,
    shard_id: &str,
    key: BucketKey,
    expires_at_unix_s: i64,
    mut contributions: Vec<C>,
) -> BucketWrite
where
    S: MetricStore + ?Sized,
    C: Contribution,
{
    let mut result = BucketWrite {
        key,
        written: None,
        applied: 0,
        duplicates: 0,
        failed_from: None,
    };
    loop {
        let (Some(first), Some(last)) = (contributions.first(), contributions.last()) else {
            return result; // everything was applied before
        };
        let mut stats = BucketStats::new();
        for contribution in &contributions {
            contribution.add_to(&mut stats);
        }
        let delta = BucketDelta {
            key,
            shard_id: shard_id.to_string(),
            first_seq: first.seq().clone(),
            last_seq: last.seq().clone(),
            stats,
            expires_at_unix_s,
        };
        match store.apply_bucket(&delta).await {
            Ok(ApplyOutcome::Applied(after)) => {
                result.written = Some(after);
                result.applied = contributions.iter().map(C::points).sum();
                return result;
            }
            Ok(ApplyOutcome::AlreadyApplied { watermark }) => {
                let before = contributions.len();
                contributions.retain(|contribution| {
                    let applied = *contribution.seq() <= watermark;
                    if applied {
                        result.duplicates += contribution.points();
                    }
                    !applied
                });
                if contributions.len() == before {
                    // A watermark below first_seq cannot refuse the write: the store is wrong, and
                    // looping would never end.
                    tracing::warn!(shard_id, ?key, %watermark, first_seq = %delta.first_seq, "store refused a write above its watermark");
                    result.failed_from = Some(delta.first_seq);
                    return result;
                }
            }
            Err(error) => {
                tracing::warn!(shard_id, ?key, %error, "bucket write failed");
                result.failed_from = Some(delta.first_seq);
                return result;
            }
        }
    }
}

/// What writing all the buckets of a batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchWrites {
    /// Buckets written, with their statistics after the write, sorted by series, resolution and start.
    pub updates: Vec<BucketUpdate>,
    /// Sum of [`BucketWrite::applied`].
    pub applied: u64,
    /// Sum of [`BucketWrite::duplicates`].
    pub duplicates: u64,
    /// Lowest sequence number whose contribution was not written (`F` in the exactly-once proof).
    pub failed_from: Option<SequenceNumber>,
}

/// Writes every bucket of a batch once with [`write_watermarked`] (at most [`WRITE_CONCURRENCY`] at
/// once). `buckets` yields (key, expires_at, contributions); `series` finds the registered series a
/// written bucket's update names (a bucket whose series it does not know gets no update).
pub async fn write_buckets<'m, S, C, B>(
    store: &S,
    shard_id: &str,
    buckets: B,
    series: impl Fn(SeriesId) -> Option<&'m SeriesMeta>,
) -> BatchWrites
where
    S: MetricStore + ?Sized,
    C: Contribution,
    B: IntoIterator<Item = (BucketKey, i64, Vec<C>)>,
{
    // `buffer_unordered` by hand: its closure, taking contributions that borrow the caller's batch,
    // would make the caller's future fail the `Send` check (a rustc limitation with higher-ranked
    // lifetimes), and creating every write up front would hold all of them in memory at once.
    let mut pending = buckets.into_iter().fuse();
    let mut in_flight = FuturesUnordered::new();
    let mut batch = BatchWrites::default();
    loop {
        while in_flight.len() < WRITE_CONCURRENCY {
            let Some((key, expires_at, contributions)) = pending.next() else {
                break;
            };
            in_flight.push(write_watermarked(
                store,
                shard_id,
                key,
                expires_at,
                contributions,
            ));
        }
        let Some(write) = in_flight.next().await else {
            break;
        };
        batch.applied += write.applied;
        batch.duplicates += write.duplicates;
        if let Some(seq) = write.failed_from {
            batch.failed_from = Some(batch.failed_from.map_or(seq.clone(), |f| f.min(seq)));
        }
        if let (Some(stats), Some(meta)) = (write.written, series(write.key.series)) {
            batch.updates.push(BucketUpdate {
                series: meta.clone(),
                resolution: write.key.resolution,
                start_unix_s: write.key.start_unix_s,
                stats,
            });
        }
    }
    batch.updates.sort_by(|a, b| {
        (a.series.id, a.resolution, a.start_unix_s).cmp(&(
            b.series.id,
            b.resolution,
            b.start_unix_s,
        ))
    });
    batch
}
