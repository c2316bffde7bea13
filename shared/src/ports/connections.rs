//! Live connections and what each is subscribed to (DynamoDB on AWS, memory locally).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a client wants pushed. Empty lists mean "everything".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
}

impl Subscription {
    pub fn wants(&self, service: &str, metric: &str) -> bool {
        (self.services.is_empty() || self.services.iter().any(|s| s == service))
            && (self.metrics.is_empty() || self.metrics.iter().any(|m| m == metric))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionStoreError {
    #[error("connection store is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Records a new connection for `principal` (who authenticated at `$connect`).
    async fn put_connection(
        &self,
        connection_id: &str,
        principal: &str,
        expires_at_unix_s: i64,
    ) -> Result<(), ConnectionStoreError>;

    /// Forgets a connection and its subscription. Deleting an unknown id is not an error.
    async fn delete_connection(&self, connection_id: &str) -> Result<(), ConnectionStoreError>;

    /// Replaces the connection's subscription.
    async fn set_subscription(
        &self,
        connection_id: &str,
        subscription: &Subscription,
        expires_at_unix_s: i64,
    ) -> Result<(), ConnectionStoreError>;

    /// Connections whose subscription covers `service` (including subscribers to everything),
    /// found through the key design, never a scan of all connections.
    async fn subscribers(
        &self,
        service: &str,
    ) -> Result<Vec<(String, Subscription)>, ConnectionStoreError>;
}
