//! Cumulative → delta: turning running totals into what happened since the previous point.
//!
//! OTLP SDKs (Python and JS by default) report sums and histograms as running totals since
//! `start_time_unix_nano`. Buckets need increases, so for every (source, series) the tracker keeps the
//! last point seen per start time — a *track* — and emits `current − previous`.
//!
//! Rules, per point of a cumulative sum, histogram, exponential histogram or summary:
//! - **Known start time** (a track exists): a point at or before the track's last time is a duplicate or
//!   out of order and is ignored ([`Normalized::Duplicate`]). Otherwise the delta is current − previous.
//!   For monotonic sums and histograms a smaller value (or any smaller bucket count) is a reset inside
//!   the same start time: the current value *is* the delta. Non-monotonic sums (up-down counters) never
//!   reset on a decrease: their delta may be negative.
//! - **Unknown start time** (first point of a series, or of a new process after a restart): the whole
//!   value accrued between `start` and `time`. It is used as the delta only when
//!   `0 < start ≤ time` and `time − start ≤` [`FRESH_START_WINDOW_NANOS`] (10 minutes): the counter
//!   demonstrably started recently, as after a process (re)start with the SDK default 60 s export
//!   interval, so its whole value belongs to the current bucket. Otherwise (a counter that has been
//!   running for hours when Flowscope first sees it, or whose state aged out) the point only sets the
//!   baseline ([`Normalized::Baseline`]); counting it would put hours of increase into one bucket.
//!   `start == time` counts too: the JS SDK stamps whole milliseconds, so a counter flushed in the
//!   millisecond it was created reports its first increments with `start == time`.
//!   The cost of this choice: an SDK that stamps a *new* attribute set with the old process start time
//!   (Go does) loses that series' first interval. We prefer a small undercount to a spike.
//! - Tracks are kept per start time (up to [`MAX_TRACKS`] per source and series) rather than one per
//!   series because several processes often share one resource identity (gunicorn or cluster workers
//!   without `service.instance.id`): with one track their alternating totals would each look like a
//!   reset and be counted whole every time. With more than [`MAX_TRACKS`] such processes a track is
//!   evicted and its next point becomes a baseline again (undercount, never double count).
//! - Histograms whose bounds change are treated as reset. Exponential histograms whose scale changed
//!   are compared at the coarser scale (the finer one is downscaled; SDKs only ever lower the scale),
//!   so the delta comes out at the coarser scale.
//! - Summaries carry no temporality in the model, but OTLP defines their count and sum as cumulative,
//!   so they are tracked like a monotonic counter with start time 0 (their first point is a baseline).
//! - Gauges and delta points pass through unchanged.
//!
//! Delta histograms derived from cumulative ones keep `min`/`max` only when they are known to belong
//! to the interval (the running minimum went down or the running maximum went up); otherwise they are
//! `None` and [`crate::aggregate::contribution`] estimates them from the buckets.
//!
//! State is persisted per (source, series) under [`state_key`] as a compact versioned byte string
//! ([`SeriesState::to_bytes`]) and expires after [`STATE_IDLE_EXPIRY_SECONDS`] without points.

use bytes::{Buf, BufMut, Bytes};

use crate::model::{MetricPoint, PointData, SeriesId, SourceId, StableHasher, Temporality};

use super::FastMap;
use crate::ports::SequenceNumber;

/// How long state of an idle series is kept (also how long a track of a stopped process lingers).
pub const STATE_IDLE_EXPIRY_SECONDS: i64 = 24 * 3600;
/// A first point whose counter started at most this long before it counts whole (see module docs).
pub const FRESH_START_WINDOW_NANOS: u64 = 10 * 60 * 1_000_000_000;
/// Start times remembered per source and series.
pub const MAX_TRACKS: usize = 8;

const STATE_FORMAT_VERSION: u8 = 1;
const IDLE_EXPIRY_NANOS: u64 = STATE_IDLE_EXPIRY_SECONDS as u64 * 1_000_000_000;

