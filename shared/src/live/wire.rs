//! The WebSocket protocol, as JSON messages. Documented for clients in `docs/websocket.md`.

use serde::{Deserialize, Serialize};

use crate::aggregate::stats::BucketStats;
use crate::model::{Attributes, MetricKind, Resolution, SeriesMeta};
use crate::query::BucketView;
use crate::traces::TraceEvent;

/// One bucket's current totals. Clients replace what they hold for (series, resolution, start).
/// The bucket fields are the query API's [`BucketView`], flattened, so both speak the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveUpdate {
    pub series_id: String,
    pub service: String,
    pub metric: String,
    pub attributes: Attributes,
    pub kind: MetricKind,
    pub unit: String,
    pub resolution: Resolution,
    #[serde(flatten)]
    pub bucket: BucketView,
}

impl LiveUpdate {
    pub fn from_bucket(
        meta: &SeriesMeta,
        resolution: Resolution,
        start: i64,
        stats: &BucketStats,
    ) -> LiveUpdate {
        LiveUpdate {
            series_id: meta.id.to_string(),
            service: meta.key.service.clone(),
            metric: meta.key.metric.clone(),
            attributes: meta.key.attributes.clone(),
            kind: meta.kind,
            unit: meta.unit.clone(),
            resolution,
            bucket: BucketView::new(start, stats, meta.kind, resolution),
        }
    }

    /// Identity of the bucket this update replaces.
    pub fn bucket_identity(&self) -> (String, Resolution, i64) {
        (self.series_id.clone(), self.resolution, self.bucket.start)
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe {
        #[serde(default)]
        services: Vec<String>,
        #[serde(default)]
        metrics: Vec<String>,
        /// Sequence number of the last message the client saw, to resume after a reconnect.
        #[serde(default)]
        last_seq: Option<u64>,
    },
    Ping,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello {
        connection_id: String,
        seq: u64,
    },
    MetricsUpdate {
        seq: u64,
        updates: Vec<LiveUpdate>,
    },
    /// Sent instead of a catch-up when the missed messages are no longer buffered: the client replaces
    /// its live state with these updates.
    Snapshot {
        seq: u64,
        updates: Vec<LiveUpdate>,
    },
    /// Kept traces' service hops, sent in the same flush as the metric updates, for the dashboard
    /// to animate along the service graph.
    Trace {
        seq: u64,
        traces: Vec<TraceEvent>,
    },
    Pong,
    Error {
        message: String,
    },
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail (no maps with non-string keys, no custom impls).
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","message":"cannot encode message: {e}"}}"#)
        })
    }
}
