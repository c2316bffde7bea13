//! One shard batch through both folds: metric points into buckets ([`crate::aggregate`]) and spans
//! into RED metrics, the service graph and kept traces ([`crate::traces`]). Records are decoded once;
//! the batch must be delivered again from the lower of the two folds' retry points, and each fold's
//! watermarks make that redelivery harmless to the other's work.

use std::sync::Arc;

use crate::aggregate::{Aggregator, BatchOutcome, BucketUpdate, DecodedRecord};
use crate::model::Retention;
use crate::ports::{MetricStore, SequenceNumber, ShardBatch, TraceStore};
use crate::record::{self, RecordPayload};
use crate::traces::{TraceConfig, TraceEvent, TraceOutcome, TraceProcessor};

/// What one batch did.
#[derive(Debug, Default)]
pub struct ShardOutcome {
    pub metrics: BatchOutcome,
    pub traces: Option<TraceOutcome>,
}

impl ShardOutcome {
    /// Lowest sequence number to deliver again (Lambda's batch-item failure), if any.
    pub fn retry_from(&self) -> Option<SequenceNumber> {
        let traces = self.traces.as_ref().and_then(|t| t.retry_from.clone());
        match (self.metrics.retry_from.clone(), traces) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every bucket written: metric buckets, then RED and graph-edge buckets.
    pub fn updates(&self) -> impl Iterator<Item = &BucketUpdate> {
        self.metrics
            .updates
            .iter()
            .chain(self.traces.iter().flat_map(|t| t.updates.iter()))
    }

    pub fn trace_events(&self) -> &[TraceEvent] {
        self.traces
            .as_ref()
            .map_or(&[][..], |t| t.trace_events.as_slice())
    }
}

/// Anything that folds shard batches: the metrics [`Aggregator`] alone, or the full
/// [`ShardProcessor`]. The Lambda handler and the local event-source mapper take either.
#[async_trait::async_trait]
pub trait ProcessShard: Send + Sync {
    async fn process_shard(&self, batch: &ShardBatch) -> ShardOutcome;
}

#[async_trait::async_trait]
impl<S: MetricStore + ?Sized> ProcessShard for Aggregator<S> {
    async fn process_shard(&self, batch: &ShardBatch) -> ShardOutcome {
        ShardOutcome {
            metrics: self.process(batch).await,
            traces: None,
        }
    }
}

#[async_trait::async_trait]
impl<S: MetricStore + ?Sized, T: TraceStore + ?Sized> ProcessShard for ShardProcessor<S, T> {
    async fn process_shard(&self, batch: &ShardBatch) -> ShardOutcome {
        self.process(batch).await
    }
}

pub struct ShardProcessor<S: MetricStore + ?Sized, T: TraceStore + ?Sized> {
    metrics: Aggregator<S>,
    traces: TraceProcessor<S, T>,
}

impl<S: MetricStore + ?Sized, T: TraceStore + ?Sized> ShardProcessor<S, T> {
    pub fn new(store: Arc<S>, traces: Arc<T>, retention: Retention) -> Self {
        ShardProcessor {
            metrics: Aggregator::new(store.clone(), retention),
            traces: TraceProcessor::new(
                store,
                traces,
                TraceConfig {
                    retention,
                    ..TraceConfig::default()
                },
            ),
        }
    }

    /// Decodes and folds one shard batch. Never fails as a whole: see [`ShardOutcome::retry_from`].
    pub async fn process(&self, batch: &ShardBatch) -> ShardOutcome {
        let mut metric_records = Vec::with_capacity(batch.records.len());
        let mut span_records = Vec::new();
        for r in &batch.records {
            match record::decode(&r.data) {
                Ok(RecordPayload::Spans(spans)) => {
                    span_records.push((r.sequence_number.clone(), spans))
                }
                // Metrics and poison both go to the aggregator, which reports poison records.
                other => metric_records.push(DecodedRecord {
                    sequence_number: r.sequence_number.clone(),
                    payload: other.map_err(|e| e.to_string()),
                }),
            }
        }
        let metrics = self
            .metrics
            .process_decoded(&batch.shard_id, metric_records)
            .await;
        let traces = if span_records.is_empty() {
            None
        } else {
            Some(self.traces.process(&batch.shard_id, &span_records).await)
        };
        ShardOutcome { metrics, traces }
    }
}
