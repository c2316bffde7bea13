//! The aggregator service: one shard batch in, buckets written exactly once, live updates out.
//!
//! # Exactly-once effect under at-least-once delivery
//!
//! Steps for one batch (records of one shard, in sequence order):
//! 1. decode records; undecodable ones are *poison*: reported and skipped, never retried;
//! 2. load the cumulative state of every (source, series) in the batch and normalize points in order
//!    ([`CumulativeTracker`]); each point's contribution goes to the buckets of the point's own time
//!    (for a delta: the end of its interval) and is attributed to its record's sequence number;
//! 3. register the batch's series (`upsert_series`, idempotent);
//!    A point goes to its 1m/5m/1h/1d buckets; when the store derives the daily buckets from the
//!    hourly ones ([`BucketStore::derives_daily`](crate::ports::BucketStore::derives_daily): redb and
//!    the in-memory store), a point written to its 1h bucket is not written to its 1d bucket;
//! 4. per bucket, merge the contributions of all records and write **one**
//!    `apply_bucket(first_seq, last_seq)` ([`write_buckets`], shared with the trace processor; at most
//!    [`WRITE_CONCURRENCY`](super::WRITE_CONCURRENCY) at once). The store applies it only if the
//!    bucket's watermark for this shard is below `first_seq`; on `AlreadyApplied{watermark}` the
//!    contributions at or below the watermark are dropped and the rest re-sent;
//! 5. save the cumulative state — *after* the bucket writes;
//! 6. report `retry_from` (Lambda's `batchItemFailures`), from which the shard is redelivered.
//!
//! Why redelivery from `retry_from` gives every record's effect exactly once. Let `F` be the lowest
//! sequence number among the contributions of the buckets whose write failed (`None` if none failed).
//! - Every contribution below `F` is in a bucket that was written, whose watermark is now at least that
//!   contribution's sequence number: a redelivery drops it.
//! - The state saved for each key is the state after the records **below `F`** only (recomputed from the
//!   loaded state when a write failed). Redelivery from `F` therefore starts from exactly the state the
//!   first attempt had at `F`, recomputes identical contributions for records `≥ F` (normalization is a
//!   pure function of state and points; it never looks at the clock), and the watermarks drop those
//!   that were written. Saving the end-of-batch state instead would lose the failed deltas (the points
//!   would look like duplicates); saving nothing would count the deltas below `F` twice.
//! - If `save_state` fails, some keys may still hold their previous state `S₀`. `S₀` is the state
//!   "before the first record that changed the key", so retrying from `R = min(F, first change of any
//!   key we tried to save)` is safe for every key: a key holding the saved state (after records `< F`)
//!   ignores records in `[R, F)` as duplicates, and all of their contributions were written (they are
//!   below `F`); a key holding `S₀` recomputes identical contributions from `R`, which the watermarks
//!   drop where written.
//! - Failures before any bucket write (state load, series registration) retry the whole batch, which
//!   is a no-op repeat.
//! - Retention is the only clock-dependent decision; a redelivery that finds a point expired skips a
//!   contribution the store would have expired anyway.
//!
//! Store errors are not retried here: the redelivery is the retry (and SDK-backed adapters retry
//! throttling themselves).

use std::sync::Arc;

use crate::model::{MetricPoint, Resolution, Retention, SeriesId, SeriesMeta};
use crate::ports::{BucketKey, MetricStore, SequenceNumber, ShardBatch, StoreError};
use crate::record::{self, RecordPayload};

use super::bucket_write::{write_buckets, BucketUpdate, Contribution};
use super::contribution::{adds_nothing, most_placed, PointContribution};
use super::cumulative::{
    needs_state, state_key, CumulativeTracker, Normalized, SeriesState, StateId,
    STATE_IDLE_EXPIRY_SECONDS,
};
use super::stats::BucketStats;
use super::{FastMap, FastSet};