/// Store key of the cumulative state of one (source, series): `cum/<source hex>/<series hex>`.
pub fn state_key(source: SourceId, series: SeriesId) -> String {
    format!("cum/{:016x}/{series}", source.0)
}

/// Whether `data` needs cumulative state to be normalized.
pub fn needs_state(data: &PointData) -> bool {
    cumulative_start(data).is_some()
}

/// The start time of a point that is tracked cumulatively (`Some(0)` for summaries).
fn cumulative_start(data: &PointData) -> Option<u64> {
    match data {
        PointData::Sum {
            temporality:
                Temporality::Cumulative {
                    start_time_unix_nano,
                },
            ..
        }
        | PointData::Histogram {
            temporality:
                Temporality::Cumulative {
                    start_time_unix_nano,
                },
            ..
        }
        | PointData::ExponentialHistogram {
            temporality:
                Temporality::Cumulative {
                    start_time_unix_nano,
                },
            ..
        } => Some(*start_time_unix_nano),
        PointData::Summary { .. } => Some(0),
        _ => None,
    }
}

/// What a point means for the buckets once normalized.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// The point's effect on buckets: a gauge, or a sum/histogram/summary holding only what happened
    /// since the previous point (histograms with `Temporality::Delta`).
    Delta(PointData),
    /// The first point of a cumulative series that did not demonstrably start recently: it only sets
    /// the baseline for the next delta.
    Baseline,
    /// At or before the last point already seen for this series and start time: already counted.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cumulative state is malformed: {0}")]
    Malformed(String),
    #[error("cumulative state format version {0} is not supported by this build")]
    UnsupportedVersion(u8),
}

/// Everything remembered about one (source, series): its last point per start time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesState {
    tracks: Vec<Track>,
}

#[derive(Debug, Clone, PartialEq)]
struct Track {
    start: u64,
    last_time: u64,
    last: TrackValue,
}

#[derive(Debug, Clone, PartialEq)]
struct ExpBuckets {
    offset: i32,
    counts: Vec<u64>,
}

/// The last cumulative value of a track, in the shape of its point type.
#[derive(Debug, Clone, PartialEq)]
enum TrackValue {
    Sum(f64),
    Histogram {
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        /// Bounds are hashed, not stored: they only serve to detect a change (which is a reset).
        bounds_hash: u64,
        counts: Vec<u64>,
    },
    Exponential {
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        scale: i32,
        zero_count: u64,
        positive: ExpBuckets,
        negative: ExpBuckets,
    },
    Summary {
        count: u64,
        sum: f64,
    },
}

impl TrackValue {
    fn of(data: &PointData) -> Option<TrackValue> {
        Some(match data {
            PointData::Sum { value, .. } => TrackValue::Sum(*value),
            PointData::Histogram {
                count,
                sum,
                min,
                max,
                bounds,
                bucket_counts,
                ..
            } => TrackValue::Histogram {
                count: *count,
                sum: *sum,
                min: *min,
                max: *max,
                bounds_hash: bounds_hash(bounds),
                counts: bucket_counts.clone(),
            },
            PointData::ExponentialHistogram {
                count,
                sum,
                min,
                max,
                scale,
                zero_count,
                positive_offset,
                positive_counts,
                negative_offset,
                negative_counts,
                ..
            } => TrackValue::Exponential {
                count: *count,
                sum: *sum,
                min: *min,
                max: *max,
                scale: *scale,
                zero_count: *zero_count,
                positive: ExpBuckets {
                    offset: *positive_offset,
                    counts: positive_counts.clone(),
                },
                negative: ExpBuckets {
                    offset: *negative_offset,
                    counts: negative_counts.clone(),
                },
            },
            PointData::Summary { count, sum } => TrackValue::Summary {
                count: *count,
                sum: *sum,
            },
            PointData::Gauge(_) => return None,
        })
    }

    fn same_kind(&self, data: &PointData) -> bool {
        matches!(
            (self, data),
            (TrackValue::Sum(_), PointData::Sum { .. })
                | (TrackValue::Histogram { .. }, PointData::Histogram { .. })
                | (
                    TrackValue::Exponential { .. },
                    PointData::ExponentialHistogram { .. }
                )
                | (TrackValue::Summary { .. }, PointData::Summary { .. })
        )
    }
}

