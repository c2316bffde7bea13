//! In-process batching of live updates with a global sequence number, a bounded replay buffer for
//! clients that reconnect, and the latest bucket per series for snapshots.
//!
//! The aggregator publishes updates as it writes buckets; a flusher takes one batch per second, so a
//! client gets at most one message per second however fast data arrives.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::wire::{LiveSeries, LiveUpdate, ServerMessage, SharedSeries};
use crate::aggregate::BucketUpdate;
use crate::domain::bucket_view::BucketView;
use crate::model::Resolution;
use crate::model::SeriesMeta;
use crate::ports::Subscription;
use crate::traces::TraceEvent;

#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Batches kept for catch-up after a reconnect (one per flush: 300 ≈ 5 minutes at 1/s).
    pub replay_batches: usize,
    /// Bytes (their updates' JSON) the kept batches may hold together; the oldest leave first. A
    /// client whose gap left the buffer gets a snapshot instead of a catch-up.
    pub replay_bytes: usize,
    /// Buckets older than this (unix seconds before the newest update) leave the snapshot.
    pub snapshot_horizon_seconds: i64,
    /// Series whose newest buckets the hub keeps for snapshots. Beyond it the series updated least
    /// recently leave (a client still gets their history from the query API), so the hub's memory
    /// does not grow with every series ever seen within the horizon.
    pub snapshot_max_series: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            replay_batches: 300,
            replay_bytes: DEFAULT_REPLAY_BYTES,
            snapshot_horizon_seconds: 3600,
            snapshot_max_series: DEFAULT_SNAPSHOT_MAX_SERIES,
        }
    }
}

/// Default of [`HubConfig::replay_bytes`].
pub const DEFAULT_REPLAY_BYTES: usize = 8 * 1024 * 1024;

/// Default of [`HubConfig::snapshot_max_series`]: twice the default per-service series limit, at
/// ~1.3 KB per series (identity + 6 buckets) about 26 MB.
pub const DEFAULT_SNAPSHOT_MAX_SERIES: usize = 20_000;

/// What the replay buffer holds now, for `/api/pipeline`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStats {
    pub batches: usize,
    pub bytes: usize,
}

/// Counts the bytes a value serializes to without keeping them.
#[derive(Default)]
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON size of a batch's updates (what a catch-up of it costs on the wire).
fn json_bytes(updates: &[LiveUpdate]) -> usize {
    let mut counter = ByteCounter::default();
    for update in updates {
        // Serializing a plain struct into a counter cannot fail.
        let _ = serde_json::to_writer(&mut counter, update);
        counter.0 += 1;
    }
    counter.0
}

/// A series in the hub's maps, compared by its id; cloning it only counts a reference.
#[derive(Debug, Clone)]
struct ById(SharedSeries);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.series_id == other.0.series_id
    }
}

impl Eq for ById {}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.series_id.hash(state);
    }
}

type BucketIdentity = (ById, Resolution, i64);

fn bucket_identity(update: &LiveUpdate) -> BucketIdentity {
    (
        ById(update.series.clone()),
        update.resolution,
        update.bucket.start,
    )
}

/// Buckets per (series, resolution) a snapshot carries: the current one and the one before it
/// (which can still be receiving late points). Older buckets come from the query API, which the
/// dashboard loads for history anyway.
pub const SNAPSHOT_BUCKETS_PER_RESOLUTION: usize = 2;

/// Trace events kept per flush; beyond it the oldest are dropped (the dashboard animates a sample).
const MAX_TRACES_PER_FLUSH: usize = 200;

/// One flush: what changed since the previous one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveBatch {
    pub seq: u64,
    pub updates: Vec<LiveUpdate>,
    pub traces: Vec<TraceEvent>,
}

/// What a snapshot needs of one series: its identity (the one `Arc` every update of the series
/// held by the hub shares) and its newest buckets.
#[derive(Debug)]
struct LatestSeries {
    series: SharedSeries,
    /// At most [`SNAPSHOT_BUCKETS_PER_RESOLUTION`] per resolution.
    buckets: Vec<(Resolution, BucketView)>,
    /// The sequence number of the flush that carries its latest update: the least recent leave
    /// first when the hub holds more than [`HubConfig::snapshot_max_series`].
    touched: u64,
}

