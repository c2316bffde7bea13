//! One bucket write per batch under the per-shard watermark, for contributions that are already
//! [`BucketStats`] per record.
//!
//! The same protocol as the metrics aggregator's private `write_bucket` (which builds its statistics
//! from normalized points at write time): write once with `first_seq..last_seq`; on
//! `AlreadyApplied{watermark}` drop the contributions at or below it and write the rest. Kept generic
//! so that both could share it from `aggregate`.

use crate::aggregate::stats::BucketStats;
use crate::ports::{ApplyOutcome, BucketDelta, BucketKey, MetricStore, SequenceNumber};

/// How one bucket's write ended.
#[derive(Debug, Clone)]
pub struct BucketWrite {
    pub key: BucketKey,
    /// The bucket's statistics after the write, when something was written.
    pub written: Option<BucketStats>,
    /// Contributions dropped because the bucket had applied them before (a redelivery).
    pub duplicates: u64,
    /// Lowest sequence number whose contribution was not written because the write failed.
    pub failed_from: Option<SequenceNumber>,
}

/// Writes `contributions` (one per record, in sequence order) to bucket `key` exactly once.
pub async fn write_watermarked<S: MetricStore + ?Sized>(
    store: &S,
    shard_id: &str,
    key: BucketKey,
    expires_at_unix_s: i64,
    mut contributions: Vec<(SequenceNumber, BucketStats)>,
) -> BucketWrite {
    let mut result = BucketWrite {
        key,
        written: None,
        duplicates: 0,
        failed_from: None,
    };
    loop {
        let (Some((first_seq, _)), Some((last_seq, _))) =
            (contributions.first(), contributions.last())
        else {
            return result; // everything was applied before
        };
        let mut stats = BucketStats::new();
        for (_, contribution) in &contributions {
            stats.merge(contribution);
        }
        let delta = BucketDelta {
            key,
            shard_id: shard_id.to_string(),
            first_seq: first_seq.clone(),
            last_seq: last_seq.clone(),
            stats,
            expires_at_unix_s,
        };
        match store.apply_bucket(&delta).await {
            Ok(ApplyOutcome::Applied(after)) => {
                result.written = Some(after);
                return result;
            }
            Ok(ApplyOutcome::AlreadyApplied { watermark }) => {
                let before = contributions.len();
                contributions.retain(|(seq, _)| *seq > watermark);
                result.duplicates += (before - contributions.len()) as u64;
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
