//! Kinesis Data Streams as the pipeline's stream: [`StreamSink`] with PutRecords, [`StreamSource`]
//! with ListShards / GetShardIterator / GetRecords.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use bytes::Bytes;

use super::errors;
use super::retry::RetryPolicy;
use crate::ports::{
    SequenceNumber, StreamEntry, StreamError, StreamRecord, StreamSink, StreamSource,
};

/// PutRecords accepts at most this many records per call…
pub const MAX_RECORDS_PER_PUT: usize = 500;
/// …and at most this many bytes (data + partition keys) per call.
pub const MAX_BYTES_PER_PUT: usize = 5 * 1024 * 1024;
/// One record's data plus partition key may not exceed 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// GetRecords returns at most this many records per call.
const MAX_RECORDS_PER_GET: usize = 10_000;
/// Shard write limits are per second, so a second is the honest "come back" hint.
const THROTTLED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// GetRecords can return nothing while the iterator walks over an empty stretch of the shard; follow
/// the iterator this many times before reporting "no records yet".
const EMPTY_READS_TO_FOLLOW: usize = 4;

/// A Kinesis stream, named by name or ARN (`arn:…`).
pub struct KinesisStream {
    client: Client,
    stream: String,
    retry: RetryPolicy,
    /// Per shard: the last sequence number handed out and the iterator that continues after it, so
    /// a poller reading on from where it stopped needs one GetRecords call instead of two.
    iterators: Mutex<HashMap<String, (SequenceNumber, String)>>,
}