/// What processing a batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Lowest sequence number that must be delivered again (Lambda: the batchItemFailures entry); None = all done.
    pub retry_from: Option<SequenceNumber>,
    /// Records that cannot be decoded: (sequence number, reason). Reported, logged, and skipped — never retried.
    pub poison: Vec<(SequenceNumber, String)>,
    /// Buckets written by this batch with their statistics after the write (feeds live updates),
    /// sorted by series, resolution and start.
    pub updates: Vec<BucketUpdate>,
    /// Points whose contribution was written by this call (to their finest unexpired bucket).
    pub points_applied: u64,
    /// Points recognised as already applied: a cumulative point at or before the last one seen, or a
    /// contribution at or below a bucket's watermark (a redelivery).
    pub points_duplicate: u64,
    /// (point, resolution) pairs skipped because the bucket is already past its retention.
    pub points_expired: u64,
    /// Points that change no bucket: the first point of a cumulative series that only sets the
    /// baseline for the next delta, and empty deltas (a histogram with no new observations).
    pub points_noop: u64,
    /// Spans carried by the batch; traces are not aggregated yet, so they are left untouched.
    pub spans_ignored: u64,
}

/// A record after decoding: what [`Aggregator::process_decoded`] takes.
#[derive(Debug, Clone)]
pub struct DecodedRecord {
    pub sequence_number: SequenceNumber,
    /// The payload, or why it could not be decoded (poison).
    pub payload: Result<RecordPayload, String>,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Folds shard batches into buckets of a [`MetricStore`].
pub struct Aggregator<S: MetricStore + ?Sized> {
    store: Arc<S>,
    retention: Retention,
    /// Unix seconds now; replaceable so tests can pin retention decisions.
    clock: Clock,
}

/// One point's part in one bucket: indexes into the batch's records and normalized points, so that
/// a bucket's statistics are built once, at write time, instead of a sketch per point.
#[derive(Debug, Clone, Copy)]
struct Share {
    record: usize,
    point: usize,
    /// Whether this is the point's finest unexpired bucket (so each point is counted once).
    primary: bool,
}

/// A [`Share`] resolved against the batch, as a bucket write takes it.
struct PointShare<'a> {
    seq: &'a SequenceNumber,
    data: &'a PointContribution,
    placed: &'a [(f64, u64)],
    primary: bool,
}

impl Contribution for PointShare<'_> {
    fn seq(&self) -> &SequenceNumber {
        self.seq
    }

    fn add_to(&self, stats: &mut BucketStats) {
        self.data.add_to(self.placed, stats);
    }

    /// A point counts (as applied or duplicate) in its primary bucket only.
    fn points(&self) -> u64 {
        u64::from(self.primary)
    }
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unix_seconds(time_unix_nano: u64) -> i64 {
    (time_unix_nano / 1_000_000_000) as i64
}

impl<S: MetricStore + ?Sized> Aggregator<S> {
    pub fn new(store: Arc<S>, retention: Retention) -> Self {
        Aggregator {
            store,
            retention,
            clock: Arc::new(system_now),
        }
    }

    /// Replaces the clock (unix seconds) used for retention decisions.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Decodes and folds one shard batch. Never fails as a whole: see [`BatchOutcome::retry_from`].
    pub async fn process(&self, batch: &ShardBatch) -> BatchOutcome {
        let records = batch
            .records
            .iter()
            .map(|r| DecodedRecord {
                sequence_number: r.sequence_number.clone(),
                payload: record::decode(&r.data).map_err(|e| e.to_string()),
            })
            .collect();
        self.process_decoded(&batch.shard_id, records).await
    }

