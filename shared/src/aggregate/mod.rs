//! Folding shard batches of metric points into 1m/5m/1h buckets.
pub mod stats;
