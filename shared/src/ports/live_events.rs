//! Sending live events (`health`, `registry`) to the WebSocket clients subscribed to a service.
//!
//! Locally the sink posts at once through the fan-out ([`crate::live::FanoutEvents`]); on AWS it
//! writes short-lived items into the live table, whose DynamoDB Stream feeds the fan-out function
//! (the path of `trace` events), so a function that computes events needs no connections table.

use async_trait::async_trait;

use super::StoreError;

/// One live event: the service it is about (its subscribers get it) and its JSON message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveEvent {
    pub service: String,
    /// One complete WebSocket message (a `health` or `registry` event).
    pub json: String,
}

impl LiveEvent {
    pub fn new(service: impl Into<String>, json: impl Into<String>) -> LiveEvent {
        LiveEvent {
            service: service.into(),
            json: json.into(),
        }
    }
}

#[async_trait]
pub trait LiveEventSink: Send + Sync {
    /// Hands `events` over for delivery to the connections subscribed to each one's service.
    async fn publish(&self, events: &[LiveEvent]) -> Result<(), StoreError>;
}

/// A sink that keeps nothing (a function that has no live table configured).
pub struct NoLiveEvents;

#[async_trait]
impl LiveEventSink for NoLiveEvents {
    async fn publish(&self, _events: &[LiveEvent]) -> Result<(), StoreError> {
        Ok(())
    }
}