/// [`crate::model::stable_hash`] of the bounds' bit patterns in decimal (the value persisted in state items), built
/// without allocating.
fn bounds_hash(bounds: &[f64]) -> u64 {
    // Nearly every histogram point of a batch has the same bounds as the previous one: remember the
    // last list and its hash (compared bit for bit) instead of hashing ten decimals per point.
    thread_local! {
        static LAST: std::cell::RefCell<(Vec<u64>, u64)> =
            std::cell::RefCell::new((Vec::new(), bounds_hash_of(&[])));
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        let same = last.0.len() == bounds.len()
            && last.0.iter().zip(bounds).all(|(a, b)| *a == b.to_bits());
        if !same {
            last.0.clear();
            last.0.extend(bounds.iter().map(|b| b.to_bits()));
            last.1 = bounds_hash_of(bounds);
        }
        last.1
    })
}

fn bounds_hash_of(bounds: &[f64]) -> u64 {
    let mut hash = StableHasher::new();
    let mut digits = [0u8; 20];
    for bound in bounds {
        hash.part(decimal(bound.to_bits(), &mut digits));
    }
    hash.finish()
}

/// `n` in decimal, written into the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("")
}

/// What cumulative state is kept per: one process's view of one series.
pub type StateId = (SourceId, SeriesId);

/// Converts cumulative points to deltas for one batch, remembering which state items changed.
#[derive(Debug, Clone, Default)]
pub struct CumulativeTracker {
    states: FastMap<StateId, SeriesState>,
    /// State items changed by this batch, with the sequence number of the first record that changed them.
    changed: FastMap<StateId, SequenceNumber>,
}

impl CumulativeTracker {
    /// A tracker starting from the state loaded for this batch (missing items start empty).
    pub fn new(states: FastMap<StateId, SeriesState>) -> Self {
        CumulativeTracker {
            states,
            changed: FastMap::default(),
        }
    }

    /// Normalizes one point of the record `seq` (points must come in stream order).
    pub fn normalize(&mut self, seq: &SequenceNumber, point: &MetricPoint) -> Normalized {
        self.normalize_series(seq, point.series.id(), point)
    }

    /// [`CumulativeTracker::normalize`] for a caller that already hashed `point.series` into `series`.
    pub fn normalize_series(
        &mut self,
        seq: &SequenceNumber,
        series: SeriesId,
        point: &MetricPoint,
    ) -> Normalized {
        let Some(start) = cumulative_start(&point.data) else {
            return Normalized::Delta(point.data.clone());
        };
        let Some(current) = TrackValue::of(&point.data) else {
            return Normalized::Delta(point.data.clone());
        };
        let id = (point.source, series);
        let time = point.time_unix_nano;
        let state = self.states.entry(id).or_default();

        let existing = state
            .tracks
            .iter()
            .position(|t| t.start == start && t.last.same_kind(&point.data));
        let normalized = match existing {
            Some(index) => {
                let track = &mut state.tracks[index];
                if time <= track.last_time {
                    return Normalized::Duplicate;
                }
                let delta = delta_between(&track.last, &point.data);
                track.last = current;
                track.last_time = time;
                Normalized::Delta(delta)
            }
            None => {
                // A track of another kind under the same start time means the metric changed type:
                // the old one is useless.
                state.tracks.retain(|t| t.start != start);
                state.tracks.push(Track {
                    start,
                    last_time: time,
                    last: current,
                });
                if start > 0 && start <= time && time - start <= FRESH_START_WINDOW_NANOS {
                    Normalized::Delta(as_delta(&point.data))
                } else {
                    Normalized::Baseline
                }
            }
        };
        state.prune();
        self.changed.entry(id).or_insert_with(|| seq.clone());
        normalized
    }

