//! Merging stored buckets into coarser ones (1m → 5m → 1h) for queries and rollups.
//!
//! count, min and max merge exactly, and so does the sketch (bin counts add). sum is a float addition:
//! exact whenever the values are representable (integers, k/1024 …), otherwise subject to ordinary
//! rounding in the last bits.

use std::collections::BTreeMap;

use crate::model::Resolution;

use super::stats::BucketStats;

/// Merges `(start_unix_s, stats)` buckets into buckets of `to`, oldest first. Input may be in any
/// order and of any finer resolution; buckets with the same target start are merged.
pub fn rollup(buckets: &[(i64, BucketStats)], to: Resolution) -> Vec<(i64, BucketStats)> {
    let mut merged: BTreeMap<i64, BucketStats> = BTreeMap::new();
    for (start, stats) in buckets {
        merged
            .entry(to.bucket_start(*start))
            .or_default()
            .merge(stats);
    }
    merged.into_iter().collect()
}
