//! The trace processor: span records of one shard batch in; RED and edge buckets written exactly once,
//! sampled traces stored, live trace events out.
//!
//! # Exactly-once under redelivery
//!
//! The same scheme as the metrics aggregator (`aggregate::aggregator`), with the trace state in the
//! role of the cumulative state:
//! 1. load the shard's state and that of every trace in the batch; a failure retries the batch;
//! 2. fold the records in order ([`TraceFold`], pure): RED observations, edges, sampling;
//! 3. register the batch's series; a failure retries the batch;
//! 4. per bucket, merge each record's observations and write once under the shard's watermark
//!    ([`bucket_write::write_buckets`], as the aggregator does); the lowest sequence number whose
//!    contribution was not written is `F`;
//! 5. store the sampled spans (idempotent by span id); a failure lowers `F` to the first record that
//!    had spans to store;
//! 6. save the state *after the records below `F` only* (when `F` is set, the stored state is read
//!    again and the records below `F` refolded from it) and report `retry_from = F`.
//!
//! A redelivery from `F` starts from exactly the state the first attempt had at `F` and recomputes
//! identical contributions, which the watermarks drop where they were written. Saved state also
//! remembers each applied span id, so a record delivered again *over* saved state (a batch that timed
//! out after saving, or a span that ingest duplicated) is skipped span by span. If saving fails, the
//! items hold the old state, and retrying from the batch's first record recomputes contributions that
//! the watermarks drop.
//!
//! This assumes one `save_state` call is all-or-nothing, as in the embedded store. Where it is not
//! (DynamoDB's BatchWriteItem can fail part-way), the shard item and the trace items can disagree:
//! trace items saved alone make the redelivery skip spans whose halves the shard item never got (an
//! edge is lost); a shard item saved alone makes it offer already-paired halves again (a caller that
//! names its peer can add a spurious virtual edge). RED counts stay exact either way.
//!
//! Clock-dependent decisions are only retention (as in the aggregator), the TTLs of stored traces
//! and state, and the clock-skew guard on event time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use crate::aggregate::bucket_write::{self, BucketUpdate, Contribution};
use crate::domain::stats::BucketStats;
use crate::model::Resolution;
use crate::ports::{BucketKey, MetricStore, SequenceNumber, StoreError, TraceStore, TraceWrite};
use crate::spans::{hex, Span};

use super::config::TraceConfig;
use super::fold::{Effects, FoldCounters, FoldState, TraceFold};
use super::graph::Edge;
use super::series::{unix_seconds, SeriesIndex, SeriesTable};
use super::state::{shard_key, trace_key, ShardState, StateError, TraceState};
use super::wire::{TraceEvent, TraceHop};

const RESOLUTIONS: usize = Resolution::ALL.len();

/// How long a shard's state outlives its last batch.
const SHARD_STATE_TTL_SECONDS: i64 = 7 * 24 * 3600;
/// How long a trace's state (decision, applied span ids) outlives its last span.
const TRACE_STATE_TTL_SECONDS: i64 = 3600;

