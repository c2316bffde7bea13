//! The WebSocket protocol, as JSON messages. Documented for clients in `docs/websocket.md`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::bucket_view::BucketView;
use crate::domain::stats::BucketStats;
use crate::model::{Attributes, MetricKind, Resolution, SeriesMeta};
use crate::traces::TraceEvent;

/// The identity of a series as live updates carry it. Every update of one series can share one
/// `Arc` of it (the hub keeps one per series), so holding many updates costs their buckets, not
/// copies of the service, metric, unit and attribute strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveSeries {
    pub series_id: String,
    pub service: String,
    pub metric: String,
    pub attributes: Attributes,
    pub kind: MetricKind,
    pub unit: String,
}

impl LiveSeries {
    /// Whether this is the identity [`LiveSeries::from_meta`] would make of `meta` (without the id,
    /// which the caller matched).
    pub fn describes(&self, meta: &SeriesMeta) -> bool {
        self.service == meta.key.service
            && self.metric == meta.key.metric
            && self.kind == meta.kind
            && self.unit == meta.unit
            && self.attributes == meta.key.attributes
    }

    pub fn from_meta(meta: &SeriesMeta) -> LiveSeries {
        LiveSeries {
            series_id: meta.id.to_string(),
            service: meta.key.service.clone(),
            metric: meta.key.metric.clone(),
            attributes: meta.key.attributes.clone(),
            kind: meta.kind,
            unit: meta.unit.clone(),
        }
    }
}

/// A shared [`LiveSeries`]: serialized as the series itself (flattened into its update), cloned by
/// reference count.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSeries(pub Arc<LiveSeries>);

impl SharedSeries {
    pub fn new(series: LiveSeries) -> SharedSeries {
        SharedSeries(Arc::new(series))
    }

    /// Whether both are the same allocation (not only equal).
    pub fn ptr_eq(&self, other: &SharedSeries) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for SharedSeries {
    type Target = LiveSeries;
    fn deref(&self) -> &LiveSeries {
        &self.0
    }
}

impl Serialize for SharedSeries {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.as_ref().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SharedSeries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LiveSeries::deserialize(deserializer).map(SharedSeries::new)
    }
}

/// One bucket's current totals. Clients replace what they hold for (series, resolution, start).
/// The series and bucket fields are flattened: on the wire an update is one flat object (the
/// series' fields, `resolution`, then the query API's [`BucketView`] fields), as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveUpdate {
    #[serde(flatten)]
    #[schema(value_type = LiveSeries)]
    pub series: SharedSeries,
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
        LiveUpdate::of_series(
            SharedSeries::new(LiveSeries::from_meta(meta)),
            resolution,
            start,
            stats,
        )
    }

    /// An update labelled with an already shared series identity.
    pub fn of_series(
        series: SharedSeries,
        resolution: Resolution,
        start: i64,
        stats: &BucketStats,
    ) -> LiveUpdate {
        let kind = series.kind;
        LiveUpdate {
            series,
            resolution,
            bucket: BucketView::new(start, stats, kind, resolution),
        }
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello {
        connection_id: String,
        seq: u64,
    },
    /// A flush's changed buckets, or a resume's catch-up. Larger ones are split into `parts`
    /// messages numbered by `part` (1-based), all with the same `seq`.
    MetricsUpdate {
        seq: u64,
        #[serde(default = "one")]
        part: u32,
        #[serde(default = "one")]
        parts: u32,
        updates: Vec<LiveUpdate>,
    },
    /// Sent instead of a catch-up when the missed messages are no longer buffered: the client replaces
    /// its live state with these updates, once it has all `parts`.
    Snapshot {
        seq: u64,
        #[serde(default = "one")]
        part: u32,
        #[serde(default = "one")]
        parts: u32,
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

fn one() -> u32 {
    1
}

/// API Gateway refuses WebSocket messages over 128 KB: every server message stays under this, with
/// room to spare. Local mode keeps to the same limit so both behave alike.
pub const MAX_MESSAGE_BYTES: usize = 120 * 1024;

/// Bytes reserved for a split message's envelope: `{"type":"metrics_update","seq":…,
/// "flushed_at_us":…,"part":…,"parts":…,"updates":[]}` with every number at its widest.
const ENVELOPE_BYTES: usize = 192;

/// Longest `error` message text sent back (an error can quote the client's input).
const MAX_ERROR_CHARS: usize = 1024;

/// A server message encoded for the wire: one or more JSON texts, each at most the size asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedParts {
    pub texts: Vec<String>,
    /// Items (updates or trace events) left out because one alone exceeds the size limit; they
    /// stay readable from the query API.
    pub oversized: usize,
}

impl ServerMessage {
    /// Encodes this message as texts of at most `max_bytes` each. `metrics_update` and `snapshot`
    /// are split into numbered parts (`part`/`parts`, same `seq`); a `trace` batch into several
    /// `trace` messages. An item that alone would exceed the limit is left out and counted.
    pub fn into_parts(self, max_bytes: usize) -> EncodedParts {
        match self {
            ServerMessage::MetricsUpdate { seq, updates, .. } => split_items(
                "metrics_update",
                seq,
                "",
                "updates",
                true,
                &updates,
                max_bytes,
            ),
            ServerMessage::Snapshot { seq, updates, .. } => {
                split_items("snapshot", seq, "", "updates", true, &updates, max_bytes)
            }
            ServerMessage::Trace { seq, traces } => {
                split_items("trace", seq, "", "traces", false, &traces, max_bytes)
            }
            ServerMessage::Error { message } => {
                let message = match message.char_indices().nth(MAX_ERROR_CHARS) {
                    Some((cut, _)) => format!("{}…", &message[..cut]),
                    None => message,
                };
                EncodedParts {
                    texts: vec![ServerMessage::Error { message }.to_json()],
                    oversized: 0,
                }
            }
            other => EncodedParts {
                texts: vec![other.to_json()],
                oversized: 0,
            },
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail (no maps with non-string keys, no custom impls).
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","message":"cannot encode message: {e}"}}"#)
        })
    }
}

