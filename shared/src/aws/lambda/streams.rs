//! DynamoDB Streams records of the buckets table and the live table → live updates and `trace`
//! events → fan-out to subscribed connections.
//!
//! Each written bucket's `NewImage` carries its full totals, so the fan-out needs no read of the bucket;
//! it only looks up each series once per invocation to label the update.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde_json::Value;

use super::LambdaError;
use crate::aws::dynamodb::{
    decode_bucket_image, decode_event_item, decode_trace_item, is_event_item, is_trace_item,
    BucketImage,
};
use crate::live::{deliver_events, Fanout, FanoutReport, LiveBatch, LiveUpdate};
use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{
    BucketKey, ConnectionPusher, ConnectionStore, LiveEvent, MetricStore, StoreError,
};
use crate::traces::TraceEvent;

/// One DynamoDB-JSON attribute (`{"S": "…"}`, `{"N": "…"}`, `{"B": "<base64>"}`, …).
fn attribute_from_json(value: &Value) -> Result<AttributeValue, String> {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return Err(format!("not a DynamoDB attribute: {value}"));
    };
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{kind} value is not a string"))
    };
    let texts = |v: &Value| -> Result<Vec<String>, String> {
        v.as_array()
            .ok_or_else(|| format!("{kind} value is not a list"))?
            .iter()
            .map(text)
            .collect()
    };
    let binary = |v: &Value| -> Result<Blob, String> {
        base64::engine::general_purpose::STANDARD
            .decode(text(v)?)
            .map(Blob::new)
            .map_err(|e| format!("B value is not base64: {e}"))
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "B" => AttributeValue::B(binary(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().unwrap_or(false)),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts(inner)?),
        "NS" => AttributeValue::Ns(texts(inner)?),
        "BS" => AttributeValue::Bs(
            inner
                .as_array()
                .ok_or("BS value is not a list")?
                .iter()
                .map(binary)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(inner)?),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or("L value is not a list")?
                .iter()
                .map(attribute_from_json)
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unknown DynamoDB attribute type {other}")),
    })
}

/// An item in DynamoDB JSON (as in a stream record's image) as SDK attribute values.
pub fn item_from_json(value: &Value) -> Result<HashMap<String, AttributeValue>, String> {
    value
        .as_object()
        .ok_or_else(|| "an item must be a JSON object".to_string())?
        .iter()
        .map(|(name, attribute)| Ok((name.clone(), attribute_from_json(attribute)?)))
        .collect()
}

/// What a stream batch carries for live clients: bucket images (buckets table) and kept traces'
/// events (live table).
#[derive(Debug, Default)]
pub struct StreamChanges {
    /// The newest image per bucket.
    pub buckets: Vec<BucketImage>,
    pub traces: Vec<TraceEvent>,
    /// `health` and `registry` events (live table), in write order.
    pub events: Vec<LiveEvent>,
}

/// The bucket images and trace events of INSERT and MODIFY records (REMOVE records, TTL deletions
/// among them, are skipped). Records that cannot be decoded are logged and skipped: a stale or
/// missing live update is not worth blocking the stream.
pub fn stream_changes(event: &Event) -> StreamChanges {
    let mut newest: BTreeMap<BucketKey, BucketImage> = BTreeMap::new();
    let mut traces = Vec::new();
    let mut events = Vec::new();
    for record in &event.records {
        if !matches!(record.event_name.as_str(), "INSERT" | "MODIFY") {
            continue;
        }
        let item = match serde_json::to_value(&record.change.new_image)
            .map_err(|e| e.to_string())
            .and_then(|json| item_from_json(&json))
        {
            Ok(item) => item,
            Err(reason) => {
                tracing::warn!(event_id = %record.event_id, %reason, "stream image skipped");
                continue;
            }
        };
        if is_event_item(&item) {
            match decode_event_item(&item) {
                Ok(decoded) => events.extend(decoded),
                Err(reason) => {
                    tracing::warn!(event_id = %record.event_id, %reason, "live events skipped")
                }
            }
            continue;
        }
        if is_trace_item(&item) {
            match decode_trace_item(&item) {
                Ok(events) => traces.extend(events),
                Err(reason) => {
                    tracing::warn!(event_id = %record.event_id, %reason, "trace events skipped")
                }
            }
            continue;
        }
        match decode_bucket_image(&item) {
            // Records of one key arrive in write order, so a later image replaces an earlier one.
            Ok(image) => {
                newest.insert(image.key, image);
            }
            Err(reason) => {
                tracing::warn!(event_id = %record.event_id, %reason, "bucket image skipped")
            }
        }
    }
    StreamChanges {
        buckets: newest.into_values().collect(),
        traces,
        events,
    }
}

/// The bucket images of INSERT and MODIFY records, the newest per bucket.
pub fn bucket_images(event: &Event) -> Vec<BucketImage> {
    stream_changes(event).buckets
}