/// What processing a batch did.
#[derive(Debug, Clone, Default)]
pub struct TraceOutcome {
    /// Lowest sequence number that must be delivered again; `None` = all done.
    pub retry_from: Option<SequenceNumber>,
    /// RED and edge buckets written, with their statistics after the write (feeds live updates),
    /// sorted by series, resolution and start.
    pub updates: Vec<BucketUpdate>,
    /// One per kept trace touched by the applied records.
    pub trace_events: Vec<TraceEvent>,
    pub counters: TraceCounters,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceCounters {
    /// What the fold did over the whole batch (records from `retry_from` on are folded again on
    /// redelivery and counted again).
    pub fold: FoldCounters,
    /// (observation, resolution) pairs whose bucket was already past retention.
    pub contributions_expired: u64,
    /// Per-record bucket contributions that a watermark showed were applied before.
    pub contributions_duplicate: u64,
    pub buckets_written: u64,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The shard state this processor last saved, per shard, beside the bytes it saved: when the store
/// still holds exactly those bytes, the next batch takes the decoded state from here instead of
/// decoding it again. The shard item carries every waiting edge half (up to
/// `TraceConfig::max_pending_halves`), so decoding it was most of the cost of loading a batch's
/// state. Comparing the bytes keeps this correct when another process wrote the item in between
/// (another Lambda instance on the same shard): then the bytes differ and the item is decoded.
/// One entry per shard; an entry is taken out while its shard's batch is processed.
type ShardCache = std::sync::Mutex<HashMap<String, (Bytes, ShardState)>>;

pub struct TraceProcessor<S: MetricStore + ?Sized, T: TraceStore + ?Sized> {
    store: Arc<S>,
    traces: Arc<T>,
    config: TraceConfig,
    /// Unix seconds now; replaceable so tests can pin retention and TTLs.
    clock: Clock,
    shard_cache: ShardCache,
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl<S: MetricStore + ?Sized, T: TraceStore + ?Sized> TraceProcessor<S, T> {
    pub fn new(store: Arc<S>, traces: Arc<T>, config: TraceConfig) -> Self {
        TraceProcessor {
            store,
            traces,
            config,
            clock: Arc::new(system_now),
            shard_cache: ShardCache::default(),
        }
    }

    /// Replaces the clock (unix seconds).
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn config(&self) -> &TraceConfig {
        &self.config
    }

    /// Folds the span records of one shard batch (see the module docs for the guarantees). Never
    /// fails as a whole: see [`TraceOutcome::retry_from`].
    pub async fn process(
        &self,
        shard_id: &str,
        spans: &[(SequenceNumber, Vec<Span>)],
    ) -> TraceOutcome {
        let now = (self.clock)();
        let now_nanos = u64::try_from(now)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000);
        let mut outcome = TraceOutcome::default();
        // Batches arrive in order; sorting is a cheap guard for the invariants that rely on it.
        let mut records: Vec<&(SequenceNumber, Vec<Span>)> =
            spans.iter().filter(|(_, s)| !s.is_empty()).collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records.dedup_by(|a, b| a.0 == b.0);
        let Some(first_seq) = records.first().map(|(seq, _)| seq.clone()) else {
            return outcome;
        };

        let loaded = match self.load_state(shard_id, &records).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(shard_id, %error, "cannot load trace state; retrying the batch");
                outcome.retry_from = Some(first_seq);
                return outcome;
            }
        };

        let mut series = SeriesTable::new();
        let mut effects = Effects::default();
        let mut fold = TraceFold::new(&self.config, loaded);
        for (record, (_, spans)) in records.iter().enumerate() {
            fold.apply(record, spans, now_nanos, &mut series, &mut effects);
        }
        outcome.counters.fold = effects.counters;

        if let Err(error) = self.store.upsert_series(series.metas()).await {
            tracing::warn!(shard_id, %error, "cannot register RED/graph series; retrying the batch");
            outcome.retry_from = Some(first_seq);
            return outcome;
        }

        let mut saved_shard: Option<Bytes> = None;
        let mut failed_from = self
            .write_buckets(shard_id, now, &records, &series, &effects, &mut outcome)
            .await;
        if let Err(first) = self.store_spans(now, &records, &effects).await {
            failed_from = Some(failed_from.map_or(first.clone(), |f| f.min(first)));
        }

        // Records below `applied` had every effect written.
        let applied = failed_from.as_ref().map_or(records.len(), |f| {
            records.partition_point(|(seq, _)| seq < f)
        });
        let save = if applied == records.len() {
            match self.save_state(shard_id, now, &fold).await {
                Ok(saved) => {
                    saved_shard = Some(saved);
                    Ok(())
                }
                Err(error) => Err(error),
            }
        } else {
            // The stored state is still what this attempt loaded: refold the applied prefix from it
            // (re-reading it costs a load on the rare failure path instead of a copy on every batch).
            match self.load_state(shard_id, &records).await {
                Ok(loaded) => {
                    let mut prefix = TraceFold::new(&self.config, loaded);
                    let mut discard = Effects::default();
                    let mut scratch_series = SeriesTable::new();
                    for (record, (_, spans)) in records.iter().take(applied).enumerate() {
                        prefix.apply(record, spans, now_nanos, &mut scratch_series, &mut discard);
                    }
                    self.save_state(shard_id, now, &prefix).await.map(drop)
                }
                Err(error) => Err(error),
            }
        };
        outcome.retry_from = failed_from;
        // Live events for what was applied; none when the whole batch comes again (it would show
        // the same traces twice).
        let shown = match save {
            Ok(()) => applied,
            Err(error) => {
                tracing::warn!(shard_id, %error, "cannot save trace state; retrying the batch");
                outcome.retry_from = Some(first_seq);
                0
            }
        };
        if let Some(seq) = &outcome.retry_from {
            tracing::warn!(shard_id, retry_from = %seq, "span batch partly applied; asking for redelivery");
        }
        outcome.trace_events = trace_events(fold.state(), &effects, shown);
        if let Some(bytes) = saved_shard {
            self.remember_shard(shard_id, bytes, fold.into_state().shard);
        }
        outcome
    }

