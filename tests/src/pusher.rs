//! A WebSocket pusher that records what API Gateway would have delivered, so tests can assert on
//! each connection's messages without a real WebSocket API.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use flowscope_core::ports::{ConnectionPusher, PushError};
use serde_json::Value;

/// Records what would be posted to each connection; connections in `gone` answer 410.
#[derive(Default)]
pub struct RecordingPusher {
    posted: Mutex<Vec<(String, Value)>>,
    gone: HashSet<String>,
}

impl RecordingPusher {
    /// A pusher for which these connections are gone (API Gateway answers 410).
    pub fn with_gone<'a>(gone: impl IntoIterator<Item = &'a str>) -> RecordingPusher {
        RecordingPusher {
            gone: gone.into_iter().map(str::to_string).collect(),
            ..RecordingPusher::default()
        }
    }

    pub fn messages_to(&self, connection: &str) -> Vec<Value> {
        self.posted
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| id == connection)
            .map(|(_, message)| message.clone())
            .collect()
    }
}

#[async_trait]
impl ConnectionPusher for RecordingPusher {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), PushError> {
        if self.gone.contains(connection_id) {
            return Err(PushError::Gone);
        }
        let message = serde_json::from_slice(&payload).expect("pushed messages are JSON");
        self.posted
            .lock()
            .unwrap()
            .push((connection_id.to_string(), message));
        Ok(())
    }
}
