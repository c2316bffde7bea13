//! The local event-source mapper: reads each shard in order and hands batches to the aggregator
//! exactly as Lambda's Kinesis event source mapping does — including redelivery from the lowest
//! failed sequence number. With `--aws` it polls real Kinesis and goes through the aggregator
//! function's own handler: a `KinesisEvent` in, batch-item failures out.

use std::sync::Arc;
use std::time::Duration;

use flowscope_core::embedded::{EmbeddedStream, RedbStore};
use flowscope_core::live::LiveHub;
use flowscope_core::model::Resolution;
use flowscope_core::pipeline::{ProcessShard, ShardOutcome};
#[cfg(feature = "aws")]
use flowscope_core::ports::StreamSource;
use flowscope_core::ports::{SequenceNumber, ShardBatch, StreamRecord};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::backend::Consumer;
use super::stats::AggregatorStats;
use super::until_stopped;

/// How much one aggregator batch per shard may hold (`--aggregator-batch-records` /
/// `--aggregator-batch-bytes`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Records per batch (Lambda's BatchSize); default 1000.
    pub records: usize,
    /// Record data per embedded batch; default [`DEFAULT_BATCH_BYTES`].
    pub bytes: usize,
}

/// Record data per embedded batch. A batch is decoded whole (several times its stream bytes as points in
/// memory), so when the aggregator falls behind, a record count alone would let one batch per shard
/// hold 1000 full records (~100 MB decoded each). Smaller batches cost throughput: every batch
/// writes each of its buckets once, so a batch of 8k points from 10k series writes far more buckets
/// per point than one of 30k. Measured after a 20 s burst of 500k points/s offered: 512 KiB left the
/// aggregator 60 s behind, 1 MiB 28.5 s, 2 MiB 4.4 s (peak RSS 703 MB), unbounded 8.5 s (peak RSS
/// 3.36 GB). 2 MiB is ~30k points. Lambda's limit is 6 MB.
pub const DEFAULT_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Longest wait for new records before polling again, in case a wake-up is missed.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Back-off after a failed batch before it is delivered again.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// How often a busy shard saves its stream checkpoint. Each save first makes the store's writes
/// durable (one fsync for everything the shards wrote since the last one; the aggregator's own
/// commits do not fsync), so this bounds what a crash replays from the stream log: at most this
/// long of processing, deduplicated by the buckets' watermarks. An idle shard saves at once.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

type SharedAggregator = Arc<dyn ProcessShard>;