    fn shard_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, ShardState)>> {
        // The map holds plain data: a panic elsewhere cannot leave it half-updated.
        self.shard_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember_shard(&self, shard_id: &str, bytes: Bytes, state: ShardState) {
        self.shard_cache()
            .insert(shard_id.to_string(), (bytes, state));
    }

    /// The shard state stored as `bytes`: the remembered one when it was saved as exactly these
    /// bytes, else decoded.
    fn shard_state(&self, shard_id: &str, bytes: &Bytes) -> Result<ShardState, StateError> {
        if let Some((saved, state)) = self.shard_cache().remove(shard_id) {
            if saved == *bytes {
                return Ok(state);
            }
        }
        ShardState::from_bytes(bytes)
    }

    async fn load_state(
        &self,
        shard_id: &str,
        records: &[&(SequenceNumber, Vec<Span>)],
    ) -> Result<FoldState, StoreError> {
        let trace_ids: HashSet<[u8; 16]> = records
            .iter()
            .flat_map(|(_, spans)| spans.iter().map(|s| s.trace_id))
            .collect();
        let shard = shard_key(shard_id);
        let mut by_key: HashMap<String, [u8; 16]> = trace_ids
            .into_iter()
            .map(|id| (trace_key(&id), id))
            .collect();
        let mut keys: Vec<String> = by_key.keys().cloned().collect();
        keys.sort_unstable();
        keys.push(shard.clone());
        let mut state = FoldState::default();
        // Corrupt items are logged and treated as absent, so one bad item cannot block the shard.
        for (key, bytes) in self.store.load_state(&keys).await? {
            if key == shard {
                match self.shard_state(shard_id, &bytes) {
                    Ok(shard_state) => state.shard = shard_state,
                    Err(error) => {
                        tracing::warn!(%key, %error, "ignoring corrupt shard trace state")
                    }
                }
            } else if let Some(id) = by_key.remove(&key) {
                match TraceState::from_bytes(&bytes) {
                    Ok(trace) => {
                        state.traces.insert(id, trace);
                    }
                    Err(error) => tracing::warn!(%key, %error, "ignoring corrupt trace state"),
                }
            }
        }
        Ok(state)
    }

    /// Saves the changed traces and the shard; returns the shard item's bytes.
    async fn save_state(
        &self,
        shard_id: &str,
        now: i64,
        fold: &TraceFold<'_>,
    ) -> Result<Bytes, StoreError> {
        let trace_expiry = now.saturating_add(TRACE_STATE_TTL_SECONDS);
        let mut items: Vec<(String, Bytes, i64)> = fold
            .changed_traces()
            .map(|(id, state)| (trace_key(id), Bytes::from(state.to_bytes()), trace_expiry))
            .collect();
        let shard = Bytes::from(fold.state().shard.to_bytes());
        items.push((
            shard_key(shard_id),
            shard.clone(),
            now.saturating_add(SHARD_STATE_TTL_SECONDS),
        ));
        self.store.save_state(&items).await?;
        Ok(shard)
    }

    fn expires_at(&self, resolution: Resolution, start: i64) -> i64 {
        start
            .saturating_add(resolution.seconds())
            .saturating_add(self.config.retention.seconds(resolution))
    }

    /// Writes every bucket once; returns the lowest sequence number not written.
    async fn write_buckets(
        &self,
        shard_id: &str,
        now: i64,
        records: &[&(SequenceNumber, Vec<Span>)],
        series: &SeriesTable,
        effects: &Effects,
        outcome: &mut TraceOutcome,
    ) -> Option<SequenceNumber> {
        // Per bucket, its observations' values in record order with the record of each run: a
        // record's contribution is a slice of plain values, added to the bucket's one delta (one
        // sketch per bucket, not one per record and bucket).
        let mut buckets: Vec<(BucketKey, BucketValues)> = Vec::new();
        let mut by_key: HashMap<BucketKey, usize> = HashMap::new();
        // Each (series, minute)'s bucket per resolution (`None` past retention), found with one
        // lookup per observation instead of one per resolution: every resolution is a whole number
        // of minutes, so the minute decides all three buckets.
        let mut by_minute: HashMap<(SeriesIndex, i64), [Option<usize>; RESOLUTIONS]> =
            HashMap::new();
        let derives_daily = self.store.derives_daily();
        for (record, observation) in &effects.observations {
            let time_s = unix_seconds(observation.time_unix_nano);
            let minute = time_s - time_s.rem_euclid(60);
            let slots = *by_minute
                .entry((observation.series, minute))
                .or_insert_with(|| {
                    let id = series.meta(observation.series).id;
                    let mut slots = [None; RESOLUTIONS];
                    // A store that derives 1d buckets builds them from the 1h ones.
                    let mut hourly = false;
                    for (slot, resolution) in slots.iter_mut().zip(Resolution::ALL) {
                        let start = resolution.bucket_start(time_s);
                        if self.expires_at(resolution, start) <= now {
                            continue;
                        }
                        if resolution == Resolution::OneDay && hourly && derives_daily {
                            continue;
                        }
                        hourly |= resolution == Resolution::OneHour;
                        let key = BucketKey {
                            series: id,
                            resolution,
                            start_unix_s: start,
                        };
                        *slot = Some(*by_key.entry(key).or_insert_with(|| {
                            buckets.push((key, BucketValues::default()));
                            buckets.len() - 1
                        }));
                    }
                    slots
                });
            for slot in slots {
                match slot {
                    Some(index) => buckets[index].1.push(*record, observation.value),
                    None => outcome.counters.contributions_expired += 1,
                }
            }
        }

        // Collected (not a lazy iterator) so that the future stays `Send`.
        let writes: Vec<(BucketKey, i64, Vec<RecordValues<'_>>)> = buckets
            .iter()
            .map(|(key, values)| {
                let contributions: Vec<RecordValues<'_>> = values
                    .runs
                    .iter()
                    .map(|&(record, from, to)| RecordValues {
                        seq: &records[record].0,
                        values: &values.values[from..to],
                    })
                    .collect();
                let expires_at = self.expires_at(key.resolution, key.start_unix_s);
                (*key, expires_at, contributions)
            })
            .collect();
        let metas: HashMap<_, _> = series
            .metas()
            .iter()
            .map(|m| (m.id, std::sync::Arc::new(m.clone())))
            .collect();
        let written =
            bucket_write::write_buckets(&*self.store, shard_id, writes, |id| metas.get(&id)).await;
        outcome.counters.contributions_duplicate += written.duplicates;
        outcome.counters.buckets_written += written.updates.len() as u64;
        outcome.updates = written.updates;
        written.failed_from
    }

    /// Stores the batch's sampled spans in one call; on failure returns the first sequence number that
    /// had spans to store.
    async fn store_spans(
        &self,
        now: i64,
        records: &[&(SequenceNumber, Vec<Span>)],
        effects: &Effects,
    ) -> Result<(), SequenceNumber> {
        let mut writes: BTreeMap<[u8; 16], TraceWrite> = BTreeMap::new();
        let mut first_record: Option<usize> = None;
        for request in &effects.store {
            if !request.kept && !self.config.hold_dropped_spans {
                continue;
            }
            first_record = Some(first_record.map_or(request.record, |r| r.min(request.record)));
            let write = writes
                .entry(request.trace_id)
                .or_insert_with(|| TraceWrite {
                    trace_id: request.trace_id,
                    spans: Vec::new(),
                    kept: false,
                    expires_at_unix_s: 0,
                });
            let spans = &records[request.record].1;
            write
                .spans
                .extend(request.spans.iter().map(|&i| spans[i].clone()));
            write.kept |= request.kept;
        }
        let Some(first_record) = first_record else {
            return Ok(());
        };
        let writes: Vec<TraceWrite> = writes
            .into_values()
            .map(|mut write| {
                let ttl = if write.kept {
                    self.config.kept_ttl_seconds
                } else {
                    self.config.provisional_ttl_seconds
                };
                write.expires_at_unix_s = now.saturating_add(ttl);
                write
            })
            .collect();
        self.traces.write(&writes).await.map_err(|error| {
            tracing::warn!(%error, "cannot store sampled spans");
            records[first_record].0.clone()
        })
    }
}

/// The values one batch adds to one bucket, in record order: `runs` are (record, from, to) ranges of
/// `values`, one per record.
#[derive(Default)]
struct BucketValues {
    values: Vec<f64>,
    runs: Vec<(usize, usize, usize)>,
}

impl BucketValues {
    fn push(&mut self, record: usize, value: f64) {
        let at = self.values.len();
        self.values.push(value);
        match self.runs.last_mut() {
            Some((last, _, to)) if *last == record => *to = at + 1,
            _ => self.runs.push((record, at, at + 1)),
        }
    }
}

/// One record's contribution to one bucket: its observed values.
struct RecordValues<'a> {
    seq: &'a SequenceNumber,
    values: &'a [f64],
}