impl LatestSeries {
    /// Keeps `bucket` if it is among the newest of its resolution.
    fn record(&mut self, resolution: Resolution, bucket: &BucketView) {
        if let Some((_, held)) = self
            .buckets
            .iter_mut()
            .find(|(r, b)| *r == resolution && b.start == bucket.start)
        {
            *held = bucket.clone();
            return;
        }
        self.buckets.push((resolution, bucket.clone()));
        let of_resolution = self
            .buckets
            .iter()
            .filter(|(r, _)| *r == resolution)
            .count();
        if of_resolution > SNAPSHOT_BUCKETS_PER_RESOLUTION {
            let oldest = self
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, (r, _))| *r == resolution)
                .min_by_key(|(_, (_, b))| b.start)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.buckets.swap_remove(i);
            }
        }
    }
}

#[derive(Default)]
struct HubState {
    seq: u64,
    /// Updates since the last flush; a later update of the same bucket replaces the earlier one.
    pending: HashMap<BucketIdentity, LiveUpdate>,
    pending_traces: VecDeque<TraceEvent>,
    /// Kept batches: sequence number, updates, their JSON size.
    recent: VecDeque<(u64, Vec<LiveUpdate>, usize)>,
    recent_bytes: usize,
    /// Per series id: its shared identity and newest buckets within the horizon.
    latest: HashMap<String, LatestSeries>,
    newest_start: i64,
}

impl HubState {
    /// The hub's shared identity of `meta`'s series, or a new one when the hub holds none (or an
    /// outdated one).
    fn series_of(&self, meta: &SeriesMeta) -> SharedSeries {
        let id = meta.id.to_string();
        match self.latest.get(id.as_str()) {
            Some(entry) if entry.series.describes(meta) => entry.series.clone(),
            _ => SharedSeries::new(LiveSeries::from_meta(meta)),
        }
    }

    /// Points `update` at the hub's shared identity of its series (one per series, however many
    /// updates of it are held) and records its bucket for snapshots.
    fn intern(&mut self, update: &mut LiveUpdate) {
        let touched = self.seq + 1;
        match self.latest.get_mut(update.series.series_id.as_str()) {
            Some(entry) => {
                entry.touched = touched;
                if entry.series.ptr_eq(&update.series) || *entry.series == *update.series {
                    update.series = entry.series.clone();
                } else {
                    // The series' kind or unit changed: newer updates carry the new identity.
                    entry.series = update.series.clone();
                }
                entry.record(update.resolution, &update.bucket);
            }
            None => {
                self.latest.insert(
                    update.series.series_id.clone(),
                    LatestSeries {
                        series: update.series.clone(),
                        buckets: vec![(update.resolution, update.bucket.clone())],
                        touched,
                    },
                );
            }
        }
    }
}

impl HubState {
    /// Keeps at most `max` series in `latest`, dropping the least recently updated. Over the bound it
    /// goes down to 15/16 of it, so a stream of new series costs one pass per ~max/16 of them, not
    /// one per flush.
    fn evict_least_recent(&mut self, max: usize) {
        if self.latest.len() <= max {
            return;
        }
        let keep = max - max / 16;
        let mut excess = self.latest.len() - keep;
        let mut touches: Vec<u64> = self.latest.values().map(|e| e.touched).collect();
        let (_, cutoff, _) = touches.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        drop(touches);
        // Everything touched before the cutoff goes; of the series touched at it, only as many as
        // are still in excess (many series share one flush's sequence number).
        let older = self.latest.values().filter(|e| e.touched < cutoff).count();
        let mut at_cutoff = excess - older;
        self.latest.retain(|_, entry| {
            let evict = entry.touched < cutoff || (entry.touched == cutoff && at_cutoff > 0);
            if entry.touched == cutoff && evict {
                at_cutoff -= 1;
            }
            if evict {
                excess -= 1;
            }
            !evict
        });
        debug_assert_eq!(excess, 0);
        self.latest.shrink_to(self.latest.len() * 9 / 8);
    }
}

pub struct LiveHub {
    config: HubConfig,
    state: Mutex<HubState>,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub::new(HubConfig::default())
    }
}