    /// Folds already decoded records of one shard (see the module docs for the guarantees).
    pub async fn process_decoded(
        &self,
        shard_id: &str,
        mut records: Vec<DecodedRecord>,
    ) -> BatchOutcome {
        let now = (self.clock)();
        let mut outcome = BatchOutcome::default();
        // Batches arrive in order; sorting is a cheap guard for the invariants that rely on it.
        records.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
        records.dedup_by(|a, b| a.sequence_number == b.sequence_number);

        let mut metrics: Vec<(SequenceNumber, Vec<MetricPoint>)> = Vec::new();
        for record in records {
            match record.payload {
                Ok(RecordPayload::Metrics(points)) => {
                    metrics.push((record.sequence_number, points))
                }
                Ok(RecordPayload::Spans(spans)) => outcome.spans_ignored += spans.len() as u64,
                Err(reason) => {
                    tracing::warn!(shard_id, sequence_number = %record.sequence_number, %reason, "skipping poison record");
                    outcome.poison.push((record.sequence_number, reason));
                }
            }
        }
        let Some(first_seq) = metrics.first().map(|(seq, _)| seq.clone()) else {
            return outcome;
        };

        let loaded = match self.load_state(&metrics).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(shard_id, %error, "cannot load cumulative state; retrying the batch");
                outcome.retry_from = Some(first_seq);
                return outcome;
            }
        };

        let mut tracker = CumulativeTracker::new(loaded.clone());
        // Each point's contribution, worked out once for its (up to three) buckets.
        let mut normalized: Vec<PointContribution> =
            Vec::with_capacity(metrics.iter().map(|(_, points)| points.len()).sum());
        // The histograms' placed (value, count) pairs, shared by their contributions.
        let mut placed: Vec<(f64, u64)> = Vec::with_capacity(
            metrics
                .iter()
                .flat_map(|(_, points)| points)
                .map(|p| most_placed(&p.data))
                .sum(),
        );
        let mut buckets: FastMap<BucketKey, Vec<Share>> = FastMap::default();
        let mut series: FastMap<SeriesId, SeriesMeta> = FastMap::default();
        let derives_daily = self.store.derives_daily();
        for (record, (seq, points)) in metrics.iter().enumerate() {
            for point in points {
                // Computed once per series-table entry when the record was decoded.
                let series_id = point.series.id();
                register(&mut series, series_id, point);
                let data = match tracker.normalize_series(seq, series_id, point) {
                    Normalized::Delta(data) => data,
                    Normalized::Duplicate => {
                        outcome.points_duplicate += 1;
                        continue;
                    }
                    Normalized::Baseline => {
                        outcome.points_noop += 1;
                        continue;
                    }
                };
                if adds_nothing(&data) {
                    outcome.points_noop += 1;
                    continue;
                }
                let time_s = unix_seconds(point.time_unix_nano);
                let mut primary = true;
                // Whether the point went to its 1h bucket, from which a store that derives the
                // daily buckets builds its 1d bucket.
                let mut hourly = false;
                for resolution in Resolution::ALL {
                    let start = resolution.bucket_start(time_s);
                    if self.expires_at(resolution, start) <= now {
                        outcome.points_expired += 1;
                        continue;
                    }
                    if resolution == Resolution::OneDay && hourly && derives_daily {
                        continue;
                    }
                    hourly |= resolution == Resolution::OneHour;
                    let key = BucketKey {
                        series: series_id,
                        resolution,
                        start_unix_s: start,
                    };
                    buckets.entry(key).or_default().push(Share {
                        record,
                        point: normalized.len(),
                        primary,
                    });
                    primary = false;
                }
                normalized.push(PointContribution::of(&data, &mut placed));
            }
        }

        let metas: Vec<SeriesMeta> = series.into_values().collect();
        if let Err(error) = self.store.upsert_series(&metas).await {
            tracing::warn!(shard_id, %error, "cannot register series; retrying the batch");
            outcome.retry_from = Some(first_seq);
            return outcome;
        }

        // One shared copy per series for the batch's bucket updates (not one per bucket).
        let series: FastMap<SeriesId, Arc<SeriesMeta>> = metas
            .into_iter()
            .map(|meta| (meta.id, Arc::new(meta)))
            .collect();

        // Per bucket, the shares in record order.
        let writes = buckets.into_iter().map(|(key, shares)| {
            let contributions: Vec<PointShare> = shares
                .into_iter()
                .map(|share| PointShare {
                    seq: &metrics[share.record].0,
                    data: &normalized[share.point],
                    placed: &placed,
                    primary: share.primary,
                })
                .collect();
            let expires_at = self.expires_at(key.resolution, key.start_unix_s);
            (key, expires_at, contributions)
        });
        let written = write_buckets(&*self.store, shard_id, writes, |id| series.get(&id)).await;
        outcome.points_applied += written.applied;
        outcome.points_duplicate += written.duplicates;
        outcome.updates = written.updates;
        let failed_from = written.failed_from;

        // Only what was applied may be remembered: the state after the records below the failure.
        let applied_state = match &failed_from {
            None => tracker,
            Some(failed) => {
                let mut prefix = CumulativeTracker::new(loaded);
                for (seq, points) in metrics.iter().take_while(|(seq, _)| seq < failed) {
                    for point in points {
                        prefix.normalize(seq, point);
                    }
                }
                prefix
            }
        };
        outcome.retry_from = failed_from;
        if let Err((error, first_change)) = self.save_state(&applied_state, now).await {
            tracing::warn!(shard_id, %error, "cannot save cumulative state; retrying from its first change");
            outcome.retry_from = Some(match outcome.retry_from.take() {
                Some(failed) => failed.min(first_change),
                None => first_change,
            });
        }
        if let Some(seq) = &outcome.retry_from {
            tracing::warn!(shard_id, retry_from = %seq, "batch partly applied; asking for redelivery");
        }
        outcome
    }

    fn expires_at(&self, resolution: Resolution, start: i64) -> i64 {
        start
            .saturating_add(resolution.seconds())
            .saturating_add(self.retention.seconds(resolution))
    }

    /// State of every cumulative (source, series) in the batch. Corrupt items are logged and treated
    /// as absent (the series restarts from a baseline) so that one bad item cannot block the shard.
    async fn load_state(
        &self,
        metrics: &[(SequenceNumber, Vec<MetricPoint>)],
    ) -> Result<FastMap<StateId, SeriesState>, StoreError> {
        let ids: FastSet<StateId> = metrics
            .iter()
            .flat_map(|(_, points)| points)
            .filter(|p| needs_state(&p.data))
            .map(|p| (p.source, p.series.id()))
            .collect();
        if ids.is_empty() {
            return Ok(FastMap::default());
        }
        let by_key: FastMap<String, StateId> = ids
            .into_iter()
            .map(|id| (state_key(id.0, id.1), id))
            .collect();
        let mut keys: Vec<String> = by_key.keys().cloned().collect();
        keys.sort_unstable();
        let mut states = FastMap::default();
        for (key, bytes) in self.store.load_state(&keys).await? {
            let Some(id) = by_key.get(&key) else {
                continue; // not asked for
            };
            match SeriesState::from_bytes(&bytes) {
                Ok(state) => {
                    states.insert(*id, state);
                }
                Err(error) => tracing::warn!(%key, %error, "ignoring corrupt cumulative state"),
            }
        }
        Ok(states)
    }

    /// Saves every changed state item; on failure returns the first sequence number that changed any.
    async fn save_state(
        &self,
        tracker: &CumulativeTracker,
        now: i64,
    ) -> Result<(), (StoreError, SequenceNumber)> {
        let expires_at = now.saturating_add(STATE_IDLE_EXPIRY_SECONDS);
        let mut items = Vec::new();
        let mut first_change: Option<&SequenceNumber> = None;
        for (key, state, first) in tracker.changed() {
            items.push((key, state.to_bytes(), expires_at));
            first_change = Some(first_change.map_or(first, |f| f.min(first)));
        }
        match first_change {
            None => Ok(()),
            Some(first) => self
                .store
                .save_state(&items)
                .await
                .map_err(|e| (e, first.clone())),
        }
    }
}

/// Adds the point's series to the batch's registry (newest point wins `last_seen`).
fn register(series: &mut FastMap<SeriesId, SeriesMeta>, id: SeriesId, point: &MetricPoint) {
    let seen = unix_seconds(point.time_unix_nano);
    match series.get_mut(&id) {
        Some(meta) => meta.last_seen_unix_s = meta.last_seen_unix_s.max(seen),
        None => {
            series.insert(
                id,
                SeriesMeta {
                    id,
                    key: point.series.key().clone(),
                    kind: point.data.kind(),
                    unit: point.unit.to_string(),
                    last_seen_unix_s: seen,
                },
            );
        }
    }
}
