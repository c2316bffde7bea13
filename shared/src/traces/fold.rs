//! What one stream record of spans does, as a pure function of the state before it: RED observations,
//! edge pairing and expiry, sampling decisions, spans to store and hops to show live.
//!
//! Purity is what exactly-once rests on (see `processor`): folding the same records from the same
//! state gives the same effects at the same records, so a redelivery recomputes identical
//! contributions for the bucket watermarks to drop, and the state saved after a partial failure can
//! be recomputed for the records below the failure. The only outside input is the clock guard on event
//! time (`TraceConfig::max_clock_skew_seconds`), which matters only for spans from a broken clock.
//!
//! A span already in its trace's seen set is skipped entirely: that is what makes a span delivered
//! twice (a redelivered batch over saved state, or a duplicated ingest request) count once.

use std::collections::{HashMap, HashSet};

use crate::spans::Span;

use super::config::TraceConfig;
use super::graph::{Edge, Expired, Half, Offer};
use super::red::{self, is_error};
use super::sampling::{self, Decision};
use super::series::{Observation, SeriesTable};
use super::state::{ShardState, TraceState};

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Up to this many fresh spans, a span's repetition within its record is found by a scan.
const SCAN_LIMIT: usize = 16;
/// Quota counts are kept for this many minutes behind the shard's event time.
const QUOTA_MINUTES_KEPT: i64 = 10;

/// Spans of one trace that a record asks to store.
#[derive(Debug, Clone, PartialEq)]
pub struct SpansToStore {
    pub record: usize,
    pub trace_id: [u8; 16],
    /// Indexes into the record's spans.
    pub spans: Vec<usize>,
    /// The trace's decision after this record.
    pub kept: bool,
}

/// An edge of a kept trace, to animate live.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub record: usize,
    pub trace_id: [u8; 16],
    pub edge: Edge,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldCounters {
    /// Spans applied for the first time.
    pub spans_new: u64,
    /// Spans skipped because their trace had already applied them.
    pub spans_duplicate: u64,
    pub edges_paired: u64,
    pub edges_virtual: u64,
    /// Halves that expired (or were evicted) with no partner and no peer to name.
    pub halves_unpaired: u64,
    /// Halves that left early because the shard's waiting set was full.
    pub halves_evicted: u64,
    pub traces_kept: u64,
    pub traces_dropped: u64,
    /// Dropped traces kept after all because an error arrived.
    pub traces_promoted: u64,
}

/// Everything records did, each effect tagged with the index of the record that caused it.
#[derive(Debug, Default)]
pub struct Effects {
    pub observations: Vec<(usize, Observation)>,
    pub store: Vec<SpansToStore>,
    pub hops: Vec<Hop>,
    /// (record, trace) for every kept trace a record touched, in order.
    pub kept_traces: Vec<(usize, [u8; 16])>,
    pub counters: FoldCounters,
}

/// The state the fold starts from: the shard's and that of the traces in the batch.
#[derive(Debug, Clone, Default)]
pub struct FoldState {
    pub shard: ShardState,
    pub traces: HashMap<[u8; 16], TraceState>,
}

pub struct TraceFold<'a> {
    config: &'a TraceConfig,
    state: FoldState,
    /// Traces whose state changed (to save).
    changed: HashSet<[u8; 16]>,
    /// Reused buffer for one span's or edge's observations.
    scratch: Vec<Observation>,
}

impl<'a> TraceFold<'a> {
    pub fn new(config: &'a TraceConfig, state: FoldState) -> Self {
        TraceFold {
            config,
            state,
            changed: HashSet::new(),
            scratch: Vec::new(),
        }
    }

    pub fn state(&self) -> &FoldState {
        &self.state
    }

    pub fn into_state(self) -> FoldState {
        self.state
    }

    /// The trace states changed by the records folded so far.
    pub fn changed_traces(&self) -> impl Iterator<Item = (&[u8; 16], &TraceState)> {
        self.changed
            .iter()
            .filter_map(|id| self.state.traces.get_key_value(id))
    }

