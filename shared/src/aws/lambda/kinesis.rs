//! Kinesis events (Lambda's event source mapping) → shard batches → the aggregator → the partial batch
//! response that makes Lambda redeliver from the lowest failed record.

use std::collections::BTreeMap;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use bytes::Bytes;

use super::poison::PoisonQueue;
use super::LambdaError;
use crate::aws::DynamoLiveEvents;
use crate::pipeline::{ProcessShard, ShardOutcome};
use crate::ports::{SequenceNumber, ShardBatch, StreamRecord};

/// The shard of a record: its `eventID` is `shardId-000000000000:<sequence number>`.
fn shard_of(event_id: Option<&str>) -> Result<&str, LambdaError> {
    let event_id = event_id.ok_or_else(|| LambdaError::Event("record without eventID".into()))?;
    match event_id.split_once(':') {
        Some((shard, _)) if !shard.is_empty() => Ok(shard),
        _ => Err(LambdaError::Event(format!(
            "eventID {event_id:?} is not <shardId>:<sequenceNumber>"
        ))),
    }
}

/// The event's records grouped by shard, each group in sequence order. (The event source mapping
/// sends one shard per invocation; grouping keeps this correct regardless.)
pub fn shard_batches(event: &KinesisEvent) -> Result<Vec<ShardBatch>, LambdaError> {
    let mut by_shard: BTreeMap<String, Vec<StreamRecord>> = BTreeMap::new();
    for record in &event.records {
        let shard_id = shard_of(record.event_id.as_deref())?;
        let sequence_number = SequenceNumber::parse(&record.kinesis.sequence_number)
            .map_err(|e| LambdaError::Event(e.to_string()))?;
        by_shard
            .entry(shard_id.to_string())
            .or_default()
            .push(StreamRecord {
                shard_id: shard_id.to_string(),
                sequence_number,
                partition_key: record.kinesis.partition_key.clone(),
                // aws_lambda_events already decoded the base64.
                data: Bytes::copy_from_slice(&record.kinesis.data.0),
                arrival_unix_ms: record
                    .kinesis
                    .approximate_arrival_timestamp
                    .0
                    .timestamp_millis(),
            });
    }
    Ok(by_shard
        .into_iter()
        .map(|(shard_id, mut records)| {
            records.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
            ShardBatch { shard_id, records }
        })
        .collect())
}

/// `batchItemFailures` naming, per shard, the lowest sequence number to deliver again.
pub fn batch_response(
    retry_from: impl IntoIterator<Item = SequenceNumber>,
) -> KinesisEventResponse {
    let mut response = KinesisEventResponse::default();
    response.set_failures(retry_from.into_iter().map(|seq| seq.to_string()));
    response
}

/// The aggregator function's handler: folds each shard batch, sets poison records aside, and answers
/// with the partial batch response. A poison record that could not be queued is retried (from its
/// sequence number) rather than dropped unrecorded.
pub async fn handle_kinesis_event<P: ProcessShard + ?Sized>(
    aggregator: &P,
    poison_queue: Option<&PoisonQueue>,
    event: KinesisEvent,
) -> Result<KinesisEventResponse, LambdaError> {
    process_kinesis_event(aggregator, poison_queue, event)
        .await
        .map(|(response, _)| response)
}

/// [`handle_kinesis_event`], and the kept traces' `trace` events of each shard batch written to the
/// live table (whose stream feeds the fan-out function, as the buckets' stream does). A failed
/// live write is logged, not retried: the batch is applied, and a trace event is a live animation,
/// not data (the trace stays readable from the query API).
pub async fn handle_kinesis_event_with_live<P: ProcessShard + ?Sized>(
    aggregator: &P,
    poison_queue: Option<&PoisonQueue>,
    live: Option<&DynamoLiveEvents>,
    event: KinesisEvent,
) -> Result<KinesisEventResponse, LambdaError> {
    let ranges = shard_ranges(&event)?;
    let (response, outcomes) = process_kinesis_event(aggregator, poison_queue, event).await?;
    if let Some(live) = live {
        for ((shard_id, first, last), outcome) in ranges.iter().zip(&outcomes) {
            let events = outcome.trace_events();
            if events.is_empty() {
                continue;
            }
            match live
                .put_trace_events(shard_id, first, last, events, super::now_unix_s())
                .await
            {
                Ok(items) => tracing::info!(%shard_id, trace_events = events.len(), items,
                    "trace events written for the fan-out"),
                Err(error) => tracing::warn!(%shard_id, %error, trace_events = events.len(),
                    "trace events not written: live clients miss them"),
            }
        }
    }
    Ok(response)
}

