//! Writing the buckets of one shard batch, each exactly once under the per-shard watermark: step 4 of
//! the exactly-once scheme (see [`crate::aggregate::aggregator`]), shared by the metrics aggregator and
//! the trace processor ([`crate::traces::processor`]).
//!
//! A bucket gets **one** delta `(first_seq, last_seq)` with the merged contributions of the batch's
//! records, sent with the batch's other buckets through `apply_buckets`. The store applies it only if the bucket's watermark for this shard is below
//! `first_seq`; on `AlreadyApplied{watermark}` the contributions at or below the watermark are dropped
//! (a redelivery; they were written before) and the rest re-sent. A watermark below `first_seq` cannot
//! refuse the write: the store is wrong, and the bucket counts as failed from `first_seq` (looping
//! would never end). Store errors are not retried here: the redelivery from the lowest failed sequence
//! number is the retry.

use std::sync::Arc;

use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{ApplyOutcome, BucketDelta, BucketKey, BucketStore, SequenceNumber};

use super::stats::BucketStats;
use crate::domain::bucket_view::BucketView;

/// Bucket writes in flight at once per batch on stores without batched writes (see
/// [`BucketStore::apply_buckets`]).
pub const WRITE_CONCURRENCY: usize = crate::ports::store::APPLY_CONCURRENCY;
/// Buckets per [`BucketStore::apply_buckets`] call (one redb transaction). Bounds the deltas held at
/// once: a delta is its statistics (a sketch of ~60–800 bytes) plus two sequence numbers.
pub const WRITE_CHUNK: usize = 2048;

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
    /// Shared by every bucket of the series in the batch (three resolutions, several minutes).
    pub series: Arc<SeriesMeta>,
    pub resolution: Resolution,
    pub start_unix_s: i64,
    /// The bucket's totals and quantiles after the write, as the query API shows them. Not the
    /// [`BucketStats`] themselves: their sketch is kilobytes per bucket, and a batch can write
    /// tens of thousands of buckets.
    pub view: BucketView,
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

/// Writes every bucket of a batch exactly once (see the module documentation), in chunks of at most
/// [`WRITE_CHUNK`] buckets per [`BucketStore::apply_buckets`] call (redb commits a chunk in one
/// transaction; DynamoDB keeps its per-item conditional writes). `buckets` yields (key, expires_at,
/// contributions); `series` finds the registered series a written bucket's update names (a bucket
/// whose series it does not know gets no update).
pub async fn write_buckets<'m, S, C, B>(
    store: &S,
    shard_id: &str,
    buckets: B,
    series: impl Fn(SeriesId) -> Option<&'m Arc<SeriesMeta>>,
) -> BatchWrites
where
    S: BucketStore + ?Sized,
    C: Contribution,
    B: IntoIterator<Item = (BucketKey, i64, Vec<C>)>,
{
    // Chunks, not everything at once: a batch's deltas (each with a sketch) are built only for the
    // chunk being written.
    let mut pending = buckets.into_iter().fuse();
    // Buckets whose watermark showed part of their contributions applied: the rest go again.
    let mut again: Vec<(BucketKey, i64, Vec<C>)> = Vec::new();
    let mut batch = BatchWrites::default();
    // One update per bucket written: sized once (the aggregator's buckets come from a map, whose
    // size is known) instead of regrown by doubling, which copied them and faulted in fresh pages.
    batch.updates.reserve(pending.size_hint().0);
    loop {
        let mut chunk: Vec<(BucketKey, i64, Vec<C>)> = std::mem::take(&mut again);
        chunk.reserve(WRITE_CHUNK.saturating_sub(chunk.len()));
        while chunk.len() < WRITE_CHUNK {
            let Some(bucket) = pending.next() else {
                break;
            };
            chunk.push(bucket);
        }
        // Empty contributions (everything applied before) have nothing to write. Sized up front: a
        // chunk's deltas are large, and regrowing them copies and faults in fresh memory.
        let mut deltas = Vec::with_capacity(chunk.len());
        let chunk: Vec<_> = chunk
            .into_iter()
            .filter_map(|(key, expires_at, contributions)| {
                deltas.push(delta_of(shard_id, key, expires_at, &contributions)?);
                Some((key, expires_at, contributions))
            })
            .collect();
        if chunk.is_empty() {
            break;
        }
        let mut outcomes = store.apply_buckets(&deltas).await.into_iter();
        for ((key, expires_at, mut contributions), delta) in chunk.into_iter().zip(deltas) {
            let failed = |batch: &mut BatchWrites, seq: SequenceNumber| {
                batch.failed_from =
                    Some(batch.failed_from.take().map_or(seq.clone(), |f| f.min(seq)));
            };
            match outcomes.next() {
                Some(Ok(ApplyOutcome::Applied(after))) => {
                    batch.applied += contributions.iter().map(C::points).sum::<u64>();
                    if let Some(meta) = series(key.series) {
                        batch.updates.push(BucketUpdate {
                            view: BucketView::new(
                                key.start_unix_s,
                                &after,
                                meta.kind,
                                key.resolution,
                            ),
                            series: meta.clone(),
                            resolution: key.resolution,
                            start_unix_s: key.start_unix_s,
                        });
                    }
                }
                Some(Ok(ApplyOutcome::AlreadyApplied { watermark })) => {
                    let before = contributions.len();
                    contributions.retain(|contribution| {
                        let applied = *contribution.seq() <= watermark;
                        if applied {
                            batch.duplicates += contribution.points();
                        }
                        !applied
                    });
                    if contributions.len() == before {
                        // A watermark below first_seq cannot refuse the write: the store is wrong,
                        // and looping would never end.
                        tracing::warn!(shard_id, ?key, %watermark, first_seq = %delta.first_seq, "store refused a write above its watermark");
                        failed(&mut batch, delta.first_seq);
                    } else if !contributions.is_empty() {
                        again.push((key, expires_at, contributions));
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(shard_id, ?key, %error, "bucket write failed");
                    failed(&mut batch, delta.first_seq);
                }
                None => {
                    tracing::warn!(
                        shard_id,
                        ?key,
                        "the store returned fewer outcomes than writes"
                    );
                    failed(&mut batch, delta.first_seq);
                }
            }
        }
    }
    // A bucket is written (applied) at most once per batch, so the keys are unique and an unstable
    // sort (in place, no scratch buffer) gives the same order as a stable one.
    batch
        .updates
        .sort_unstable_by_key(|u| (u.series.id, u.resolution, u.start_unix_s));
    batch
}

/// The delta of `contributions` (in sequence order) to bucket `key`; `None` when there are none.
fn delta_of<C: Contribution>(
    shard_id: &str,
    key: BucketKey,
    expires_at_unix_s: i64,
    contributions: &[C],
) -> Option<BucketDelta> {
    let (first, last) = (contributions.first()?, contributions.last()?);
    let mut stats = BucketStats::new();
    for contribution in contributions {
        contribution.add_to(&mut stats);
    }
    Some(BucketDelta {
        key,
        shard_id: shard_id.to_string(),
        first_seq: first.seq().clone(),
        last_seq: last.seq().clone(),
        stats,
        expires_at_unix_s,
    })
}