/// A flush's `metrics_update` for one connection, stamped with when the flush started
/// (`flushed_at_us`, unix microseconds on the server's clock) so a client can tell delivery time from
/// the batch window. Encodes straight from the borrowed updates; connections with the same updates
/// can share the result.
pub fn encode_flush_update(
    seq: u64,
    flushed_at_us: u64,
    updates: &[&LiveUpdate],
    max_bytes: usize,
) -> EncodedParts {
    let stamp = format!(r#","flushed_at_us":{flushed_at_us}"#);
    split_items(
        "metrics_update",
        seq,
        &stamp,
        "updates",
        true,
        updates,
        max_bytes,
    )
}

/// Greedy packing of pre-encoded items into messages of at most `max_bytes`. The envelope is
/// written by hand around the items' JSON so each item is encoded once; it is the same JSON serde
/// writes for the message (fields in declaration order).
fn split_items<T: Serialize>(
    kind: &str,
    seq: u64,
    // Extra envelope fields (`,"name":value…`) after `seq`, or "".
    stamp: &str,
    field: &str,
    numbered: bool,
    items: &[T],
    max_bytes: usize,
) -> EncodedParts {
    let room = max_bytes.saturating_sub(ENVELOPE_BYTES);
    let mut oversized = 0;
    let mut groups: Vec<(Vec<String>, usize)> = vec![(Vec::new(), 0)];
    for item in items {
        let Ok(json) = serde_json::to_string(item) else {
            oversized += 1;
            continue;
        };
        if json.len() > room {
            oversized += 1;
            continue;
        }
        let needs_new = groups
            .last()
            .is_some_and(|(group, bytes)| !group.is_empty() && bytes + 1 + json.len() > room);
        if needs_new {
            groups.push((Vec::new(), 0));
        }
        if let Some((group, bytes)) = groups.last_mut() {
            *bytes += json.len() + 1;
            group.push(json);
        }
    }
    let parts = groups.len();
    let texts = groups
        .into_iter()
        .enumerate()
        .map(|(i, (group, _))| {
            let numbering = if numbered {
                format!(r#","part":{},"parts":{parts}"#, i + 1)
            } else {
                String::new()
            };
            format!(
                r#"{{"type":"{kind}","seq":{seq}{stamp}{numbering},"{field}":[{}]}}"#,
                group.join(",")
            )
        })
        .collect();
    EncodedParts { texts, oversized }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resolution;

    fn update(i: usize, attribute_bytes: usize) -> LiveUpdate {
        let mut attributes = Attributes::new();
        attributes.insert("pad".into(), "x".repeat(attribute_bytes));
        LiveUpdate {
            series: SharedSeries::new(LiveSeries {
                series_id: format!("series-{i}"),
                service: "api".into(),
                metric: "cpu".into(),
                attributes,
                kind: MetricKind::Gauge,
                unit: "%".into(),
            }),
            resolution: Resolution::OneMinute,
            bucket: BucketView {
                start: 60,
                count: 1,
                sum: 1.0,
                min: None,
                max: None,
                avg: None,
                p50: None,
                p95: None,
                p99: None,
                rate: 0.0,
            },
        }
    }

    #[test]
    fn a_large_snapshot_is_split_into_numbered_parts_under_the_limit_that_reassemble() {
        let updates: Vec<LiveUpdate> = (0..3000).map(|i| update(i, 40)).collect();
        let whole = ServerMessage::Snapshot {
            seq: 7,
            part: 1,
            parts: 1,
            updates: updates.clone(),
        };
        assert!(
            whole.to_json().len() > MAX_MESSAGE_BYTES,
            "the test needs a large message"
        );
        let encoded = whole.into_parts(MAX_MESSAGE_BYTES);
        assert_eq!(encoded.oversized, 0);
        assert!(encoded.texts.len() > 1);
        let mut reassembled = Vec::new();
        for (i, text) in encoded.texts.iter().enumerate() {
            assert!(
                text.len() <= MAX_MESSAGE_BYTES,
                "part {i} has {} bytes",
                text.len()
            );
            match serde_json::from_str::<ServerMessage>(text).unwrap() {
                ServerMessage::Snapshot {
                    seq,
                    part,
                    parts,
                    updates,
                } => {
                    assert_eq!(
                        (seq, part, parts),
                        (7, i as u32 + 1, encoded.texts.len() as u32)
                    );
                    reassembled.extend(updates);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(reassembled, updates);
    }

    #[test]
    fn a_small_or_empty_message_is_one_part_and_an_oversized_item_is_left_out() {
        let empty = ServerMessage::Snapshot {
            seq: 3,
            part: 1,
            parts: 1,
            updates: vec![],
        };
        let encoded = empty.clone().into_parts(MAX_MESSAGE_BYTES);
        assert_eq!(encoded.texts, vec![empty.to_json()]);

        let message = ServerMessage::MetricsUpdate {
            seq: 4,
            part: 1,
            parts: 1,
            updates: vec![update(1, 10), update(2, 200 * 1024), update(3, 10)],
        };
        let encoded = message.into_parts(MAX_MESSAGE_BYTES);
        assert_eq!(encoded.oversized, 1);
        assert_eq!(encoded.texts.len(), 1);
        match serde_json::from_str::<ServerMessage>(&encoded.texts[0]).unwrap() {
            ServerMessage::MetricsUpdate { updates, parts, .. } => {
                assert_eq!(parts, 1);
                let ids: Vec<_> = updates
                    .iter()
                    .map(|u| u.series.series_id.as_str())
                    .collect();
                assert_eq!(ids, vec!["series-1", "series-3"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_update_is_one_flat_object_on_the_wire_and_reads_back() {
        let mut one = update(1, 2);
        one.bucket.max = Some(2.5);
        let text = serde_json::to_string(&one).unwrap();
        assert_eq!(
            text,
            r#"{"series_id":"series-1","service":"api","metric":"cpu","attributes":{"pad":"xx"},"kind":"gauge","unit":"%","resolution":"1m","start":60,"count":1,"sum":1.0,"min":null,"max":2.5,"avg":null,"p50":null,"p95":null,"p99":null,"rate":0.0}"#
        );
        assert_eq!(serde_json::from_str::<LiveUpdate>(&text).unwrap(), one);
    }

    #[test]
    fn a_message_without_part_fields_reads_as_whole() {
        let text = r#"{"type":"snapshot","seq":9,"updates":[]}"#;
        assert_eq!(
            serde_json::from_str::<ServerMessage>(text).unwrap(),
            ServerMessage::Snapshot {
                seq: 9,
                part: 1,
                parts: 1,
                updates: vec![]
            }
        );
    }

    #[test]
    fn an_error_quoting_a_long_input_is_cut_short() {
        let encoded = ServerMessage::Error {
            message: "é".repeat(100_000),
        }
        .into_parts(MAX_MESSAGE_BYTES);
        assert!(encoded.texts[0].len() < 4 * MAX_ERROR_CHARS);
    }
}