    /// Folds record `record` (its spans in order); `now_unix_nano` only guards event time.
    pub fn apply(
        &mut self,
        record: usize,
        spans: &[Span],
        now_unix_nano: u64,
        series: &mut SeriesTable,
        effects: &mut Effects,
    ) {
        let horizon =
            now_unix_nano.saturating_add(self.config.max_clock_skew_seconds * NANOS_PER_SECOND);
        let shard = &mut self.state.shard;
        shard.event_time_unix_nano = spans
            .iter()
            .map(|s| s.end_unix_nano)
            .filter(|end| *end <= horizon)
            .fold(shard.event_time_unix_nano, u64::max);
        let event_time = shard.event_time_unix_nano;
        let deadline =
            event_time.saturating_add(self.config.pairing_window_seconds * NANOS_PER_SECOND);

        let at = Record {
            index: record,
            spans,
            deadline,
        };
        for (trace_id, indexes) in group_by_trace(spans) {
            self.apply_trace(&at, trace_id, &indexes, series, effects);
        }

        let shard = &mut self.state.shard;
        let mut left = shard.pending.expire(event_time);
        let expired = left.len();
        left.extend(shard.pending.evict_over(self.config.max_pending_halves));
        effects.counters.halves_evicted += (left.len() - expired) as u64;
        for gone in left {
            match gone {
                Expired::Virtual { key, kept, edge } => {
                    effects.counters.edges_virtual += 1;
                    add_edge(
                        record,
                        key.0,
                        kept,
                        edge,
                        series,
                        &mut self.scratch,
                        effects,
                    );
                }
                Expired::Dropped => effects.counters.halves_unpaired += 1,
            }
        }
        let minute = (event_time / NANOS_PER_SECOND / 60) as i64;
        shard.quotas.forget_before(minute - QUOTA_MINUTES_KEPT);
    }

    fn apply_trace(
        &mut self,
        at: &Record<'_>,
        trace_id: [u8; 16],
        indexes: &[usize],
        series: &mut SeriesTable,
        effects: &mut Effects,
    ) {
        let (record, spans) = (at.index, at.spans);
        let seen = self.state.traces.get(&trace_id).map(|t| &t.seen);
        let mut fresh: Vec<usize> = Vec::with_capacity(indexes.len());
        // Span ids already taken from this record: a scan of `fresh` while it is short (a record
        // holds a handful of spans of a trace), a set beyond that.
        let mut ids_in_record: HashSet<u64> = HashSet::new();
        for &i in indexes {
            let id = u64::from_be_bytes(spans[i].span_id);
            let repeated = if fresh.len() < SCAN_LIMIT {
                fresh
                    .iter()
                    .any(|&j| u64::from_be_bytes(spans[j].span_id) == id)
            } else {
                if ids_in_record.is_empty() {
                    ids_in_record
                        .extend(fresh.iter().map(|&j| u64::from_be_bytes(spans[j].span_id)));
                }
                !ids_in_record.insert(id)
            };
            if seen.is_some_and(|s| s.contains(&id)) || repeated {
                effects.counters.spans_duplicate += 1;
            } else {
                fresh.push(i);
            }
        }
        if fresh.is_empty() {
            return;
        }
        effects.counters.spans_new += fresh.len() as u64;
        let has_error = fresh.iter().any(|&i| is_error(&spans[i]));

        let decision = match self.state.traces.get(&trace_id) {
            Some(state) => {
                let promoted = sampling::promote(state.decision, has_error);
                if promoted != state.decision {
                    effects.counters.traces_promoted += 1;
                }
                promoted
            }
            None => {
                // The root's service when the root came first, else the earliest span's.
                let first = fresh
                    .iter()
                    .copied()
                    .find(|&i| spans[i].parent_span_id.is_none())
                    .or_else(|| {
                        fresh
                            .iter()
                            .copied()
                            .min_by_key(|&i| spans[i].start_unix_nano)
                    })
                    .unwrap_or(fresh[0]);
                let minute = (spans[first].start_unix_nano / NANOS_PER_SECOND / 60) as i64;
                let decision = sampling::decide(
                    &self.config.sampling,
                    &mut self.state.shard.quotas,
                    &spans[first].service,
                    minute,
                    &trace_id,
                    has_error,
                );
                match decision {
                    Decision::Keep(_) => effects.counters.traces_kept += 1,
                    Decision::Drop => effects.counters.traces_dropped += 1,
                }
                self.state.traces.insert(
                    trace_id,
                    TraceState {
                        decision,
                        service: spans[first].service.clone(),
                        start_unix_nano: u64::MAX,
                        end_unix_nano: 0,
                        root: None,
                        error: false,
                        seen: Default::default(),
                    },
                );
                decision
            }
        };
        let kept = decision.is_kept();
        if let Some(state) = self.state.traces.get_mut(&trace_id) {
            state.decision = decision;
            state.error |= has_error;
            for &i in &fresh {
                let span = &spans[i];
                state.start_unix_nano = state.start_unix_nano.min(span.start_unix_nano);
                state.end_unix_nano = state.end_unix_nano.max(span.end_unix_nano);
                if span.parent_span_id.is_none() && state.root.is_none() {
                    state.root = Some((span.service.clone(), span.name.clone()));
                }
                if state.seen.len() < self.config.max_seen_spans {
                    state.seen.insert(u64::from_be_bytes(span.span_id));
                }
            }
        }
        self.changed.insert(trace_id);

        for &i in &fresh {
            let span = &spans[i];
            red::observe(span, series, &mut self.scratch);
            effects
                .observations
                .extend(self.scratch.drain(..).map(|o| (record, o)));
            let Some((key, mut half)) = Half::of(span, kept) else {
                continue;
            };
            half.deadline_unix_nano = at.deadline;
            match self.state.shard.pending.offer(key, half) {
                Offer::Paired(edge) => {
                    effects.counters.edges_paired += 1;
                    add_edge(
                        record,
                        trace_id,
                        kept,
                        edge,
                        series,
                        &mut self.scratch,
                        effects,
                    );
                }
                Offer::Waiting => {}
                Offer::Unpaired => effects.counters.halves_unpaired += 1,
            }
        }
        effects.store.push(SpansToStore {
            record,
            trace_id,
            spans: fresh,
            kept,
        });
        if kept {
            effects.kept_traces.push((record, trace_id));
        }
    }
}