impl KinesisStream {
    pub fn new(config: &SdkConfig, stream: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), stream)
    }

    pub fn from_client(client: Client, stream: impl Into<String>) -> Self {
        KinesisStream {
            client,
            stream: stream.into(),
            retry: RetryPolicy::default(),
            iterators: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the retry policy for failed PutRecords entries.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// (name, ARN): exactly one is set, depending on how the stream was named.
    fn target(&self) -> (Option<String>, Option<String>) {
        if self.stream.starts_with("arn:") {
            (None, Some(self.stream.clone()))
        } else {
            (Some(self.stream.clone()), None)
        }
    }

    /// Creates the stream with `shards` provisioned shards unless it exists, then waits (at most
    /// `wait`) until it is ACTIVE. For tests and local `--aws` mode against emulators.
    pub async fn create_if_missing(&self, shards: i32, wait: Duration) -> Result<(), StreamError> {
        let (name, _) = self.target();
        let Some(name) = name else {
            return Err(StreamError::Unavailable(
                "a stream named by ARN cannot be created; name it instead".to_string(),
            ));
        };
        match self
            .client
            .create_stream()
            .stream_name(&name)
            .shard_count(shards)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if errors::code(&e) == Some("ResourceInUseException") => {}
            Err(e) => return Err(unavailable("CreateStream", &e)),
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let summary = self
                .client
                .describe_stream_summary()
                .stream_name(&name)
                .send()
                .await
                .map_err(|e| unavailable("DescribeStreamSummary", &e))?;
            let active = summary
                .stream_description_summary()
                .is_some_and(|s| s.stream_status() == &StreamStatus::Active);
            if active {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StreamError::Unavailable(format!(
                    "stream {name} did not become ACTIVE within {wait:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the stream if it exists (test clean-up against a long-lived emulator).
    pub async fn delete_if_present(&self) -> Result<(), StreamError> {
        let (name, arn) = self.target();
        match self
            .client
            .delete_stream()
            .set_stream_name(name)
            .set_stream_arn(arn)
            .enforce_consumer_deletion(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if errors::code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(unavailable("DeleteStream", &e)),
        }
    }

    /// Puts one chunk (within PutRecords' limits), retrying only the entries that failed.
    async fn put_chunk(&self, chunk: Vec<StreamEntry>) -> Result<(), StreamError> {
        let (name, arn) = self.target();
        let mut pending = chunk;
        let mut attempts = self.retry.start();
        let mut last_failure = Failure::Throttled;
        while attempts.next().await {
            let records = pending
                .iter()
                .map(to_request_entry)
                .collect::<Result<Vec<_>, _>>()?;
            let output = match self
                .client
                .put_records()
                .set_stream_name(name.clone())
                .set_stream_arn(arn.clone())
                .set_records(Some(records))
                .send()
                .await
            {
                Ok(output) => output,
                // The SDK already retried transient errors of the call itself; a throttled call is
                // retried here too, within this policy's budget.
                Err(e) if errors::is_throttling(&e) => {
                    last_failure = Failure::Throttled;
                    continue;
                }
                Err(e) => return Err(unavailable("PutRecords", &e)),
            };
            let results = output.records();
            if results.len() != pending.len() {
                return Err(StreamError::Unavailable(format!(
                    "PutRecords answered {} results for {} records",
                    results.len(),
                    pending.len()
                )));
            }
            let mut failed = Vec::new();
            let mut throttled = false;
            let mut reason = String::new();
            for (entry, result) in pending.into_iter().zip(results) {
                if let Some(code) = result.error_code() {
                    throttled |= errors::is_throttling_code(code);
                    if reason.is_empty() {
                        reason = format!("{code}: {}", result.error_message().unwrap_or(""));
                    }
                    failed.push(entry);
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            tracing::debug!(
                failed = failed.len(),
                attempt = attempts.made(),
                %reason,
                "PutRecords entries failed; retrying them"
            );
            last_failure = if throttled {
                Failure::Throttled
            } else {
                Failure::Other(reason)
            };
            pending = failed;
        }
        Err(match last_failure {
            Failure::Throttled => StreamError::Throttled {
                retry_after: THROTTLED_RETRY_AFTER,
            },
            Failure::Other(reason) => StreamError::Unavailable(format!(
                "PutRecords entries still failing after {} attempts: {reason}",
                attempts.made()
            )),
        })
    }

    /// A shard iterator positioned after `after` (or at the oldest record).
    async fn iterator(
        &self,
        shard_id: &str,
        after: Option<&SequenceNumber>,
    ) -> Result<Option<String>, StreamError> {
        if let Some(after) = after {
            let cached = self.cached_iterators().get(shard_id).cloned();
            if let Some((last, iterator)) = cached {
                if &last == after {
                    return Ok(Some(iterator));
                }
            }
        }
        let (name, arn) = self.target();
        let request = self
            .client
            .get_shard_iterator()
            .set_stream_name(name)
            .set_stream_arn(arn)
            .shard_id(shard_id);
        let request = match after {
            Some(after) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(after.as_str()),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let output = request.send().await.map_err(|e| {
            if errors::is_throttling(&e) {
                StreamError::Throttled {
                    retry_after: THROTTLED_RETRY_AFTER,
                }
            } else {
                unavailable("GetShardIterator", &e)
            }
        })?;
        Ok(output.shard_iterator().map(str::to_string))
    }

    fn cached_iterators(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (SequenceNumber, String)>> {
        // Each mutation is one insert/remove, so a poisoned map is still consistent.
        self.iterators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

enum Failure {
    Throttled,
    Other(String),
}

fn unavailable<E, R>(operation: &str, error: &aws_sdk_kinesis::error::SdkError<E, R>) -> StreamError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StreamError::Unavailable(errors::describe(operation, error))
}

fn to_request_entry(entry: &StreamEntry) -> Result<PutRecordsRequestEntry, StreamError> {
    PutRecordsRequestEntry::builder()
        .data(Blob::new(entry.data.to_vec()))
        .partition_key(&entry.partition_key)
        .build()
        .map_err(|e| StreamError::Unavailable(format!("cannot build a PutRecords entry: {e}")))
}

/// What one entry counts against PutRecords' size limits.
fn entry_size(entry: &StreamEntry) -> usize {
    entry.data.len() + entry.partition_key.len()
}

/// Splits entries, in order, into chunks of at most [`MAX_RECORDS_PER_PUT`] records and
/// [`MAX_BYTES_PER_PUT`] bytes. Fails without splitting when one entry alone is over the per-record
/// limit, since Kinesis would refuse it on every retry.
pub fn chunk_entries(entries: Vec<StreamEntry>) -> Result<Vec<Vec<StreamEntry>>, StreamError> {
    if let Some(too_large) = entries.iter().find(|e| entry_size(e) > MAX_RECORD_BYTES) {
        return Err(StreamError::RecordTooLarge {
            size: entry_size(too_large),
            limit: MAX_RECORD_BYTES,
        });
    }
    let mut chunks = Vec::new();
    let mut chunk: Vec<StreamEntry> = Vec::new();
    let mut chunk_bytes = 0;
    for entry in entries {
        let size = entry_size(&entry);
        if !chunk.is_empty()
            && (chunk.len() == MAX_RECORDS_PER_PUT || chunk_bytes + size > MAX_BYTES_PER_PUT)
        {
            chunks.push(std::mem::take(&mut chunk));
            chunk_bytes = 0;
        }
        chunk_bytes += size;
        chunk.push(entry);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    Ok(chunks)
}

#[async_trait]
impl StreamSink for KinesisStream {
    async fn put_all(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError> {
        // Chunks go one after another so records of one partition key keep their order as far as
        // PutRecords allows (a retried entry can still land after a later one; the aggregator copes).
        for chunk in chunk_entries(entries)? {
            self.put_chunk(chunk).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl StreamSource for KinesisStream {
    async fn shard_ids(&self) -> Result<Vec<String>, StreamError> {
        let (name, arn) = self.target();
        let mut shard_ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // ListShards refuses the stream's name together with a continuation token.
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self
                    .client
                    .list_shards()
                    .set_stream_name(name.clone())
                    .set_stream_arn(arn.clone()),
            };
            let output = request.send().await.map_err(|e| {
                if errors::is_throttling(&e) {
                    StreamError::Throttled {
                        retry_after: THROTTLED_RETRY_AFTER,
                    }
                } else {
                    unavailable("ListShards", &e)
                }
            })?;
            shard_ids.extend(output.shards().iter().map(|s| s.shard_id().to_string()));
            next_token = output.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        shard_ids.sort();
        Ok(shard_ids)
    }

    async fn read(
        &self,
        shard_id: &str,
        after: Option<&SequenceNumber>,
        max: usize,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let Some(mut iterator) = self.iterator(shard_id, after).await? else {
            return Ok(Vec::new());
        };
        let limit = i32::try_from(max.min(MAX_RECORDS_PER_GET)).unwrap_or(i32::MAX);
        for _ in 0..EMPTY_READS_TO_FOLLOW {
            let output = match self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(limit)
                .send()
                .await
            {
                Ok(output) => output,
                Err(e) => {
                    // A cached iterator may have expired (5 minutes); the next read fetches anew.
                    self.cached_iterators().remove(shard_id);
                    return Err(if errors::is_throttling(&e) {
                        StreamError::Throttled {
                            retry_after: THROTTLED_RETRY_AFTER,
                        }
                    } else {
                        unavailable("GetRecords", &e)
                    });
                }
            };
            let records = output
                .records()
                .iter()
                .map(|record| to_stream_record(shard_id, record))
                .collect::<Result<Vec<_>, _>>()?;
            let next = output.next_shard_iterator().map(str::to_string);
            let position = records
                .last()
                .map(|r| r.sequence_number.clone())
                .or_else(|| after.cloned());
            match (&next, position) {
                (Some(next), Some(position)) => {
                    self.cached_iterators()
                        .insert(shard_id.to_string(), (position, next.clone()));
                }
                _ => {
                    self.cached_iterators().remove(shard_id);
                }
            }
            let behind = output.millis_behind_latest().unwrap_or(0);
            match next {
                Some(next) if records.is_empty() && behind > 0 => iterator = next,
                _ => return Ok(records),
            }
        }
        Ok(Vec::new())
    }
}

fn to_stream_record(
    shard_id: &str,
    record: &aws_sdk_kinesis::types::Record,
) -> Result<StreamRecord, StreamError> {
    let sequence_number = SequenceNumber::parse(record.sequence_number()).map_err(|e| {
        StreamError::Unavailable(format!("Kinesis returned an invalid sequence number: {e}"))
    })?;
    Ok(StreamRecord {
        shard_id: shard_id.to_string(),
        sequence_number,
        partition_key: record.partition_key().unwrap_or_default().to_string(),
        data: Bytes::copy_from_slice(record.data().as_ref()),
        arrival_unix_ms: record
            .approximate_arrival_timestamp()
            .and_then(|t| t.to_millis().ok())
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, size: usize) -> StreamEntry {
        StreamEntry {
            partition_key: key.to_string(),
            data: Bytes::from(vec![7u8; size]),
        }
    }

    #[test]
    fn chunks_hold_at_most_500_records_in_order() {
        let entries: Vec<StreamEntry> = (0..1201).map(|i| entry(&format!("k{i}"), 10)).collect();
        let chunks = chunk_entries(entries.clone()).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 201]
        );
        let flattened: Vec<StreamEntry> = chunks.into_iter().flatten().collect();
        assert_eq!(flattened, entries);
    }

    #[test]
    fn chunks_stay_under_five_mebibytes() {
        // 12 records of ~1 MiB - 1 KiB: five fit under 5 MiB, the sixth would not.
        let entries: Vec<StreamEntry> = (0..12)
            .map(|_| entry("svc", MAX_RECORD_BYTES - 1024))
            .collect();
        let chunks = chunk_entries(entries).unwrap();
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(entry_size).sum();
            assert!(bytes <= MAX_BYTES_PER_PUT, "{bytes}");
        }
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![5, 5, 2]
        );
    }

    #[test]
    fn an_entry_over_one_mebibyte_is_refused_before_any_call() {
        let err = chunk_entries(vec![entry("a", 10), entry("svc", MAX_RECORD_BYTES)]).unwrap_err();
        match err {
            StreamError::RecordTooLarge { size, limit } => {
                assert_eq!(size, MAX_RECORD_BYTES + 3);
                assert_eq!(limit, MAX_RECORD_BYTES);
            }
            other => panic!("expected RecordTooLarge, got {other:?}"),
        }
    }
}
