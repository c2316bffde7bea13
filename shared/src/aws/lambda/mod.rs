//! Lambda event plumbing: converting between Lambda's events and the core's types, so that each
//! function in `functions/` only wires adapters together.
//!
//! (HTTP API requests need no plumbing here: the `query` and `ingest` functions serve
//! [`crate::http`]'s axum routers with `lambda_http::run`.)
//! - [`kinesis`]: Kinesis events → [`crate::ports::ShardBatch`], batch outcomes → `batchItemFailures`.
//! - [`poison`]: undecodable records → the failure queue (SQS).
//! - [`websocket`]: API Gateway WebSocket `$connect` / `$disconnect` / message events.
//! - [`streams`]: DynamoDB Streams records of the buckets and live tables → live updates and traces.
//! - [`snapshot`]: a subscribe's snapshot or catch-up, read from DynamoDB.
//! - [`keys`]: the accepted API key hashes, loaded once per cold start.
//! - [`alerts`]: the scheduled rule evaluation, notifications and live `alert` events.

pub mod alerts;
#[cfg(feature = "lambda-keys")]
pub mod keys;
#[cfg(feature = "poison-queue")]
pub mod kinesis;
#[cfg(feature = "poison-queue")]
pub mod poison;
pub mod snapshot;
#[cfg(feature = "lambda-events")]
pub mod streams;
#[cfg(feature = "lambda-events")]
pub mod websocket;

use crate::ports::{ConnectionStoreError, PushError, StoreError};

/// What can stop a function from starting or from handling an event as a whole.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("malformed event: {0}")]
    Event(String),
    #[error("{service} call failed: {message}")]
    Aws {
        service: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connections(#[from] ConnectionStoreError),
    #[error(transparent)]
    Push(#[from] PushError),
}

/// An environment variable that must be set and not blank.
pub fn required_env(name: &str) -> Result<String, LambdaError> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| LambdaError::Config(format!("{name} is not set")))
}

/// Unix seconds now.
pub fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