    /// State items changed so far: (store key, new state, sequence number of the first record that
    /// changed it).
    pub fn changed(&self) -> impl Iterator<Item = (String, &SeriesState, &SequenceNumber)> + '_ {
        self.changed.iter().filter_map(|(id, first)| {
            self.states
                .get(id)
                .map(|state| (state_key(id.0, id.1), state, first))
        })
    }
}

impl SeriesState {
    /// Drops tracks idle for a day relative to the newest one, then the least recent beyond the cap.
    fn prune(&mut self) {
        let newest = self.tracks.iter().map(|t| t.last_time).max().unwrap_or(0);
        self.tracks
            .retain(|t| newest.saturating_sub(t.last_time) <= IDLE_EXPIRY_NANOS);
        if self.tracks.len() > MAX_TRACKS {
            self.tracks.sort_by_key(|t| std::cmp::Reverse(t.last_time));
            self.tracks.truncate(MAX_TRACKS);
        }
    }

    /// Number of start times remembered.
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Compact versioned encoding (varints; a sum track is ~20 bytes).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(16 + self.tracks.len() * 24);
        out.put_u8(STATE_FORMAT_VERSION);
        put_varint(&mut out, self.tracks.len() as u64);
        for track in &self.tracks {
            put_varint(&mut out, track.start);
            put_varint(&mut out, track.last_time);
            match &track.last {
                TrackValue::Sum(value) => {
                    out.put_u8(0);
                    out.put_f64_le(*value);
                }
                TrackValue::Histogram {
                    count,
                    sum,
                    min,
                    max,
                    bounds_hash,
                    counts,
                } => {
                    out.put_u8(1);
                    put_varint(&mut out, *count);
                    put_opt_f64(&mut out, *sum);
                    put_opt_f64(&mut out, *min);
                    put_opt_f64(&mut out, *max);
                    out.put_u64_le(*bounds_hash);
                    put_counts(&mut out, counts);
                }
                TrackValue::Exponential {
                    count,
                    sum,
                    min,
                    max,
                    scale,
                    zero_count,
                    positive,
                    negative,
                } => {
                    out.put_u8(2);
                    put_varint(&mut out, *count);
                    put_opt_f64(&mut out, *sum);
                    put_opt_f64(&mut out, *min);
                    put_opt_f64(&mut out, *max);
                    put_signed(&mut out, i64::from(*scale));
                    put_varint(&mut out, *zero_count);
                    for side in [positive, negative] {
                        put_signed(&mut out, i64::from(side.offset));
                        put_counts(&mut out, &side.counts);
                    }
                }
                TrackValue::Summary { count, sum } => {
                    out.put_u8(3);
                    put_varint(&mut out, *count);
                    out.put_f64_le(*sum);
                }
            }
        }
        Bytes::from(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SeriesState, StateError> {
        let mut input = bytes;
        let version = get_u8(&mut input)?;
        if version != STATE_FORMAT_VERSION {
            return Err(StateError::UnsupportedVersion(version));
        }
        let track_count = get_varint(&mut input)?;
        let mut tracks = Vec::with_capacity(capacity_for(track_count, input));
        for _ in 0..track_count {
            let start = get_varint(&mut input)?;
            let last_time = get_varint(&mut input)?;
            let last = match get_u8(&mut input)? {
                0 => TrackValue::Sum(get_f64(&mut input)?),
                1 => TrackValue::Histogram {
                    count: get_varint(&mut input)?,
                    sum: get_opt_f64(&mut input)?,
                    min: get_opt_f64(&mut input)?,
                    max: get_opt_f64(&mut input)?,
                    bounds_hash: get_u64(&mut input)?,
                    counts: get_counts(&mut input)?,
                },
                2 => {
                    let count = get_varint(&mut input)?;
                    let sum = get_opt_f64(&mut input)?;
                    let min = get_opt_f64(&mut input)?;
                    let max = get_opt_f64(&mut input)?;
                    let scale = get_i32(&mut input)?;
                    let zero_count = get_varint(&mut input)?;
                    let positive = ExpBuckets {
                        offset: get_i32(&mut input)?,
                        counts: get_counts(&mut input)?,
                    };
                    let negative = ExpBuckets {
                        offset: get_i32(&mut input)?,
                        counts: get_counts(&mut input)?,
                    };
                    TrackValue::Exponential {
                        count,
                        sum,
                        min,
                        max,
                        scale,
                        zero_count,
                        positive,
                        negative,
                    }
                }
                3 => TrackValue::Summary {
                    count: get_varint(&mut input)?,
                    sum: get_f64(&mut input)?,
                },
                tag => return Err(StateError::Malformed(format!("unknown track tag {tag}"))),
            };
            tracks.push(Track {
                start,
                last_time,
                last,
            });
        }
        if !input.is_empty() {
            return Err(StateError::Malformed(format!(
                "{} trailing bytes",
                input.len()
            )));
        }
        Ok(SeriesState { tracks })
    }
}

/// A cumulative point's data relabelled as a delta (its whole value is the delta).
fn as_delta(data: &PointData) -> PointData {
    let mut delta = data.clone();
    match &mut delta {
        PointData::Sum { temporality, .. }
        | PointData::Histogram { temporality, .. }
        | PointData::ExponentialHistogram { temporality, .. } => *temporality = Temporality::Delta,
        PointData::Gauge(_) | PointData::Summary { .. } => {}
    }
    delta
}

/// `current − previous`, or the whole current value when the series was reset.
fn delta_between(previous: &TrackValue, current: &PointData) -> PointData {
    match (previous, current) {
        (
            TrackValue::Sum(previous),
            PointData::Sum {
                value, monotonic, ..
            },
        ) => {
            let reset = *monotonic && value < previous;
            PointData::Sum {
                value: if reset { *value } else { value - previous },
                monotonic: *monotonic,
                temporality: Temporality::Delta,
            }
        }
        (
            TrackValue::Histogram {
                count: prev_count,
                sum: prev_sum,
                min: prev_min,
                max: prev_max,
                bounds_hash: prev_bounds,
                counts: prev_counts,
            },
            PointData::Histogram {
                count,
                sum,
                min,
                max,
                bounds,
                bucket_counts,
                ..
            },
        ) => {
            let comparable = *prev_bounds == bounds_hash(bounds)
                && prev_counts.len() == bucket_counts.len()
                && count >= prev_count
                && bucket_counts.iter().zip(prev_counts).all(|(c, p)| c >= p);
            if !comparable {
                return as_delta(current);
            }
            PointData::Histogram {
                temporality: Temporality::Delta,
                count: count - prev_count,
                sum: sum.zip(*prev_sum).map(|(s, p)| s - p),
                min: interval_min(*prev_count, *prev_min, *min),
                max: interval_max(*prev_count, *prev_max, *max),
                bounds: bounds.clone(),
                bucket_counts: bucket_counts
                    .iter()
                    .zip(prev_counts)
                    .map(|(c, p)| c - p)
                    .collect(),
            }
        }
        (
            TrackValue::Exponential {
                count: prev_count,
                sum: prev_sum,
                min: prev_min,
                max: prev_max,
                scale: prev_scale,
                zero_count: prev_zero,
                positive: prev_positive,
                negative: prev_negative,
            },
            PointData::ExponentialHistogram {
                count,
                sum,
                min,
                max,
                scale,
                zero_count,
                positive_offset,
                positive_counts,
                negative_offset,
                negative_counts,
                ..
            },
        ) => {
            if count < prev_count || zero_count < prev_zero {
                return as_delta(current);
            }
            let target_scale = (*scale).min(*prev_scale);
            let current_positive = ExpBuckets {
                offset: *positive_offset,
                counts: positive_counts.clone(),
            }
            .downscaled(scale.saturating_sub(target_scale));
            let current_negative = ExpBuckets {
                offset: *negative_offset,
                counts: negative_counts.clone(),
            }
            .downscaled(scale.saturating_sub(target_scale));
            let previous_positive =
                prev_positive.downscaled(prev_scale.saturating_sub(target_scale));
            let previous_negative =
                prev_negative.downscaled(prev_scale.saturating_sub(target_scale));
            let (Some(positive), Some(negative)) = (
                current_positive.minus(&previous_positive),
                current_negative.minus(&previous_negative),
            ) else {
                return as_delta(current);
            };
            PointData::ExponentialHistogram {
                temporality: Temporality::Delta,
                count: count - prev_count,
                sum: sum.zip(*prev_sum).map(|(s, p)| s - p),
                min: interval_min(*prev_count, *prev_min, *min),
                max: interval_max(*prev_count, *prev_max, *max),
                scale: target_scale,
                zero_count: zero_count - prev_zero,
                positive_offset: positive.offset,
                positive_counts: positive.counts,
                negative_offset: negative.offset,
                negative_counts: negative.counts,
            }
        }
        (
            TrackValue::Summary {
                count: prev_count,
                sum: prev_sum,
            },
            PointData::Summary { count, sum },
        ) => {
            if count < prev_count {
                return current.clone();
            }
            PointData::Summary {
                count: count - prev_count,
                sum: sum - prev_sum,
            }
        }
        // Kinds are matched by the caller; a mismatch can only mean a reset.
        _ => as_delta(current),
    }
}

/// The interval's minimum is known only if the running minimum moved (or nothing came before).
fn interval_min(prev_count: u64, prev: Option<f64>, current: Option<f64>) -> Option<f64> {
    match (prev, current) {
        _ if prev_count == 0 => current,
        (Some(p), Some(c)) if c < p => Some(c),
        _ => None,
    }
}

fn interval_max(prev_count: u64, prev: Option<f64>, current: Option<f64>) -> Option<f64> {
    match (prev, current) {
        _ if prev_count == 0 => current,
        (Some(p), Some(c)) if c > p => Some(c),
        _ => None,
    }
}

impl ExpBuckets {
    /// The same counts at a scale `by` steps coarser: index `i` becomes `i >> by`.
    fn downscaled(&self, by: i32) -> ExpBuckets {
        if by <= 0 || self.counts.is_empty() {
            return self.clone();
        }
        // Beyond 62 every index collapses to 0 or -1 anyway; the cap keeps the shift defined.
        let shift = by.min(62) as u32;
        let first = i64::from(self.offset) >> shift;
        let mut counts: Vec<u64> = Vec::new();
        for (i, count) in self.counts.iter().enumerate() {
            let index = (i64::from(self.offset) + i as i64) >> shift;
            let slot = (index - first) as usize;
            if counts.len() <= slot {
                counts.resize(slot + 1, 0);
            }
            counts[slot] = counts[slot].saturating_add(*count);
        }
        ExpBuckets {
            offset: i32::try_from(first).unwrap_or(if first < 0 { i32::MIN } else { i32::MAX }),
            counts,
        }
    }

