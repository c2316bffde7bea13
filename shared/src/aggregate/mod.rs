//! Folding shard batches of metric points into 1m/5m/1h buckets.
//!
//! A point goes through three steps:
//! 1. [`cumulative`] turns cumulative sums and histograms into deltas (state per source and series,
//!    persisted in the [`crate::ports::MetricStore`] between batches);
//! 2. [`contribution`] turns the normalized point into [`BucketStats`] (one per resolution);
//! 3. [`aggregator`] merges the contributions of a shard batch per bucket and writes each bucket once
//!    ([`bucket_write`], also used for the RED and edge buckets of [`crate::traces`]), guarded by
//!    per-shard watermarks so that redelivered batches are not counted twice.
//!
//! [`rollup`] merges stored buckets into coarser ones for queries.

pub mod aggregator;
pub mod bucket_write;
pub mod contribution;
pub mod cumulative;
pub mod interpolate;
pub mod rollup;
pub use crate::domain::stats;

pub use aggregator::{Aggregator, BatchOutcome, DecodedRecord};
pub use bucket_write::{BucketUpdate, WRITE_CONCURRENCY};
pub use contribution::contribution;
pub use cumulative::{CumulativeTracker, Normalized};
pub use rollup::rollup;
pub use stats::BucketStats;

/// Hash map for the aggregator's per-batch maps keyed by our own ids (series ids, state ids, bucket
/// keys): foldhash instead of SipHash, several times cheaper per lookup on these small keys. Its
/// `RandomState` is seeded per map from per-process randomness, so clients that choose attribute
/// values (and so series ids) still cannot aim at hash buckets they do not know.
pub type FastMap<K, V> = foldhash::HashMap<K, V>;
/// Set counterpart of [`FastMap`].
pub type FastSet<K> = foldhash::HashSet<K>;