impl LiveHub {
    pub fn new(config: HubConfig) -> Self {
        LiveHub {
            config,
            state: Mutex::new(HubState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that matters
        // (every mutation is a single insert/remove), so recover the guard instead of propagating.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn publish(&self, updates: impl IntoIterator<Item = LiveUpdate>) {
        let mut state = self.lock();
        for mut update in updates {
            state.newest_start = state.newest_start.max(update.bucket.start);
            state.intern(&mut update);
            state.pending.insert(bucket_identity(&update), update);
        }
        state.evict_least_recent(self.config.snapshot_max_series);
    }

    /// Publishes written buckets: like [`LiveHub::publish`], but labels them with the hub's shared
    /// identity of their series instead of copying the series' strings for each.
    pub fn publish_buckets<'a>(&self, buckets: impl IntoIterator<Item = &'a BucketUpdate>) {
        let mut state = self.lock();
        for bucket in buckets {
            let mut update = LiveUpdate {
                series: state.series_of(&bucket.series),
                resolution: bucket.resolution,
                bucket: bucket.view.clone(),
            };
            state.newest_start = state.newest_start.max(update.bucket.start);
            state.intern(&mut update);
            state.pending.insert(bucket_identity(&update), update);
        }
        state.evict_least_recent(self.config.snapshot_max_series);
    }

    /// Queues kept traces' events for the next flush. They are live-only: not replayed on resume.
    pub fn publish_traces(&self, events: impl IntoIterator<Item = TraceEvent>) {
        let mut state = self.lock();
        for event in events {
            if state.pending_traces.len() == MAX_TRACES_PER_FLUSH {
                state.pending_traces.pop_front();
            }
            state.pending_traces.push_back(event);
        }
    }

    /// Closes the current batch: assigns it the next sequence number and keeps its updates for
    /// replay. `None` when nothing was published since the last flush.
    pub fn take_batch(&self) -> Option<LiveBatch> {
        let mut state = self.lock();
        if state.pending.is_empty() && state.pending_traces.is_empty() {
            return None;
        }
        let traces: Vec<TraceEvent> = state.pending_traces.drain(..).collect();
        let mut batch: Vec<LiveUpdate> = state.pending.drain().map(|(_, u)| u).collect();
        // Give back the capacity a burst left behind (the map is refilled from empty each flush).
        state.pending.shrink_to(0);
        batch.sort_by(|a, b| {
            (
                &a.series.service,
                &a.series.metric,
                &a.series.series_id,
                a.resolution,
                a.bucket.start,
            )
                .cmp(&(
                    &b.series.service,
                    &b.series.metric,
                    &b.series.series_id,
                    b.resolution,
                    b.bucket.start,
                ))
        });
        state.seq += 1;
        let seq = state.seq;
        let bytes = json_bytes(&batch);
        state.recent.push_back((seq, batch.clone(), bytes));
        state.recent_bytes += bytes;
        while state.recent.len() > self.config.replay_batches
            || state.recent_bytes > self.config.replay_bytes
        {
            match state.recent.pop_front() {
                Some((_, _, bytes)) => state.recent_bytes -= bytes,
                None => break,
            }
        }
        let horizon = state.newest_start - self.config.snapshot_horizon_seconds;
        state.latest.retain(|_, entry| {
            entry.buckets.retain(|(_, b)| b.start >= horizon);
            !entry.buckets.is_empty()
        });
        state.evict_least_recent(self.config.snapshot_max_series);
        Some(LiveBatch {
            seq,
            updates: batch,
            traces,
        })
    }

    pub fn current_seq(&self) -> u64 {
        self.lock().seq
    }

    pub fn replay_stats(&self) -> ReplayStats {
        let state = self.lock();
        ReplayStats {
            batches: state.recent.len(),
            bytes: state.recent_bytes,
        }
    }

    /// Series (and their buckets) a snapshot would draw from now, for tests and `/api/pipeline`.
    pub fn snapshot_size(&self) -> (usize, usize) {
        let state = self.lock();
        let buckets = state.latest.values().map(|e| e.buckets.len()).sum();
        (state.latest.len(), buckets)
    }

    /// What a (re)subscribing client should receive: the batches it missed since `last_seq` when
    /// they are all still buffered, otherwise a snapshot. `None` when it missed nothing.
    pub fn resume(
        &self,
        last_seq: Option<u64>,
        subscription: &Subscription,
    ) -> Option<ServerMessage> {
        let state = self.lock();
        if let Some(last) = last_seq {
            if last == state.seq {
                return None;
            }
            let oldest_buffered = state.recent.front().map(|(seq, _, _)| *seq);
            // `last > seq` means the server restarted and its sequence began again: snapshot.
            let gap_is_buffered =
                last < state.seq && oldest_buffered.is_some_and(|o| o <= last + 1);
            if gap_is_buffered {
                let mut missed: HashMap<BucketIdentity, LiveUpdate> = HashMap::new();
                for (_, batch, _) in state.recent.iter().filter(|(seq, _, _)| *seq > last) {
                    for update in batch
                        .iter()
                        .filter(|u| subscription.wants(&u.series.service, &u.series.metric))
                    {
                        missed.insert(bucket_identity(update), update.clone());
                    }
                }
                return Some(ServerMessage::MetricsUpdate {
                    seq: state.seq,
                    part: 1,
                    parts: 1,
                    updates: sorted(missed.into_values().collect()),
                });
            }
        }
        let updates = state
            .latest
            .values()
            .filter(|e| subscription.wants(&e.series.service, &e.series.metric))
            .flat_map(|e| {
                e.buckets.iter().map(|(resolution, bucket)| LiveUpdate {
                    series: e.series.clone(),
                    resolution: *resolution,
                    bucket: bucket.clone(),
                })
            })
            .collect();
        Some(ServerMessage::Snapshot {
            seq: state.seq,
            part: 1,
            parts: 1,
            updates: sorted(updates),
        })
    }
}

fn sorted(mut updates: Vec<LiveUpdate>) -> Vec<LiveUpdate> {
    updates.sort_by(|a, b| {
        (&a.series.series_id, a.resolution, a.bucket.start).cmp(&(
            &b.series.series_id,
            b.resolution,
            b.bucket.start,
        ))
    });
    updates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricKind;

    fn update(service: &str, metric: &str, start: i64, count: u64) -> LiveUpdate {
        LiveUpdate {
            series: SharedSeries::new(LiveSeries {
                series_id: format!("{service}/{metric}"),
                service: service.into(),
                metric: metric.into(),
                attributes: Default::default(),
                kind: MetricKind::Gauge,
                unit: String::new(),
            }),
            resolution: Resolution::OneMinute,
            bucket: crate::domain::bucket_view::BucketView {
                start,
                count,
                sum: count as f64,
                min: None,
                max: None,
                avg: None,
                p50: None,
                p95: None,
                p99: None,
                rate: 0.0,
            },
        }
    }

    fn counts(message: &ServerMessage) -> Vec<(String, u64)> {
        let updates = match message {
            ServerMessage::MetricsUpdate { updates, .. }
            | ServerMessage::Snapshot { updates, .. } => updates,
            other => panic!("unexpected {other:?}"),
        };
        updates
            .iter()
            .map(|u| (u.series.series_id.clone(), u.bucket.count))
            .collect()
    }

    #[test]
    fn a_batch_holds_the_latest_state_of_each_bucket_and_sequence_rises() {
        let hub = LiveHub::default();
        assert!(hub.take_batch().is_none());
        hub.publish([update("api", "cpu", 60, 1), update("api", "cpu", 60, 2)]);
        hub.publish([update("db", "cpu", 60, 7)]);
        let batch = hub.take_batch().unwrap();
        assert_eq!(batch.seq, 1);
        assert_eq!(batch.updates.len(), 2);
        assert_eq!(
            batch.updates[0].bucket.count, 2,
            "later update of a bucket replaces the earlier one"
        );
        assert!(batch.traces.is_empty());
        hub.publish([update("api", "cpu", 120, 1)]);
        assert_eq!(hub.take_batch().unwrap().seq, 2);
        assert!(hub.take_batch().is_none());
    }

    fn snapshot_starts(hub: &LiveHub) -> Vec<(String, i64)> {
        match hub.resume(None, &Subscription::default()) {
            Some(ServerMessage::Snapshot { updates, .. }) => updates
                .iter()
                .map(|u| (u.series.series_id.clone(), u.bucket.start))
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_snapshot_holds_the_newest_two_buckets_of_each_series_not_the_whole_hour() {
        let hub = LiveHub::default();
        for minute in 1..=30 {
            hub.publish([
                update("api", "cpu", minute * 60, 1),
                update("db", "cpu", minute * 60, 1),
            ]);
            hub.take_batch();
        }
        // A late point for an old bucket is sent live but does not bring it back into snapshots.
        hub.publish([update("api", "cpu", 5 * 60, 2)]);
        hub.take_batch();
        assert_eq!(
            snapshot_starts(&hub),
            vec![
                ("api/cpu".to_string(), 29 * 60),
                ("api/cpu".to_string(), 30 * 60),
                ("db/cpu".to_string(), 29 * 60),
                ("db/cpu".to_string(), 30 * 60),
            ]
        );
        assert_eq!(hub.snapshot_size(), (2, 4));
    }

    #[test]
    fn the_updates_held_for_one_series_share_one_identity() {
        let hub = LiveHub::default();
        // Each update arrives with its own copy of the series' strings, as the aggregator makes them.
        hub.publish([update("api", "cpu", 60, 1)]);
        let first = hub.take_batch().unwrap();
        hub.publish([update("api", "cpu", 120, 1)]);
        let second = hub.take_batch().unwrap();
        let held = &first.updates[0].series;
        assert!(second.updates[0].series.ptr_eq(held));
        match hub.resume(None, &Subscription::default()) {
            Some(ServerMessage::Snapshot { updates, .. }) => {
                assert_eq!(updates.len(), 2);
                assert!(updates.iter().all(|u| u.series.ptr_eq(held)));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A changed unit is a changed identity: newer updates carry it.
        let mut changed = update("api", "cpu", 180, 1);
        changed.series = SharedSeries::new(LiveSeries {
            unit: "ms".into(),
            ..(*changed.series).clone()
        });
        hub.publish([changed]);
        let third = hub.take_batch().unwrap();
        assert_eq!(third.updates[0].series.unit, "ms");
    }

    fn bucket(start: i64, unit: &str) -> BucketUpdate {
        let key = crate::model::SeriesKey {
            service: "api".into(),
            metric: "cpu".into(),
            attributes: [("host".to_string(), "a".to_string())].into(),
        };
        BucketUpdate {
            series: std::sync::Arc::new(SeriesMeta {
                id: key.id(),
                key,
                kind: MetricKind::Gauge,
                unit: unit.into(),
                last_seen_unix_s: start,
            }),
            resolution: Resolution::OneMinute,
            start_unix_s: start,
            view: BucketView::new(
                start,
                &Default::default(),
                MetricKind::Gauge,
                Resolution::OneMinute,
            ),
        }
    }

    #[test]
    fn the_snapshot_keeps_the_most_recently_updated_series_up_to_its_bound() {
        let hub = LiveHub::new(HubConfig {
            snapshot_max_series: 160,
            ..HubConfig::default()
        });
        // A flood of new series, 100 per flush, all within the horizon.
        for flush in 0..20 {
            hub.publish((0..100).map(|i| update("api", &format!("m{flush}-{i}"), 60, 1)));
            assert!(hub.snapshot_size().0 <= 160, "bounded between flushes too");
            hub.take_batch().unwrap();
            let (series, _) = hub.snapshot_size();
            assert!(series <= 160, "flush {flush}: {series} series held");
        }
        // A series updated again stays; the ones nobody updated since leave first.
        hub.publish([update("api", "m0-0", 120, 2)]);
        hub.publish((0..100).map(|i| update("api", &format!("late-{i}"), 60, 1)));
        hub.take_batch().unwrap();
        let ids: Vec<String> = counts(&hub.resume(None, &Subscription::default()).unwrap())
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(ids.len() <= 160 && ids.len() >= 100, "{}", ids.len());
        assert!(
            ids.iter().any(|id| id == "api/m0-0"),
            "re-updated series kept"
        );
        assert!((0..100).all(|i| ids.contains(&format!("api/late-{i}"))));
        assert!(
            !ids.iter().any(|id| id.starts_with("api/m1-")),
            "oldest left"
        );
    }

    #[test]
    fn published_buckets_are_labelled_with_the_series_identity_the_hub_holds() {
        let hub = LiveHub::default();
        // Separate copies of the series' metadata, as two aggregator batches make them.
        hub.publish_buckets([&bucket(60, "%")]);
        let first = hub.take_batch().unwrap();
        hub.publish_buckets([&bucket(120, "%")]);
        let second = hub.take_batch().unwrap();
        assert!(second.updates[0].series.ptr_eq(&first.updates[0].series));
        assert_eq!(
            first.updates[0]
                .series
                .attributes
                .get("host")
                .map(String::as_str),
            Some("a")
        );
        hub.publish_buckets([&bucket(180, "ms")]);
        let third = hub.take_batch().unwrap();
        assert_eq!(third.updates[0].series.unit, "ms");
        assert!(!third.updates[0].series.ptr_eq(&first.updates[0].series));
        assert_eq!(hub.snapshot_size(), (1, 2));
    }

    #[test]
    fn series_older_than_the_horizon_leave_the_snapshot() {
        let hub = LiveHub::new(HubConfig {
            snapshot_horizon_seconds: 600,
            ..HubConfig::default()
        });
        hub.publish([update("old", "cpu", 60, 1)]);
        hub.take_batch();
        hub.publish([update("new", "cpu", 60 + 660, 1)]);
        hub.take_batch();
        assert_eq!(snapshot_starts(&hub), vec![("new/cpu".to_string(), 720)]);
        assert_eq!(hub.snapshot_size(), (1, 1));
    }

    #[test]
    fn resume_sends_only_what_was_missed_for_the_subscription() {
        let hub = LiveHub::default();
        hub.publish([update("api", "cpu", 60, 1)]);
        hub.take_batch();
        hub.publish([update("api", "cpu", 60, 5), update("db", "cpu", 60, 9)]);
        hub.take_batch();
        hub.publish([update("api", "mem", 60, 3)]);
        hub.take_batch();
        let api_only = Subscription {
            services: vec!["api".into()],
            metrics: vec![],
        };
        let message = hub.resume(Some(1), &api_only).unwrap();
        assert!(matches!(
            message,
            ServerMessage::MetricsUpdate { seq: 3, .. }
        ));
        assert_eq!(
            counts(&message),
            vec![("api/cpu".to_string(), 5), ("api/mem".to_string(), 3)]
        );
        assert!(hub.resume(Some(3), &api_only).is_none(), "nothing missed");
    }

    #[test]
    fn resume_falls_back_to_a_snapshot_when_the_gap_is_gone_or_the_server_restarted() {
        let hub = LiveHub::new(HubConfig {
            replay_batches: 2,
            ..HubConfig::default()
        });
        for i in 1..=4 {
            hub.publish([update("api", "cpu", 60, i)]);
            hub.take_batch();
        }
        let all = Subscription::default();
        let gone = hub.resume(Some(1), &all).unwrap();
        assert!(matches!(gone, ServerMessage::Snapshot { seq: 4, .. }));
        assert_eq!(counts(&gone), vec![("api/cpu".to_string(), 4)]);
        let restarted = hub.resume(Some(99), &all).unwrap();
        assert!(matches!(restarted, ServerMessage::Snapshot { .. }));
        let fresh = hub.resume(None, &all).unwrap();
        assert!(matches!(fresh, ServerMessage::Snapshot { .. }));
        let caught_up = hub.resume(Some(2), &all).unwrap();
        assert!(matches!(
            caught_up,
            ServerMessage::MetricsUpdate { seq: 4, .. }
        ));
    }

    #[test]
    fn the_replay_buffer_is_bounded_in_bytes_and_a_gap_past_it_gets_a_snapshot() {
        // Counts of two digits keep every batch the same size.
        let one_batch = json_bytes(&[update("api", "cpu", 60, 10)]);
        let hub = LiveHub::new(HubConfig {
            replay_bytes: 3 * one_batch,
            ..HubConfig::default()
        });
        for i in 10..20 {
            hub.publish([update("api", "cpu", 60, i)]);
            hub.take_batch();
            assert!(hub.replay_stats().bytes <= 3 * one_batch);
        }
        assert_eq!(
            hub.replay_stats(),
            ReplayStats {
                batches: 3,
                bytes: 3 * one_batch
            }
        );
        let all = Subscription::default();
        assert!(matches!(
            hub.resume(Some(7), &all),
            Some(ServerMessage::MetricsUpdate { seq: 10, .. })
        ));
        let gone = hub.resume(Some(6), &all).unwrap();
        assert!(matches!(gone, ServerMessage::Snapshot { seq: 10, .. }));
        assert_eq!(counts(&gone), vec![("api/cpu".to_string(), 19)]);

        // A single flush larger than the whole buffer is not kept at all.
        let small = LiveHub::new(HubConfig {
            replay_bytes: one_batch / 2,
            ..HubConfig::default()
        });
        small.publish([update("api", "cpu", 60, 10)]);
        small.take_batch();
        small.publish([update("api", "cpu", 60, 11)]);
        small.take_batch();
        assert_eq!(small.replay_stats(), ReplayStats::default());
        assert!(matches!(
            small.resume(Some(1), &all),
            Some(ServerMessage::Snapshot { seq: 2, .. })
        ));
    }
}
