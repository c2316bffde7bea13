//! Embedded adapters for local mode and tests: an on-disk stream log, a redb store, in-memory connections.
//!
//! They implement the same ports as the AWS adapters and pass the same contract suite
//! (`shared/tests/contract`), so local mode behaves like the deployed pipeline: ordered shards with
//! rising sequence numbers, conditional per-shard watermarks on buckets, topic-indexed subscriptions.

pub mod admission;
pub mod alert_store;
pub mod connections;
mod crc32;
mod ordered_keys;
pub mod profile_store;
mod redb_file;
pub mod registry_store;
pub mod released;
mod rule_store;
mod sink_state;
pub mod store;
pub mod stream_log;
pub mod trace_store;

use std::path::PathBuf;

pub use admission::MemorySeriesAdmission;
pub use alert_store::RedbAlertStore;
pub use connections::MemoryConnections;
pub use profile_store::RedbProfileStore;
pub use registry_store::RedbRegistryStore;
pub use released::Released;
pub use store::RedbStore;
pub use stream_log::{EmbeddedStream, StreamOptions};
pub use trace_store::RedbTraceStore;

/// Why an embedded adapter could not be opened or could not persist its own bookkeeping
/// (checkpoints, segment retention). Port operations report the port's own error types.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the stream in {} was created with {existing} shards but was opened with {requested}; \
         keep --shards at {existing} or use a new data directory",
        dir.display()
    )]
    ShardCountMismatch {
        dir: PathBuf,
        existing: u32,
        requested: u32,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("{} is not a Flowscope data file: {reason}", path.display())]
    Unrecognized { path: PathBuf, reason: String },
    #[error("no shard named {0:?}")]
    UnknownShard(String),
    #[error("database {}: {reason}", path.display())]
    Database { path: PathBuf, reason: String },
}

impl EmbeddedError {
    fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| EmbeddedError::Io {
            action,
            path,
            source,
        }
    }
}

/// Current wall-clock time in unix milliseconds; a clock before 1970 reads as 0.
fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