/// Each shard's first and last sequence number in the event, in [`shard_batches`]' order.
fn shard_ranges(
    event: &KinesisEvent,
) -> Result<Vec<(String, SequenceNumber, SequenceNumber)>, LambdaError> {
    let mut ranges: BTreeMap<String, (SequenceNumber, SequenceNumber)> = BTreeMap::new();
    for record in &event.records {
        let shard_id = shard_of(record.event_id.as_deref())?;
        let seq = SequenceNumber::parse(&record.kinesis.sequence_number)
            .map_err(|e| LambdaError::Event(e.to_string()))?;
        ranges
            .entry(shard_id.to_string())
            .and_modify(|(first, last)| {
                if seq < *first {
                    *first = seq.clone();
                }
                if seq > *last {
                    *last = seq.clone();
                }
            })
            .or_insert_with(|| (seq.clone(), seq));
    }
    Ok(ranges
        .into_iter()
        .map(|(shard, (first, last))| (shard, first, last))
        .collect())
}

/// [`handle_kinesis_event`], also returning each shard batch's outcome (the local event-source
/// mapper feeds their bucket updates to live clients).
pub async fn process_kinesis_event<P: ProcessShard + ?Sized>(
    aggregator: &P,
    poison_queue: Option<&PoisonQueue>,
    event: KinesisEvent,
) -> Result<(KinesisEventResponse, Vec<ShardOutcome>), LambdaError> {
    let mut retry_from = Vec::new();
    let mut outcomes = Vec::new();
    for batch in shard_batches(&event)? {
        let shard_outcome = aggregator.process_shard(&batch).await;
        let outcome = &shard_outcome.metrics;
        let mut retry = shard_outcome.retry_from();
        if !outcome.poison.is_empty() {
            let queued = match poison_queue {
                Some(queue) => queue.report(&batch, &outcome.poison).await,
                None => {
                    for (seq, reason) in &outcome.poison {
                        tracing::error!(shard_id = %batch.shard_id, sequence_number = %seq, %reason,
                            "poison record skipped (no POISON_QUEUE_URL)");
                    }
                    Ok(())
                }
            };
            if let Err(error) = queued {
                tracing::error!(%error, "poison records could not be queued; retrying them");
                let lowest_poison = outcome.poison.iter().map(|(seq, _)| seq).min().cloned();
                retry = match (retry, lowest_poison) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        tracing::info!(
            shard_id = %batch.shard_id,
            records = batch.records.len(),
            points_applied = outcome.points_applied,
            points_duplicate = outcome.points_duplicate,
            points_expired = outcome.points_expired,
            buckets_written = outcome.updates.len(),
            poison = outcome.poison.len(),
            retry_from = retry.as_ref().map(|s| s.to_string()),
            "batch processed"
        );
        retry_from.extend(retry);
        outcomes.push(shard_outcome);
    }
    Ok((batch_response(retry_from), outcomes))
}

/// The event Lambda's event source mapping delivers for `records` read from `stream_arn` (base64
/// data, `eventID` = `<shardId>:<sequenceNumber>`, arrival in fractional seconds): what the local
/// event-source mapper and the tests hand to the handler.
pub fn kinesis_event(
    stream_arn: &str,
    records: &[StreamRecord],
) -> Result<KinesisEvent, LambdaError> {
    use base64::Engine;
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number.as_str(),
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": r.arrival_unix_ms as f64 / 1000.0
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{}:{}", r.shard_id, r.sequence_number),
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
        .map_err(|e| LambdaError::Event(format!("cannot build a Kinesis event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(records: &[(&str, &str, &str)]) -> KinesisEvent {
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|(event_id, seq, data)| {
                serde_json::json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": "api",
                        "sequenceNumber": seq,
                        "data": data,
                        "approximateArrivalTimestamp": 1_700_000_000.987
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": event_id,
                    "eventName": "aws:kinesis:record",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/points"
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    #[test]
    fn records_become_ordered_shard_batches_with_decoded_data() {
        let big = "49590338271490256608559692540925702759324208523137515618";
        let small = "49590338271490256608559692538361571095921575989136588898";
        let batches = shard_batches(&event(&[
            (&format!("shardId-000000000000:{big}"), big, "AQI="),
            (&format!("shardId-000000000000:{small}"), small, "aGk="),
        ]))
        .unwrap();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.shard_id, "shardId-000000000000");
        assert_eq!(batch.records[0].sequence_number.as_str(), small);
        assert_eq!(batch.records[0].data.as_ref(), b"hi");
        assert_eq!(batch.records[1].data.as_ref(), &[1, 2]);
        assert_eq!(batch.records[0].arrival_unix_ms, 1_700_000_000_987);
        assert_eq!(batch.records[0].partition_key, "api");
    }

    #[test]
    fn an_event_id_without_a_shard_is_a_malformed_event() {
        let result = shard_batches(&event(&[("no-colon", "1", "")]));
        assert!(matches!(result, Err(LambdaError::Event(_))));
    }

    #[test]
    fn retry_from_becomes_the_item_identifier_lambda_restarts_from() {
        let response = batch_response([SequenceNumber::from_u128(12345)]);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "12345"}]})
        );
        let none = serde_json::to_value(batch_response([])).unwrap();
        assert_eq!(none, serde_json::json!({"batchItemFailures": []}));
    }
}
