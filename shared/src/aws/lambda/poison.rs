//! Poison records (data the aggregator cannot decode) go to the failure queue with enough context to
//! investigate, and are logged with their sequence number; the shard moves on.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use base64::Engine;

use super::LambdaError;
use crate::aws::errors;
use crate::ports::{SequenceNumber, ShardBatch};

/// SQS takes at most 10 messages per SendMessageBatch.
const MAX_MESSAGES_PER_SEND: usize = 10;
/// SQS messages are at most 256 KiB; base64 grows data by 4/3, so larger payloads are cut.
const MAX_DATA_BYTES_IN_MESSAGE: usize = 160 * 1024;

pub struct PoisonQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

/// One record set aside, as sent to the queue (JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoisonMessage {
    pub source: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub reason: String,
    /// The record's data, base64; cut to the first 160 KiB when larger (`data_truncated`).
    pub data_base64: String,
    pub data_truncated: bool,
}

impl PoisonQueue {
    pub fn new(config: &SdkConfig, queue_url: impl Into<String>) -> Self {
        PoisonQueue {
            client: aws_sdk_sqs::Client::new(config),
            queue_url: queue_url.into(),
        }
    }

    /// Logs every poison record and sends it to the queue.
    pub async fn report(
        &self,
        batch: &ShardBatch,
        poison: &[(SequenceNumber, String)],
    ) -> Result<(), LambdaError> {
        let messages = poison_messages(batch, poison);
        for message in &messages {
            tracing::error!(
                shard_id = %message.shard_id,
                sequence_number = %message.sequence_number,
                reason = %message.reason,
                "poison record set aside to the failure queue"
            );
        }
        for (chunk_index, chunk) in messages.chunks(MAX_MESSAGES_PER_SEND).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{chunk_index}-{i}"))
                        .message_body(serde_json::to_string(message).unwrap_or_default())
                        .build()
                        .map_err(|e| LambdaError::Config(format!("SQS entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| LambdaError::Aws {
                    service: "SQS",
                    message: errors::describe("SendMessageBatch", &e),
                })?;
            if let Some(failed) = output.failed().first() {
                return Err(LambdaError::Aws {
                    service: "SQS",
                    message: format!(
                        "{} poison records were not queued: {} {}",
                        output.failed().len(),
                        failed.code(),
                        failed.message().unwrap_or("")
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The messages for `poison`, with each record's data found in `batch`.
pub fn poison_messages(
    batch: &ShardBatch,
    poison: &[(SequenceNumber, String)],
) -> Vec<PoisonMessage> {
    poison
        .iter()
        .map(|(sequence_number, reason)| {
            let record = batch
                .records
                .iter()
                .find(|r| &r.sequence_number == sequence_number);
            let data = record.map(|r| r.data.as_ref()).unwrap_or_default();
            let kept = &data[..data.len().min(MAX_DATA_BYTES_IN_MESSAGE)];
            PoisonMessage {
                source: "flowscope-aggregator".to_string(),
                shard_id: batch.shard_id.clone(),
                sequence_number: sequence_number.to_string(),
                partition_key: record.map(|r| r.partition_key.clone()).unwrap_or_default(),
                reason: reason.clone(),
                data_base64: base64::engine::general_purpose::STANDARD.encode(kept),
                data_truncated: kept.len() < data.len(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::StreamRecord;
    use bytes::Bytes;

    #[test]
    fn messages_carry_the_record_its_position_and_the_reason() {
        let batch = ShardBatch {
            shard_id: "shardId-000000000001".into(),
            records: vec![StreamRecord {
                shard_id: "shardId-000000000001".into(),
                sequence_number: SequenceNumber::from_u128(77),
                partition_key: "api".into(),
                data: Bytes::from_static(b"garbage"),
                arrival_unix_ms: 0,
            }],
        };
        let messages = poison_messages(
            &batch,
            &[(SequenceNumber::from_u128(77), "bad magic".into())],
        );
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(
            (
                m.shard_id.as_str(),
                m.sequence_number.as_str(),
                m.partition_key.as_str()
            ),
            ("shardId-000000000001", "77", "api")
        );
        assert_eq!(m.reason, "bad magic");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&m.data_base64)
                .unwrap(),
            b"garbage"
        );
        assert!(!m.data_truncated);
    }
}