/// The record being folded.
struct Record<'s> {
    index: usize,
    spans: &'s [Span],
    /// Deadline of the halves it leaves waiting.
    deadline: u64,
}

fn add_edge(
    record: usize,
    trace_id: [u8; 16],
    kept: bool,
    edge: Edge,
    series: &mut SeriesTable,
    scratch: &mut Vec<Observation>,
    effects: &mut Effects,
) {
    edge.observe(series, scratch);
    effects
        .observations
        .extend(scratch.drain(..).map(|o| (record, o)));
    if kept {
        effects.hops.push(Hop {
            record,
            trace_id,
            edge,
        });
    }
}

/// Span indexes per trace, traces in order of first appearance (a record usually holds one trace).
fn group_by_trace(spans: &[Span]) -> Vec<([u8; 16], Vec<usize>)> {
    // The usual record (one exporting service's spans of one trace) needs no map.
    if let Some(first) = spans.first() {
        if spans.iter().all(|s| s.trace_id == first.trace_id) {
            return vec![(first.trace_id, (0..spans.len()).collect())];
        }
    }
    let mut slots: HashMap<[u8; 16], usize> = HashMap::new();
    let mut groups: Vec<([u8; 16], Vec<usize>)> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let slot = *slots.entry(span.trace_id).or_insert_with(|| {
            groups.push((span.trace_id, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attributes;
    use crate::spans::{SpanKind, SpanStatus};

    const SEC: u64 = NANOS_PER_SECOND;
    const NOW: u64 = 10_000 * SEC;

    fn span(trace: u8, id: u8, kind: SpanKind, end: u64) -> Span {
        Span {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: None,
            service: "api".into(),
            name: "op".into(),
            kind,
            start_unix_nano: end - SEC / 100,
            end_unix_nano: end,
            status: SpanStatus::Unset,
            attributes: Attributes::new(),
        }
    }

    fn db_call(end: u64) -> Span {
        let mut call = span(1, 1, SpanKind::Client, end);
        call.attributes
            .insert("db.system".into(), "postgresql".into());
        call
    }

    #[test]
    fn a_span_from_a_clock_far_ahead_does_not_expire_waiting_halves() {
        let config = TraceConfig::default();
        let mut fold = TraceFold::new(&config, FoldState::default());
        let mut series = SeriesTable::new();
        let mut effects = Effects::default();
        let base = NOW - 100 * SEC;
        fold.apply(0, &[db_call(base)], NOW, &mut series, &mut effects);
        let future = span(2, 2, SpanKind::Server, NOW + 3600 * SEC);
        fold.apply(1, &[future], NOW, &mut series, &mut effects);
        assert_eq!(effects.counters.edges_virtual, 0);
        assert_eq!(fold.state().shard.event_time_unix_nano, base);

        let next = span(3, 3, SpanKind::Server, base + 31 * SEC);
        fold.apply(2, &[next], NOW, &mut series, &mut effects);
        assert_eq!(effects.counters.edges_virtual, 1);
    }

    #[test]
    fn a_span_repeated_within_a_long_record_counts_once() {
        let config = TraceConfig::default();
        let mut fold = TraceFold::new(&config, FoldState::default());
        let mut series = SeriesTable::new();
        let mut effects = Effects::default();
        let mut spans: Vec<Span> = (1..=20)
            .map(|id| span(1, id, SpanKind::Internal, NOW))
            .collect();
        spans.push(spans[17].clone());
        spans.push(spans[2].clone());
        fold.apply(0, &spans, NOW, &mut series, &mut effects);
        assert_eq!(effects.counters.spans_new, 20);
        assert_eq!(effects.counters.spans_duplicate, 2);
    }

    #[test]
    fn a_span_repeated_within_a_record_counts_once() {
        let config = TraceConfig::default();
        let mut fold = TraceFold::new(&config, FoldState::default());
        let mut series = SeriesTable::new();
        let mut effects = Effects::default();
        let request = span(1, 1, SpanKind::Server, NOW);
        fold.apply(
            0,
            &[request.clone(), request],
            NOW,
            &mut series,
            &mut effects,
        );
        assert_eq!(effects.counters.spans_new, 1);
        assert_eq!(effects.counters.spans_duplicate, 1);
        let stored: usize = effects.store.iter().map(|s| s.spans.len()).sum();
        assert_eq!(stored, 1);
    }
}