impl Contribution for RecordValues<'_> {
    fn seq(&self) -> &SequenceNumber {
        self.seq
    }

    fn add_to(&self, stats: &mut BucketStats) {
        for &value in self.values {
            stats.observe(value);
        }
    }
}

/// One event per kept trace touched by the first `applied` records (and per trace of a virtual edge
/// they emitted), with the hops they paired.
fn trace_events(state: &FoldState, effects: &Effects, applied: usize) -> Vec<TraceEvent> {
    let mut order: Vec<[u8; 16]> = Vec::new();
    let mut hops_of: HashMap<[u8; 16], Vec<&Edge>> = HashMap::new();
    for (record, trace_id) in &effects.kept_traces {
        if *record < applied && !hops_of.contains_key(trace_id) {
            hops_of.insert(*trace_id, Vec::new());
            order.push(*trace_id);
        }
    }
    for hop in effects.hops.iter().filter(|hop| hop.record < applied) {
        hops_of
            .entry(hop.trace_id)
            .or_insert_with(|| {
                order.push(hop.trace_id);
                Vec::new()
            })
            .push(&hop.edge);
    }
    order
        .into_iter()
        .map(|trace_id| {
            let hops = hops_of.remove(&trace_id).unwrap_or_default();
            let (start_nanos, mut event) = match state.traces.get(&trace_id) {
                Some(trace) => {
                    let (root_service, root_name) = match &trace.root {
                        Some((service, name)) => (service.clone(), Some(name.clone())),
                        None => (trace.service.clone(), None),
                    };
                    let event = TraceEvent {
                        trace_id: hex(&trace_id),
                        root_service,
                        root_name,
                        start_unix_ms: trace.start_unix_nano as f64 / 1e6,
                        duration_ms: trace.end_unix_nano.saturating_sub(trace.start_unix_nano)
                            as f64
                            / 1e6,
                        error: trace.error,
                        reason: trace.decision.reason().map(|r| r.as_str().to_string()),
                        hops: Vec::new(),
                    };
                    (trace.start_unix_nano, event)
                }
                // A virtual edge of a trace this batch did not otherwise touch: only the edge is known.
                None => {
                    let start = hops.iter().map(|e| e.start_unix_nano).min().unwrap_or(0);
                    let end = hops
                        .iter()
                        .map(|e| e.start_unix_nano.saturating_add(e.duration_nanos))
                        .max()
                        .unwrap_or(start);
                    let event = TraceEvent {
                        trace_id: hex(&trace_id),
                        root_service: hops.first().map(|e| e.client.clone()).unwrap_or_default(),
                        root_name: None,
                        start_unix_ms: start as f64 / 1e6,
                        duration_ms: end.saturating_sub(start) as f64 / 1e6,
                        error: hops.iter().any(|e| e.error),
                        reason: None,
                        hops: Vec::new(),
                    };
                    (start, event)
                }
            };
            event.hops = hops
                .into_iter()
                .map(|edge| TraceHop {
                    from: edge.client.clone(),
                    to: edge.server.clone(),
                    kind: edge.connection.as_str().to_string(),
                    to_kind: edge.server_kind.as_str().to_string(),
                    offset_ms: edge.start_unix_nano.saturating_sub(start_nanos) as f64 / 1e6,
                    duration_ms: edge.duration_ms(),
                    error: edge.error,
                })
                .collect();
            event
        })
        .collect()
}