/// Starts one polling loop per shard.
pub async fn spawn_all(
    consumer: &Consumer,
    aggregator: &SharedAggregator,
    hub: &Arc<LiveHub>,
    stats: &Arc<AggregatorStats>,
    stopped: &watch::Receiver<bool>,
    limits: BatchLimits,
    tasks: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    match consumer {
        Consumer::Embedded(stream, store) => {
            for shard in stream.shard_names() {
                tasks.spawn(until_stopped(
                    stopped.clone(),
                    run_embedded_shard(
                        stream.clone(),
                        shard,
                        aggregator.clone(),
                        hub.clone(),
                        stats.clone(),
                        limits,
                        store.clone(),
                    ),
                ));
            }
        }
        #[cfg(feature = "aws")]
        Consumer::Kinesis { stream, arn } => {
            for shard in stream.shard_ids().await? {
                tasks.spawn(until_stopped(
                    stopped.clone(),
                    kinesis::run_shard(
                        stream.clone(),
                        arn.clone(),
                        shard,
                        aggregator.clone(),
                        hub.clone(),
                        stats.clone(),
                        limits.records,
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn run_embedded_shard(
    stream: Arc<EmbeddedStream>,
    shard: String,
    aggregator: SharedAggregator,
    hub: Arc<LiveHub>,
    stats: Arc<AggregatorStats>,
    limits: BatchLimits,
    store: Arc<RedbStore>,
) {
    let notify = stream.notifier();
    let mut checkpoint: Option<SequenceNumber> = stream.checkpoint_of(&shard);
    // Processed up to `checkpoint` but not yet saved, and when the last save was.
    let mut unsaved = false;
    let mut saved_at = tokio::time::Instant::now();
    loop {
        // Register interest before reading so an append between the read and the wait still wakes us.
        let notified = notify.notified();
        let records = match stream
            .read_batch(&shard, checkpoint.as_ref(), limits.records, limits.bytes)
            .await
        {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(%shard, error = %e, "reading the stream failed");
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
        };
        if records.is_empty() {
            if unsaved {
                unsaved = !save_checkpoint(&stream, &shard, checkpoint.as_ref(), &store).await;
                saved_at = tokio::time::Instant::now();
            }
            let _ = tokio::time::timeout(IDLE_POLL, notified).await;
            continue;
        }
        let batch = ShardBatch {
            shard_id: shard.clone(),
            records,
        };
        let started = std::time::Instant::now();
        let outcome = aggregator.process_shard(&batch).await;
        super::metrics::events().batch(batch.records.len(), started.elapsed());
        for (seq, reason) in &outcome.metrics.poison {
            tracing::error!(%shard, sequence_number = %seq, %reason, "poison record skipped");
        }
        deliver(&hub, &stats, batch.records.len(), &outcome);
        let retry_from = outcome.retry_from();
        if let Some(seq) = done_up_to(&batch.records, retry_from.as_ref()) {
            stream.mark_consumed(&shard, &seq);
            checkpoint = Some(seq);
            unsaved = true;
        }
        if unsaved && saved_at.elapsed() >= CHECKPOINT_INTERVAL {
            unsaved = !save_checkpoint(&stream, &shard, checkpoint.as_ref(), &store).await;
            saved_at = tokio::time::Instant::now();
        }
        if retry_from.is_some() {
            tracing::warn!(%shard, "batch partly failed; delivering again from the failed record");
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }
}

/// Makes the store durable, then saves `checkpoint`; false when either failed (tried again later:
/// until then a crash replays more, never less).
async fn save_checkpoint(
    stream: &EmbeddedStream,
    shard: &str,
    checkpoint: Option<&SequenceNumber>,
    store: &RedbStore,
) -> bool {
    let Some(seq) = checkpoint else {
        return true;
    };
    let started = std::time::Instant::now();
    let synced = store.sync().await;
    super::metrics::events()
        .store_sync_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = synced {
        tracing::warn!(%shard, error = %e, "making the store durable failed");
        return false;
    }
    match stream.checkpoint(shard, seq) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(%shard, error = %e, "saving the checkpoint failed");
            false
        }
    }
}

/// Counts the batch and hands its bucket updates and trace events to live clients.
fn deliver(hub: &LiveHub, stats: &AggregatorStats, records: usize, outcome: &ShardOutcome) {
    stats.record(records, outcome);
    hub.publish_traces(outcome.trace_events().iter().cloned());
    hub.publish_buckets(
        outcome
            .updates()
            // The dashboard draws 1-minute buckets live; coarser ones are read from the API.
            .filter(|u| u.resolution == Resolution::OneMinute),
    );
}

/// The last record that is done: everything below the failed one (Lambda redelivers from it), or
/// the whole batch. `None` when the very first record failed.
fn done_up_to(
    records: &[StreamRecord],
    retry_from: Option<&SequenceNumber>,
) -> Option<SequenceNumber> {
    match retry_from {
        Some(retry_from) => records
            .iter()
            .map(|r| &r.sequence_number)
            .take_while(|seq| *seq < retry_from)
            .last()
            .cloned(),
        None => records.last().map(|r| r.sequence_number.clone()),
    }
}

#[cfg(feature = "aws")]
mod kinesis {
    use super::*;
    use flowscope_core::aws::lambda::kinesis::{kinesis_event, process_kinesis_event};
    use flowscope_core::aws::KinesisStream;

    /// Lambda polls each shard about once a second when it is idle.
    const KINESIS_IDLE_POLL: Duration = Duration::from_secs(1);

    pub async fn run_shard(
        stream: Arc<KinesisStream>,
        arn: String,
        shard: String,
        aggregator: SharedAggregator,
        hub: Arc<LiveHub>,
        stats: Arc<AggregatorStats>,
        batch_records: usize,
    ) {
        let mut checkpoint: Option<SequenceNumber> = None;
        loop {
            let records = match stream
                .read(&shard, checkpoint.as_ref(), batch_records)
                .await
            {
                Ok(records) => records,
                Err(e) => {
                    tracing::warn!(%shard, error = %e, "reading Kinesis failed");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            };
            if records.is_empty() {
                tokio::time::sleep(KINESIS_IDLE_POLL).await;
                continue;
            }
            let result = match kinesis_event(&arn, &records) {
                Ok(event) => process_kinesis_event(aggregator.as_ref(), None, event).await,
                Err(e) => Err(e),
            };
            let retry_from = match result {
                Ok((response, outcomes)) => {
                    for outcome in &outcomes {
                        deliver(&hub, &stats, records.len(), outcome);
                    }
                    // The partial batch response, read back exactly as Lambda reads it.
                    response
                        .batch_item_failures
                        .iter()
                        .filter_map(|f| f.item_identifier.as_deref())
                        .filter_map(|id| SequenceNumber::parse(id).ok())
                        .min()
                }
                Err(e) => {
                    tracing::warn!(%shard, error = %e, "the aggregator handler failed; retrying the batch");
                    records.first().map(|r| r.sequence_number.clone())
                }
            };
            if let Some(seq) = done_up_to(&records, retry_from.as_ref()) {
                checkpoint = Some(seq);
            }
            if retry_from.is_some() {
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
    }
}