    /// `self − earlier` over `self`'s range; `None` if `earlier` has more anywhere (a reset).
    fn minus(&self, earlier: &ExpBuckets) -> Option<ExpBuckets> {
        let mut counts = self.counts.clone();
        for (i, &count) in earlier.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let slot = i64::from(earlier.offset) + i as i64 - i64::from(self.offset);
            let current = usize::try_from(slot).ok().and_then(|s| counts.get_mut(s))?;
            *current = current.checked_sub(count)?;
        }
        Some(ExpBuckets {
            offset: self.offset,
            counts,
        })
    }
}

fn put_varint(out: &mut Vec<u8>, value: u64) {
    prost::encoding::encode_varint(value, out);
}

fn put_signed(out: &mut Vec<u8>, value: i64) {
    // Zigzag keeps small negative offsets and scales to one byte.
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_opt_f64(out: &mut Vec<u8>, value: Option<f64>) {
    match value {
        Some(v) => {
            out.put_u8(1);
            out.put_f64_le(v);
        }
        None => out.put_u8(0),
    }
}

fn put_counts(out: &mut Vec<u8>, counts: &[u64]) {
    put_varint(out, counts.len() as u64);
    for count in counts {
        put_varint(out, *count);
    }
}

fn truncated() -> StateError {
    StateError::Malformed("truncated".into())
}

fn get_u8(input: &mut &[u8]) -> Result<u8, StateError> {
    if input.is_empty() {
        return Err(truncated());
    }
    Ok(input.get_u8())
}

fn get_u64(input: &mut &[u8]) -> Result<u64, StateError> {
    if input.len() < 8 {
        return Err(truncated());
    }
    Ok(input.get_u64_le())
}

fn get_f64(input: &mut &[u8]) -> Result<f64, StateError> {
    get_u64(input).map(f64::from_bits)
}

fn get_opt_f64(input: &mut &[u8]) -> Result<Option<f64>, StateError> {
    match get_u8(input)? {
        0 => Ok(None),
        1 => get_f64(input).map(Some),
        flag => Err(StateError::Malformed(format!("bad option flag {flag}"))),
    }
}

fn get_varint(input: &mut &[u8]) -> Result<u64, StateError> {
    prost::encoding::decode_varint(input).map_err(|e| StateError::Malformed(e.to_string()))
}

fn get_i32(input: &mut &[u8]) -> Result<i32, StateError> {
    let raw = get_varint(input)?;
    let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
    i32::try_from(value).map_err(|_| StateError::Malformed(format!("{value} is out of range")))
}

/// A declared element count, capped by what the remaining bytes could hold (one byte each at least),
/// so a corrupt count cannot make us allocate gigabytes.
fn capacity_for(declared: u64, input: &[u8]) -> usize {
    usize::try_from(declared)
        .unwrap_or(usize::MAX)
        .min(input.len())
}

fn get_counts(input: &mut &[u8]) -> Result<Vec<u64>, StateError> {
    let len = get_varint(input)?;
    if len > input.len() as u64 {
        return Err(truncated());
    }
    let mut counts = Vec::with_capacity(capacity_for(len, input));
    for _ in 0..len {
        counts.push(get_varint(input)?);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attributes, SeriesKey};

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn bounds_hash_keeps_the_value_persisted_by_earlier_builds() {
        // The formula state items were written with: stable_hash of each bound's bits in decimal.
        let persisted = |bounds: &[f64]| {
            let texts: Vec<String> = bounds.iter().map(|b| b.to_bits().to_string()).collect();
            let parts: Vec<&str> = texts.iter().map(String::as_str).collect();
            crate::model::stable_hash(&parts)
        };
        for bounds in [
            &[][..],
            &[0.0][..],
            &[0.0, 5.0, 10.0, 25.0, 1e300, -1.5, f64::MIN_POSITIVE][..],
        ] {
            assert_eq!(bounds_hash(bounds), persisted(bounds));
            // Again, now from the remembered last list.
            assert_eq!(bounds_hash(bounds), persisted(bounds));
        }
    }

    fn point(time_s: u64, data: PointData) -> MetricPoint {
        MetricPoint {
            series: SeriesKey {
                service: "api".into(),
                metric: "requests".into(),
                attributes: Attributes::new(),
            }
            .into(),
            source: SourceId(7),
            unit: "1".into(),
            time_unix_nano: time_s * SEC,
            data,
        }
    }

    fn counter(start_s: u64, time_s: u64, value: f64) -> MetricPoint {
        point(
            time_s,
            PointData::Sum {
                value,
                monotonic: true,
                temporality: Temporality::Cumulative {
                    start_time_unix_nano: start_s * SEC,
                },
            },
        )
    }

    fn delta_value(n: &Normalized) -> Option<f64> {
        match n {
            Normalized::Delta(PointData::Sum { value, .. }) => Some(*value),
            _ => None,
        }
    }

    fn seq(n: u128) -> SequenceNumber {
        SequenceNumber::from_u128(n)
    }

    #[test]
    fn exponential_histogram_state_round_trips_through_bytes() {
        let mut tracker = CumulativeTracker::default();
        let p = point(
            100,
            PointData::ExponentialHistogram {
                temporality: Temporality::Cumulative {
                    start_time_unix_nano: 1,
                },
                count: 6,
                sum: Some(12.5),
                min: None,
                max: Some(9.0),
                scale: -3,
                zero_count: 1,
                positive_offset: -2,
                positive_counts: vec![1, 0, 300],
                negative_offset: 5,
                negative_counts: vec![4],
            },
        );
        tracker.normalize(&seq(1), &p);
        tracker.normalize(&seq(2), &counter(50, 100, 3.5));
        let (_, state, _) = tracker.changed().next().unwrap();
        let back = SeriesState::from_bytes(&state.to_bytes()).unwrap();
        assert_eq!(&back, state);
        assert_eq!(back.track_count(), 2);
    }

    #[test]
    fn corrupt_state_bytes_are_an_error_not_a_panic() {
        for bytes in [
            &[][..],
            &[9][..],
            &[1, 5][..],
            &[1, 1, 0, 0, 7][..],
            &[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
        ] {
            assert!(SeriesState::from_bytes(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn counter_reset_and_out_of_order_points() {
        let mut tracker = CumulativeTracker::default();
        // Started long before the first point: baseline only.
        assert_eq!(
            tracker.normalize(&seq(1), &counter(0, 3600, 100.0)),
            Normalized::Baseline
        );
        assert_eq!(
            delta_value(&tracker.normalize(&seq(2), &counter(0, 3660, 130.0))),
            Some(30.0)
        );
        assert_eq!(
            tracker.normalize(&seq(3), &counter(0, 3630, 120.0)),
            Normalized::Duplicate
        );
        // Smaller value under the same start time: a reset, the value is the delta.
        assert_eq!(
            delta_value(&tracker.normalize(&seq(4), &counter(0, 3720, 5.0))),
            Some(5.0)
        );
        // A restart 60 s before its first export counts whole.
        assert_eq!(
            delta_value(&tracker.normalize(&seq(5), &counter(3700, 3760, 8.0))),
            Some(8.0)
        );
    }

    #[test]
    fn processes_sharing_a_source_do_not_look_like_resets() {
        let mut tracker = CumulativeTracker::default();
        // Two workers with the same resource identity but different start times, interleaved.
        tracker.normalize(&seq(1), &counter(0, 1000, 500.0));
        tracker.normalize(&seq(1), &counter(10, 1000, 70.0));
        let a = tracker.normalize(&seq(2), &counter(0, 1060, 510.0));
        let b = tracker.normalize(&seq(2), &counter(10, 1060, 75.0));
        assert_eq!(delta_value(&a), Some(10.0));
        assert_eq!(delta_value(&b), Some(5.0));
    }

    #[test]
    fn exponential_histogram_scale_change_is_compared_at_the_coarser_scale() {
        let exp = |time_s, scale, offset, counts: Vec<u64>| {
            let count = counts.iter().sum();
            point(
                time_s,
                PointData::ExponentialHistogram {
                    temporality: Temporality::Cumulative {
                        start_time_unix_nano: 1,
                    },
                    count,
                    sum: None,
                    min: None,
                    max: None,
                    scale,
                    zero_count: 0,
                    positive_offset: offset,
                    positive_counts: counts,
                    negative_offset: 0,
                    negative_counts: vec![],
                },
            )
        };
        let mut tracker = CumulativeTracker::default();
        // Scale 1: indexes 2,3 → at scale 0 both are index 1.
        tracker.normalize(&seq(1), &exp(5000, 1, 2, vec![1, 2]));
        let n = tracker.normalize(&seq(2), &exp(5060, 0, 1, vec![4, 1]));
        match n {
            Normalized::Delta(PointData::ExponentialHistogram {
                scale,
                count,
                positive_offset,
                positive_counts,
                ..
            }) => {
                assert_eq!(scale, 0);
                assert_eq!(count, 2);
                assert_eq!(positive_offset, 1);
                assert_eq!(positive_counts, vec![1, 1]);
            }
            other => panic!("expected a delta, got {other:?}"),
        }
    }
}
