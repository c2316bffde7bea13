//! Reading a Kinesis shard back in a test, bounded: a broken endpoint (one that hangs, errors, or
//! hands the same record back forever, as kinesis-mock 0.4.x did) fails the test within a deadline
//! instead of hanging it.

use std::time::Duration;

use flowscope_core::ports::{StreamRecord, StreamSource};
use tokio::time::{timeout_at, Instant};

/// How long a test waits for the records it put to be readable, in all.
pub const READ_DEADLINE: Duration = Duration::from_secs(60);

/// Every record of `shard` from the oldest, once at least `expected` are there; panics (with what
/// arrived) if they are not there within [`READ_DEADLINE`], if a read fails, or if the endpoint
/// returns a record at or before one already read.
pub async fn read_shard<S: StreamSource + ?Sized>(
    stream: &S,
    shard: &str,
    expected: usize,
) -> Vec<StreamRecord> {
    read_shard_within(stream, shard, expected, READ_DEADLINE).await
}

/// [`read_shard`] with its own deadline.
pub async fn read_shard_within<S: StreamSource + ?Sized>(
    stream: &S,
    shard: &str,
    expected: usize,
    within: Duration,
) -> Vec<StreamRecord> {
    let deadline = Instant::now() + within;
    let mut records: Vec<StreamRecord> = Vec::new();
    loop {
        let after = records.last().map(|r| r.sequence_number.clone());
        let page = match timeout_at(deadline, stream.read(shard, after.as_ref(), 1000)).await {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => panic!("GetRecords on {shard} failed after {} records: {e}", records.len()),
            Err(_) => panic!(
                "GetRecords on {shard} did not answer within {within:?} ({} of {expected} records read)",
                records.len()
            ),
        };
        if let (Some(after), Some(first)) = (after.as_ref(), page.first()) {
            assert!(
                first.sequence_number > *after,
                "the endpoint returned record {:?} again after {after:?}: its GetRecords does not advance",
                first.sequence_number
            );
        }
        let empty = page.is_empty();
        records.extend(page);
        if records.len() >= expected && empty {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} records arrived within {within:?}",
            records.len()
        );
        if empty {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use bytes::Bytes;
    use flowscope_core::ports::{SequenceNumber, StreamError};

    use super::*;

    /// A broken Kinesis endpoint: hands back the same record whatever the position, or never answers.
    struct Broken {
        hangs: bool,
    }

    #[async_trait]
    impl StreamSource for Broken {
        async fn shard_ids(&self) -> Result<Vec<String>, StreamError> {
            Ok(vec!["shard-0".into()])
        }

        async fn read(
            &self,
            shard_id: &str,
            _after: Option<&SequenceNumber>,
            _max: usize,
        ) -> Result<Vec<StreamRecord>, StreamError> {
            if self.hangs {
                std::future::pending::<()>().await;
            }
            Ok(vec![StreamRecord {
                shard_id: shard_id.to_string(),
                sequence_number: SequenceNumber::from_u128(1),
                partition_key: "p".into(),
                data: Bytes::from_static(b"x"),
                arrival_unix_ms: 0,
            }])
        }
    }

    #[tokio::test]
    #[should_panic(expected = "does not advance")]
    async fn an_endpoint_returning_the_same_record_again_fails_the_read() {
        read_shard(&Broken { hangs: false }, "shard-0", 2).await;
    }

    #[tokio::test]
    #[should_panic(expected = "did not answer within")]
    async fn an_endpoint_that_never_answers_fails_the_read_at_the_deadline() {
        read_shard_within(
            &Broken { hangs: true },
            "shard-0",
            1,
            Duration::from_millis(200),
        )
        .await;
    }
}
