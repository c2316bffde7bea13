//! The stream between ingest and aggregation (Kinesis on AWS, an on-disk log in local mode).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::sequence::SequenceNumber;

/// One record to append. Records with the same partition key land on the same shard, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub partition_key: String,
    pub data: Bytes,
}

/// A record as the consumer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub shard_id: String,
    /// Rises within a shard.
    pub sequence_number: SequenceNumber,
    pub partition_key: String,
    pub data: Bytes,
    /// When the stream accepted the record (unix milliseconds).
    pub arrival_unix_ms: i64,
}

/// Consecutive records of one shard, in sequence order: the unit the aggregator processes
/// (one Lambda invocation on AWS).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardBatch {
    pub shard_id: String,
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream refused records for lack of capacity even after retries; the caller should be told
    /// to come back later (HTTP 429/503 with `Retry-After`).
    #[error("stream is throttling writes; retry after {retry_after:?}")]
    Throttled { retry_after: Duration },
    #[error("stream is unavailable: {0}")]
    Unavailable(String),
    #[error("record of {size} bytes exceeds the stream's per-record limit of {limit} bytes")]
    RecordTooLarge { size: usize, limit: usize },
}

/// Producer side.
#[async_trait]
pub trait StreamSink: Send + Sync {
    /// Appends every entry. `Ok` means every entry is durable in the stream; on `Err` the caller must
    /// assume none of them is (a retry may duplicate some, which the aggregator tolerates).
    /// Adapters batch within the stream's limits and retry failed records themselves.
    async fn put_all(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError>;
}

/// Consumer side, for runners that poll the stream themselves (local mode; on AWS, Lambda's event
/// source mapping does this and hands the aggregator a [`ShardBatch`]).
#[async_trait]
pub trait StreamSource: Send + Sync {
    async fn shard_ids(&self) -> Result<Vec<String>, StreamError>;

    /// Up to `max` records of `shard_id` with a sequence number greater than `after` (all from the
    /// oldest retained when `None`), in order.
    async fn read(
        &self,
        shard_id: &str,
        after: Option<&SequenceNumber>,
        max: usize,
    ) -> Result<Vec<StreamRecord>, StreamError>;
}
