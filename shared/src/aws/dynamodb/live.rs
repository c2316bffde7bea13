//! Live-event items (`LIVE_TABLE`): what only live clients want — the aggregator's kept traces'
//! `trace` events, the probe function's `health` events and the registry's `registry` events —
//! written as short-lived items whose DynamoDB Stream feeds the
//! fan-out function, the same path the buckets' updates take. Nobody reads the table itself: items
//! expire by TTL an hour after they were written.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::item::{self, get_s, Item};
use super::{store_error, table};
use serde::Serialize;

use crate::ports::{LiveEvent, LiveEventSink, SequenceNumber, StoreError};
use crate::traces::TraceEvent;

/// `pk` prefix of trace-event items (bucket items' `pk` starts with a 16-hex series id, so a stream
/// record is told apart by its key alone).
pub const TRACE_ITEM_PREFIX: &str = "trace#";

/// `pk` prefix of live event items: `health` and `registry` events, each with its service.
pub const EVENT_ITEM_PREFIX: &str = "event#";

/// Trace events kept per shard batch, the newest (as local mode keeps per flush): the dashboard
/// animates a sample, and this bounds one invocation's writes.
pub const MAX_TRACE_EVENTS_PER_BATCH: usize = 200;

/// JSON bytes of events per item: well under DynamoDB's 400 KB item limit, and small enough that
/// a stream batch of 100 items stays under Lambda's 6 MB payload.
pub const MAX_TRACE_ITEM_BYTES: usize = 48 * 1024;

/// Items live an hour (TTL deletes them at no write cost; the stream's REMOVE records are ignored).
const LIVE_ITEM_TTL_SECONDS: i64 = 3600;

/// Writes live-event items.
pub struct DynamoLiveEvents {
    client: Client,
    table: String,
}

impl DynamoLiveEvents {
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), table)
    }

    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        DynamoLiveEvents {
            client,
            table: table.into(),
        }
    }

    /// Writes one shard batch's trace events (the newest [`MAX_TRACE_EVENTS_PER_BATCH`]) as items of
    /// at most [`MAX_TRACE_ITEM_BYTES`] of JSON each, keyed by the batch's shard and sequence range.
    /// Each put is conditional on the key being new, so a batch delivered again with the same
    /// records does not post its traces twice. Returns the items written.
    pub async fn put_trace_events(
        &self,
        shard_id: &str,
        first_seq: &SequenceNumber,
        last_seq: &SequenceNumber,
        events: &[TraceEvent],
        now_unix_s: i64,
    ) -> Result<usize, StoreError> {
        let table = table(&self.table, "LIVE_TABLE")?;
        let newest = &events[events.len().saturating_sub(MAX_TRACE_EVENTS_PER_BATCH)..];
        let mut written = 0;
        for (part, chunk) in chunks(newest).into_iter().enumerate() {
            let pk = format!(
                "{TRACE_ITEM_PREFIX}{shard_id}#{}#{}#{part}",
                first_seq.as_str(),
                last_seq.as_str()
            );
            written += usize::from(self.put_new(table, pk, chunk, now_unix_s).await?);
        }
        Ok(written)
    }

    /// Writes live events (`health`, `registry`) as items of at most [`MAX_TRACE_ITEM_BYTES`] of
    /// JSON each (`pk = event#<unix ms>#<hash of the events>#<part>`, conditional on the key being
    /// new, so the same events written twice in the same millisecond post once). Returns the items
    /// written.
    pub async fn put_events(
        &self,
        events: &[LiveEvent],
        now_unix_ms: i64,
    ) -> Result<usize, StoreError> {
        let table = table(&self.table, "LIVE_TABLE")?;
        let mut written = 0;
        for (part, chunk) in pack(events, |event, bytes| {
            tracing::warn!(service = %event.service, bytes, "live event too large for a live item; left out");
        })
        .into_iter()
        .enumerate()
        {
            let hash = crate::model::stable_hash(&[&chunk]);
            let pk = format!("{EVENT_ITEM_PREFIX}{now_unix_ms}#{hash:016x}#{part}");
            let now_unix_s = now_unix_ms.div_euclid(1000);
            written += usize::from(self.put_new(table, pk, chunk, now_unix_s).await?);
        }
        Ok(written)
    }

    /// Puts one item `{pk, events, expires_at}` unless its key exists; whether it was written.
    async fn put_new(
        &self,
        table: &str,
        pk: String,
        events: String,
        now_unix_s: i64,
    ) -> Result<bool, StoreError> {
        let mut item = Item::new();
        item.insert("pk".into(), item::s(pk));
        item.insert("events".into(), item::s(events));
        item.insert(
            "expires_at".into(),
            item::n(now_unix_s + LIVE_ITEM_TTL_SECONDS),
        );
        let result = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("PutItem (live event)", &e)),
        }
    }
}

#[async_trait]
impl LiveEventSink for DynamoLiveEvents {
    async fn publish(&self, events: &[LiveEvent]) -> Result<(), StoreError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.put_events(events, now_ms).await.map(|_| ())
    }
}

/// The events as JSON arrays of at most [`MAX_TRACE_ITEM_BYTES`] each (an event larger than that
/// alone is left out: it would not fit one WebSocket message either).
fn chunks(events: &[TraceEvent]) -> Vec<String> {
    pack(events, |event, bytes| {
        tracing::warn!(trace_id = %event.trace_id, bytes, "trace event too large for a live item; left out");
    })
}