/// Live updates for the 1-minute buckets among `images` (coarser buckets are read from the query
/// API), labelled with their series. Buckets of series the registry does not know are skipped.
pub async fn live_updates<S: MetricStore + ?Sized>(
    store: &S,
    images: &[BucketImage],
) -> Result<Vec<LiveUpdate>, StoreError> {
    let mut series: HashMap<SeriesId, Option<SeriesMeta>> = HashMap::new();
    let mut updates = Vec::new();
    for image in images
        .iter()
        .filter(|i| i.key.resolution == Resolution::OneMinute)
    {
        let id = image.key.series;
        if let std::collections::hash_map::Entry::Vacant(slot) = series.entry(id) {
            slot.insert(store.get_series(id).await?);
        }
        match series.get(&id).and_then(Option::as_ref) {
            Some(meta) => updates.push(LiveUpdate::from_bucket(
                meta,
                image.key.resolution,
                image.key.start_unix_s,
                &image.stats,
            )),
            None => tracing::warn!(series = %id, "bucket of an unregistered series not pushed"),
        }
    }
    Ok(updates)
}

/// The fan-out function's handler, for the streams of the buckets table (`metrics_update`) and of
/// the live table (`trace`): each connection gets its messages as local mode's flush sends them
/// ([`Fanout::deliver_batch`]). `seq` is the flush time in unix milliseconds: stateless functions
/// share no counter, and a time keeps `seq` rising across invocations as clients expect.
pub async fn handle_bucket_stream<S, C, P>(
    store: &S,
    connections: &C,
    pusher: &P,
    event: &Event,
) -> Result<FanoutReport, LambdaError>
where
    S: MetricStore + ?Sized,
    C: ConnectionStore + ?Sized,
    P: ConnectionPusher + ?Sized,
{
    let changes = stream_changes(event);
    let updates = live_updates(store, &changes.buckets).await?;
    let fanout = Fanout::new(connections, pusher);
    // `health` and `registry` events: one message each to the subscribers of its service.
    let mut events_report = deliver_events(&fanout, &changes.events).await?;
    if updates.is_empty() && changes.traces.is_empty() {
        if !changes.events.is_empty() {
            tracing::info!(
                events = changes.events.len(),
                messages_posted = events_report.messages_posted,
                "live events fanned out"
            );
        }
        return Ok(events_report);
    }
    let seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let batch = LiveBatch {
        seq,
        updates,
        traces: changes.traces,
    };
    let report = fanout.deliver_batch(&batch).await?;
    tracing::info!(
        updates = batch.updates.len(),
        traces = batch.traces.len(),
        events = changes.events.len(),
        messages_posted = report.messages_posted,
        connections_reached = report.connections_reached,
        gone_removed = report.gone_removed,
        failed = report.failed,
        "live updates fanned out"
    );
    events_report.messages_posted += report.messages_posted;
    events_report.connections_reached += report.connections_reached;
    events_report.gone_removed += report.gone_removed;
    events_report.failed += report.failed;
    Ok(events_report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_json_converts_every_attribute_kind() {
        let item = item_from_json(&serde_json::json!({
            "pk": {"S": "0000000000000001#1m"},
            "start": {"N": "60"},
            "sketch": {"B": "AQI="},
            "wm": {"M": {"shardId-0": {"S": "5"}}},
            "topics": {"L": [{"S": "topic#*"}]},
            "flag": {"BOOL": true},
            "nothing": {"NULL": true},
            "names": {"SS": ["a", "b"]}
        }))
        .unwrap();
        assert_eq!(item["pk"], AttributeValue::S("0000000000000001#1m".into()));
        assert_eq!(item["start"], AttributeValue::N("60".into()));
        assert_eq!(item["sketch"], AttributeValue::B(Blob::new(vec![1, 2])));
        assert!(matches!(&item["wm"], AttributeValue::M(m) if m.len() == 1));
        assert!(matches!(&item["topics"], AttributeValue::L(l) if l.len() == 1));
        assert_eq!(item["flag"], AttributeValue::Bool(true));
        assert!(item_from_json(&serde_json::json!({"x": {"Q": "?"}})).is_err());
        assert!(item_from_json(&serde_json::json!({"x": {"B": "%%%"}})).is_err());
    }

    fn record(name: &str, image: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "eventID": format!("e-{name}"),
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_764_000_000,
                "Keys": {"pk": image["pk"].clone()},
                "NewImage": image,
                "SequenceNumber": "1",
                "SizeBytes": 100,
                "StreamViewType": "NEW_IMAGE"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/live/stream/x"
        })
    }

    #[test]
    fn live_items_become_trace_events_and_removes_and_broken_items_are_skipped() {
        let events = r#"[{"trace_id":"ab","root_service":"api","root_name":null,"start_unix_ms":1.0,"duration_ms":2.0,"error":false,"reason":"quota","hops":[]}]"#;
        let event: Event = serde_json::from_value(serde_json::json!({"Records": [
            record("INSERT", serde_json::json!({"pk": {"S": "trace#shard-0#1#2#0"}, "events": {"S": events}})),
            record("REMOVE", serde_json::json!({"pk": {"S": "trace#shard-0#0#0#0"}, "events": {"S": events}})),
            record("INSERT", serde_json::json!({"pk": {"S": "trace#shard-0#3#4#0"}, "events": {"S": "{broken"}})),
            record("MODIFY", serde_json::json!({"pk": {"S": "0000000000000001#1m"}, "start": {"N": "60"}, "count": {"N": "2"}, "sum": {"N": "3"}})),
        ]}))
        .unwrap();
        let changes = stream_changes(&event);
        assert_eq!(changes.traces.len(), 1);
        assert_eq!(changes.traces[0].trace_id, "ab");
        assert_eq!(changes.buckets.len(), 1);
        assert_eq!(changes.buckets[0].stats.count, 2);
    }
}
