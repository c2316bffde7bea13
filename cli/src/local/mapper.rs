//! The local event-source mapper: reads each shard of the embedded stream in order and hands batches
//! to the aggregator exactly as Lambda's Kinesis event source mapping does — including redelivery
//! from the lowest failed sequence number.

use std::sync::Arc;
use std::time::Duration;

use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::embedded::{EmbeddedStream, RedbStore};
use flowscope_core::live::{LiveHub, LiveUpdate};
use flowscope_core::model::Resolution;
use flowscope_core::ports::{SequenceNumber, ShardBatch, StreamSource};

use super::stats::AggregatorStats;

/// Records per batch (Lambda's BatchSize).
const BATCH_SIZE: usize = 1000;
/// Longest wait for new records before polling again, in case a wake-up is missed.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Back-off after a failed batch before it is delivered again.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

pub async fn run_shard(
    stream: Arc<EmbeddedStream>,
    shard: String,
    aggregator: Arc<Aggregator<RedbStore>>,
    hub: Arc<LiveHub>,
    stats: Arc<AggregatorStats>,
) {
    let notify = stream.notifier();
    let mut checkpoint: Option<SequenceNumber> = stream.checkpoint_of(&shard);
    loop {
        // Register interest before reading so an append between the read and the wait still wakes us.
        let notified = notify.notified();
        let records = match stream.read(&shard, checkpoint.as_ref(), BATCH_SIZE).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(%shard, error = %e, "reading the stream failed");
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
        };
        if records.is_empty() {
            let _ = tokio::time::timeout(IDLE_POLL, notified).await;
            continue;
        }
        let batch = ShardBatch {
            shard_id: shard.clone(),
            records,
        };
        let outcome = aggregator.process(&batch).await;
        stats.record(batch.records.len(), &outcome);
        for (seq, reason) in &outcome.poison {
            tracing::error!(%shard, sequence_number = %seq, %reason, "poison record skipped");
        }
        hub.publish(
            outcome
                .updates
                .iter()
                // The dashboard draws 1-minute buckets live; coarser ones are read from the API.
                .filter(|u| u.resolution == Resolution::OneMinute)
                .map(|u| {
                    LiveUpdate::from_bucket(&u.series, u.resolution, u.start_unix_s, &u.stats)
                }),
        );
        let done_up_to = match &outcome.retry_from {
            // Everything below the failed record is done; redeliver from it, as Lambda does.
            Some(retry_from) => batch
                .records
                .iter()
                .map(|r| &r.sequence_number)
                .take_while(|seq| *seq < retry_from)
                .last()
                .cloned(),
            None => batch.records.last().map(|r| r.sequence_number.clone()),
        };
        if let Some(seq) = done_up_to {
            if let Err(e) = stream.checkpoint(&shard, &seq) {
                tracing::warn!(%shard, error = %e, "saving the checkpoint failed");
            }
            checkpoint = Some(seq);
        }
        if outcome.retry_from.is_some() {
            tracing::warn!(%shard, "batch partly failed; delivering again from the failed record");
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }
}
