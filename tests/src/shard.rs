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
    let deadline = Instant::now() + READ_DEADLINE;
    let mut records: Vec<StreamRecord> = Vec::new();
    loop {
        let after = records.last().map(|r| r.sequence_number.clone());
        let page = match timeout_at(deadline, stream.read(shard, after.as_ref(), 1000)).await {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => panic!("GetRecords on {shard} failed after {} records: {e}", records.len()),
            Err(_) => panic!(
                "GetRecords on {shard} did not answer within {READ_DEADLINE:?} ({} of {expected} records read)",
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
            "only {} of {expected} records arrived within {READ_DEADLINE:?}",
            records.len()
        );
        if empty {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
