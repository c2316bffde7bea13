//! Pushing a message to one live client (API Gateway `@connections` on AWS and in local mode).

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};

/// Posts in flight at once in the default [`ConnectionPusher::post_batch`]: PostToConnection is
/// one HTTP call per connection.
const CONCURRENT_POSTS: usize = 32;

/// One connection's messages for [`ConnectionPusher::post_batch`], and after it their results.
pub type ConnectionPosts<T> = (String, Vec<T>);

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

    /// Sends each connection its messages in order (so a split message's parts arrive in
    /// sequence), connections independently. Per connection, one result per message sent; a
    /// connection's messages after its first `Gone` are not sent. The default posts a bounded
    /// number of connections concurrently; an in-process pusher hands a whole flush over in one
    /// pass (and can share the work of payloads that are the same bytes).
    async fn post_batch(
        &self,
        posts: Vec<ConnectionPosts<Bytes>>,
    ) -> Vec<ConnectionPosts<Result<(), PushError>>> {
        stream::iter(posts)
            .map(|(connection, payloads)| async move {
                let mut results = Vec::with_capacity(payloads.len());
                for payload in payloads {
                    let result = self.post(&connection, payload).await;
                    let gone = matches!(result, Err(PushError::Gone));
                    results.push(result);
                    if gone {
                        break;
                    }
                }
                (connection, results)
            })
            .buffer_unordered(CONCURRENT_POSTS)
            .collect()
            .await
    }
}
