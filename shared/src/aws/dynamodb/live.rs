//! Live-event items (`LIVE_TABLE`): what the aggregator learned that only live clients want — today
//! the kept traces' `trace` events — written as short-lived items whose DynamoDB Stream feeds the
//! fan-out function, the same path the buckets' updates take. Nobody reads the table itself: items
//! expire by TTL an hour after they were written.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::item::{self, get_s, Item};
use super::{store_error, table};
use crate::ports::{SequenceNumber, StoreError};
use crate::traces::TraceEvent;

/// `pk` prefix of trace-event items (bucket items' `pk` starts with a 16-hex series id, so a stream
/// record is told apart by its key alone).
pub const TRACE_ITEM_PREFIX: &str = "trace#";

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
            let mut item = Item::new();
            item.insert("pk".into(), item::s(pk));
            item.insert("events".into(), item::s(chunk));
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
                Ok(_) => written += 1,
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(PutItemError::ConditionalCheckFailedException(_))
                    ) => {}
                Err(e) => return Err(store_error("PutItem (live event)", &e)),
            }
        }
        Ok(written)
    }
}

/// The events as JSON arrays of at most [`MAX_TRACE_ITEM_BYTES`] each (an event larger than that
/// alone is left out: it would not fit one WebSocket message either).
fn chunks(events: &[TraceEvent]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut bytes = 2;
    for event in events {
        let Ok(json) = serde_json::to_string(event) else {
            continue;
        };
        if json.len() + 2 > MAX_TRACE_ITEM_BYTES {
            tracing::warn!(trace_id = %event.trace_id, bytes = json.len(), "trace event too large for a live item; left out");
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
        let broken = Item::from([
            ("pk".to_string(), item::s("trace#s#1#2#0")),
            ("events".to_string(), item::s("{not json")),
        ]);
        assert!(matches!(
            decode_trace_item(&broken),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