/// `items` as JSON arrays of at most [`MAX_TRACE_ITEM_BYTES`] each; `too_large` is told of an item
/// left out because it alone would not fit.
fn pack<T: Serialize>(items: &[T], too_large: impl Fn(&T, usize)) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut bytes = 2;
    for item in items {
        let Ok(json) = serde_json::to_string(item) else {
            continue;
        };
        if json.len() + 2 > MAX_TRACE_ITEM_BYTES {
            too_large(item, json.len());
            continue;
        }
        if !current.is_empty() && bytes + 1 + json.len() > MAX_TRACE_ITEM_BYTES {
            out.push(format!("[{}]", current.join(",")));
            current.clear();
            bytes = 2;
        }
        bytes += json.len() + 1;
        current.push(json);
    }
    if !current.is_empty() {
        out.push(format!("[{}]", current.join(",")));
    }
    out
}

/// Whether a stream image is a live event item (`health`, `registry`).
pub fn is_event_item(item: &HashMap<String, AttributeValue>) -> bool {
    matches!(get_s(item, "pk"), Ok(pk) if pk.starts_with(EVENT_ITEM_PREFIX))
}

/// The events of a live event item (a stream record's `NewImage`).
pub fn decode_event_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Vec<LiveEvent>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("live item {}", get_s(item, "pk").unwrap_or("(without pk)")),
        reason,
    };
    let events = get_s(item, "events").map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_str(events).map_err(|e| corrupt(format!("events: {e}")))
}

/// Whether a stream image is a live trace-event item.
pub fn is_trace_item(item: &HashMap<String, AttributeValue>) -> bool {
    matches!(get_s(item, "pk"), Ok(pk) if pk.starts_with(TRACE_ITEM_PREFIX))
}

/// The trace events of a live trace-event item (a stream record's `NewImage`).
pub fn decode_trace_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Vec<TraceEvent>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("live item {}", get_s(item, "pk").unwrap_or("(without pk)")),
        reason,
    };
    let events = get_s(item, "events").map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_str(events).map_err(|e| corrupt(format!("events: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::TraceHop;

    fn event(i: usize, pad: usize) -> TraceEvent {
        TraceEvent {
            trace_id: format!("{i:032x}"),
            root_service: "frontend".into(),
            root_name: Some("x".repeat(pad)),
            start_unix_ms: 1.0,
            duration_ms: 2.0,
            error: false,
            reason: Some("ratio".into()),
            hops: vec![TraceHop {
                from: "frontend".into(),
                to: "api".into(),
                kind: "call".into(),
                to_kind: "service".into(),
                offset_ms: 0.5,
                duration_ms: 1.0,
                error: false,
            }],
        }
    }

    #[test]
    fn events_are_packed_into_items_under_the_size_limit_and_read_back_in_order() {
        let events: Vec<TraceEvent> = (0..150).map(|i| event(i, 1000)).collect();
        let parts = chunks(&events);
        assert!(parts.len() > 1, "needs several items");
        let mut back = Vec::new();
        for part in &parts {
            assert!(part.len() <= MAX_TRACE_ITEM_BYTES, "{} bytes", part.len());
            let item = Item::from([
                ("pk".to_string(), item::s("trace#shard-0#1#2#0")),
                ("events".to_string(), item::s(part.clone())),
            ]);
            assert!(is_trace_item(&item));
            back.extend(decode_trace_item(&item).unwrap());
        }
        assert_eq!(back, events);
    }

    #[test]
    fn an_oversized_event_is_left_out_and_a_bucket_item_is_not_a_trace_item() {
        let parts = chunks(&[event(1, 10), event(2, MAX_TRACE_ITEM_BYTES), event(3, 10)]);
        assert_eq!(parts.len(), 1);
        let item = Item::from([
            ("pk".to_string(), item::s("trace#s#1#2#0")),
            ("events".to_string(), item::s(parts[0].clone())),
        ]);
        let ids: Vec<String> = decode_trace_item(&item)
            .unwrap()
            .into_iter()
            .map(|e| e.trace_id)
            .collect();
        assert_eq!(ids, vec![format!("{:032x}", 1), format!("{:032x}", 3)]);
        let bucket = Item::from([("pk".to_string(), item::s("00000000000000ab#1m"))]);
        assert!(!is_trace_item(&bucket));
        assert!(!is_event_item(&bucket));
        let broken = Item::from([
            ("pk".to_string(), item::s("trace#s#1#2#0")),
            ("events".to_string(), item::s("{not json")),
        ]);
        assert!(matches!(
            decode_trace_item(&broken),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn live_events_are_packed_and_read_back_with_their_services() {
        let events: Vec<LiveEvent> = (0..40)
            .map(|i| {
                LiveEvent::new(
                    format!("svc-{i}"),
                    format!("{{\"type\":\"health\",\"pad\":\"{}\"}}", "x".repeat(3000)),
                )
            })
            .collect();
        let parts = pack(&events, |_, _| panic!("none is too large"));
        assert!(parts.len() > 1, "needs several items");
        let mut back = Vec::new();
        for part in &parts {
            assert!(part.len() <= MAX_TRACE_ITEM_BYTES);
            let item = Item::from([
                ("pk".to_string(), item::s("event#1#2#0")),
                ("events".to_string(), item::s(part.clone())),
            ]);
            assert!(is_event_item(&item) && !is_trace_item(&item));
            back.extend(decode_event_item(&item).unwrap());
        }
        assert_eq!(back, events);
    }
}
