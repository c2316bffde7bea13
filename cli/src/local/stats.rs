//! Counters of the local pipeline, served at `GET /api/pipeline` (and read by the benchmark script).

use std::sync::atomic::{AtomicU64, Ordering};

use flowscope_core::pipeline::ShardOutcome;
use serde::Serialize;

#[derive(Debug, Default)]
pub struct AggregatorStats {
    batches: AtomicU64,
    records: AtomicU64,
    retried_batches: AtomicU64,
    poison_records: AtomicU64,
    points_applied: AtomicU64,
    points_duplicate: AtomicU64,
    points_noop: AtomicU64,
    points_expired: AtomicU64,
    spans: AtomicU64,
    trace_events: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AggregatorStatsSnapshot {
    pub batches: u64,
    pub records: u64,
    pub retried_batches: u64,
    pub poison_records: u64,
    pub points_applied: u64,
    pub points_duplicate: u64,
    pub points_noop: u64,
    pub points_expired: u64,
    pub spans: u64,
    pub trace_events: u64,
}

impl AggregatorStats {
    pub fn record(&self, records: usize, shard_outcome: &ShardOutcome) {
        let outcome = &shard_outcome.metrics;
        let add = |counter: &AtomicU64, n: u64| {
            counter.fetch_add(n, Ordering::Relaxed);
        };
        add(&self.batches, 1);
        add(&self.records, records as u64);
        add(
            &self.retried_batches,
            u64::from(outcome.retry_from.is_some()),
        );
        add(&self.poison_records, outcome.poison.len() as u64);
        add(&self.points_applied, outcome.points_applied);
        add(&self.points_duplicate, outcome.points_duplicate);
        add(&self.points_noop, outcome.points_noop);
        add(&self.points_expired, outcome.points_expired);
        if let Some(traces) = &shard_outcome.traces {
            add(&self.spans, traces.counters.fold.spans_new);
            add(&self.trace_events, traces.trace_events.len() as u64);
        }
    }

    pub fn snapshot(&self) -> AggregatorStatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        AggregatorStatsSnapshot {
            batches: get(&self.batches),
            records: get(&self.records),
            retried_batches: get(&self.retried_batches),
            poison_records: get(&self.poison_records),
            points_applied: get(&self.points_applied),
            points_duplicate: get(&self.points_duplicate),
            points_noop: get(&self.points_noop),
            points_expired: get(&self.points_expired),
            spans: get(&self.spans),
            trace_events: get(&self.trace_events),
        }
    }
}
