//! Pushing a message to one live client (API Gateway `@connections` on AWS and in local mode).

use async_trait::async_trait;
use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection no longer exists (HTTP 410): forget it.
    #[error("connection is gone")]
    Gone,
    #[error("push failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait ConnectionPusher: Send + Sync {
    /// Sends one message (at most 128 KB on API Gateway) to one connection.
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), PushError>;
}
