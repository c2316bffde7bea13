//! The mergeable quantile sketch behind every bucket's p50/p95/p99.
//!
//! A thin wrapper over `sketches-ddsketch` (DDSketch, relative accuracy 1%): merging adds bin counts,
//! so buckets merge exactly and order-independently across batches, shards and rollups. The wrapper
//! pins the configuration (a sketch can only merge with one of the same configuration) and gives it a
//! compact, versioned byte form for stream records and store items.

use std::sync::LazyLock;

use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every quantile the sketch reports.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Bins per sign before the lowest bins collapse: at 1% this covers ~1e-9 .. 1e9 without collapsing.
const MAX_BINS: u32 = 2048;
/// Values with a smaller magnitude count as zero.
const MIN_VALUE: f64 = 1.0e-9;
/// Distinct values a sketch keeps as a sorted list before it switches to the dense DDSketch store.
/// 32 × 16 bytes = 512 bytes, against the dense store's first 128-bin chunk of 1 KB (per sign) —
/// and adding to the list costs a binary search, not a logarithm and a bin lookup.
pub const SPARSE_MAX_VALUES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SketchError {
    #[error("sketch bytes are malformed: {0}")]
    Malformed(String),
}

/// A DDSketch, held in one of two equivalent forms:
/// - **sparse** (the common case for gauges, sums and small histograms in one bucket): the distinct
///   observed values with their counts, sorted. Quantiles map the value at the rank to its DDSketch
///   bin's representative, so they are exactly what the dense sketch with the same insertions
///   reports (same bins, same representative), and q=0/q=1 are the exact min/max as in DDSketch;
/// - **dense**: `sketches-ddsketch`'s collapsing dense store, once more than [`SPARSE_MAX_VALUES`]
///   distinct values arrive (or after decoding stored bytes).
///
/// The byte form is the same in both cases (DataDog's Java encoding, written by the crate), so stored
/// data and stream records are unchanged.
#[derive(Clone)]
pub struct Sketch {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// Distinct finite values in ascending order (`f64::total_cmp`) with their non-zero counts;
    /// `count` is the sum of the counts.
    Sparse {
        values: Vec<(f64, u64)>,
        count: u64,
    },
    Dense(Box<DDSketch>),
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.count())
            .field("sparse", &self.is_sparse())
            .finish()
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::new()
    }
}

fn config() -> Config {
    Config::new(RELATIVE_ACCURACY, MAX_BINS, MIN_VALUE)
}

static CONFIG: LazyLock<Config> = LazyLock::new(config);

/// The value DDSketch reports for an observation of `value`: its bin's representative (0 for the
/// zero bin, mirrored for negatives).
fn representative(value: f64) -> f64 {
    let config = &*CONFIG;
    if value > MIN_VALUE {
        config.value(config.key(value))
    } else if value < -MIN_VALUE {
        -config.value(config.key(-value))
    } else {
        0.0
    }
}

/// The upper edge of the sketch bin that holds `value`, in ascending value order: `γ^(k+1)` for a
/// positive bin `[γ^k, γ^(k+1))`, `−γ^k` for a negative bin `(−γ^(k+1), −γ^k]`, and the zero bin's
/// `MIN_VALUE`. Every value in `(value, bin_upper_edge(value))` lands in the same bin as `value`, so
/// spreading a count over a range (explicit histogram buckets) can step one bin at a time.
pub fn bin_upper_edge(value: f64) -> f64 {
    let config = &*CONFIG;
    if value > MIN_VALUE {
        config.pow_gamma(config.key(value).saturating_add(1))
    } else if value < -MIN_VALUE {
        -config.pow_gamma(config.key(-value))
    } else {
        MIN_VALUE
    }
}

/// Relative distance from a bin edge inside which [`BinEdges::upper_edge`] asks the logarithm
/// instead of its table: far above floating-point error in the bin index (~1e-11 of a bin), so
/// outside it the table's answer is the logarithm's, bit for bit.
const EDGE_MARGIN: f64 = 1e-9;
/// Most bins a [`BinEdges`] table spans (wider ranges ask [`bin_upper_edge`] every time).
const MAX_TABLE_BINS: i32 = 512;

/// The positive bins' upper edges over one range, worked out once: [`BinEdges::upper_edge`] is
/// [`bin_upper_edge`] — the same `pow_gamma` of the same bin index, bit for bit — found by a binary
/// search instead of a logarithm and an exponential. Spreading an explicit histogram's buckets steps
/// bin by bin over the same bucket ranges point after point, so the table is kept per range.
#[derive(Debug, Clone)]
pub struct BinEdges {
    /// `pow_gamma(k0 + j)` for `j = 0..`, up to the first edge above the range.
    edges: Vec<f64>,
}

impl BinEdges {
    /// The table for `[lo, hi]`, or `None` when it would not help: a range that is not positive
    /// (the zero and negative bins) or spans more than [`MAX_TABLE_BINS`] bins.
    pub fn new(lo: f64, hi: f64) -> Option<BinEdges> {
        if !(lo > MIN_VALUE && hi >= lo && hi.is_finite()) {
            return None;
        }
        let config = &*CONFIG;
        let (first, last) = (config.key(lo), config.key(hi));
        if last.saturating_sub(first) > MAX_TABLE_BINS {
            return None;
        }
        let edges = (first..=last.saturating_add(1))
            .map(|k| config.pow_gamma(k))
            .collect();
        Some(BinEdges { edges })
    }

    /// [`bin_upper_edge`]`(value)`.
    pub fn upper_edge(&self, value: f64) -> f64 {
        let i = self.edges.partition_point(|&edge| edge <= value);
        if let (Some(&below), Some(&above)) = (
            i.checked_sub(1).and_then(|j| self.edges.get(j)),
            self.edges.get(i),
        ) {
            // Strictly inside bin `k0 + i − 1`, away from both edges: its upper edge is the next one.
            if value >= below * (1.0 + EDGE_MARGIN) && value <= above * (1.0 - EDGE_MARGIN) {
                return above;
            }
        }
        bin_upper_edge(value)
    }
}

impl Sketch {
    pub fn new() -> Self {
        Sketch {
            repr: Repr::Sparse {
                values: Vec::new(),
                count: 0,
            },
        }
    }

    /// Whether the sketch is still in its sparse form (see [`Sketch`]).
    pub fn is_sparse(&self) -> bool {
        matches!(self.repr, Repr::Sparse { .. })
    }

    /// Adds one observation. Non-finite values are refused upstream (validation); ignoring them here
    /// keeps a bug elsewhere from poisoning a whole bucket.
    pub fn add(&mut self, value: f64) {
        self.add_n(value, 1);
    }

    /// Adds `count` observations of `value` in constant time. The total count saturates at
    /// `u64::MAX` (observations beyond it are not added) instead of overflowing.
    pub fn add_n(&mut self, value: f64, count: u64) {
        let count = count.min(u64::MAX - self.count());
        if !value.is_finite() || count == 0 {
            return;
        }
        match &mut self.repr {
            Repr::Dense(inner) => inner.add_with_count(value, count),
            Repr::Sparse {
                values,
                count: total,
            } => {
                match values.binary_search_by(|(v, _)| v.total_cmp(&value)) {
                    Ok(i) => values[i].1 += count,
                    Err(i) => values.insert(i, (value, count)),
                }
                *total += count;
                if values.len() > SPARSE_MAX_VALUES {
                    self.compact_or_densify();
                }
            }
        }
    }

    /// Adds `(value, count)` pairs, as [`Sketch::add_n`] of each would (the same bins, so the same
    /// quantiles and count), in one pass: a sparse sketch merges the pairs into its sorted list at
    /// once and folds its bins at most once, instead of a binary search and an insert per pair.
    /// Pairs that are not in ascending order, or hold a non-finite value or a zero count, or would
    /// pass `u64::MAX` in total, go in one by one.
    pub fn add_sorted(&mut self, pairs: &[(f64, u64)]) {
        let total = pairs
            .iter()
            .try_fold(self.count(), |total, &(_, n)| total.checked_add(n));
        let in_order = pairs.iter().all(|&(v, n)| v.is_finite() && n > 0)
            && pairs.windows(2).all(|w| w[0].0 < w[1].0);
        match (&mut self.repr, total) {
            (Repr::Sparse { values, count }, Some(total)) if in_order && !pairs.is_empty() => {
                *values = merge_sorted(values, pairs);
                *count = total;
                if values.len() > SPARSE_MAX_VALUES {
                    self.compact_or_densify();
                }
            }
            _ => {
                for &(value, n) in pairs {
                    self.add_n(value, n);
                }
            }
        }
    }

    /// Past [`SPARSE_MAX_VALUES`] distinct values: first folds the values into their DDSketch bins
    /// (each at its bin's representative, the exact extremes kept in theirs), which changes no
    /// quantile — a gauge's readings usually fall into a few bins. Only when that does not free at
    /// least half of the list (so folding is not repeated every few inserts) does the sketch go dense.
    fn compact_or_densify(&mut self) {
        if let Repr::Sparse { values, .. } = &mut self.repr {
            let binned = binned(values);
            if binned.len() <= SPARSE_MAX_VALUES / 2 {
                *values = binned;
                return;
            }
        }
        self.densify();
    }

    /// Switches to the dense form: the same insertions into a DDSketch.
    fn densify(&mut self) {
        if let Repr::Sparse { values, .. } = &self.repr {
            self.repr = Repr::Dense(Box::new(dense_of(values)));
        }
    }

    /// Adds `other`'s bins. A merge whose total count would pass `u64::MAX` (only reachable with
    /// absurd wire counts) is skipped: the sketch stays as it was rather than overflowing.
    pub fn merge(&mut self, other: &Sketch) {
        if self.count().checked_add(other.count()).is_none() {
            tracing::warn!("sketch merge skipped: the total count would pass u64::MAX");
            return;
        }
        match (&mut self.repr, &other.repr) {
            (_, Repr::Sparse { count: 0, .. }) => {}
            (Repr::Sparse { count: 0, .. }, _) => *self = other.clone(),
            (
                Repr::Sparse { values, count },
                Repr::Sparse {
                    values: theirs,
                    count: their_count,
                },
            ) => {
                *values = merge_sorted(values, theirs);
                *count += *their_count;
                if values.len() > SPARSE_MAX_VALUES {
                    self.compact_or_densify();
                }
            }
            (Repr::Dense(inner), Repr::Sparse { values, .. }) => {
                for &(value, n) in values {
                    inner.add_with_count(value, n);
                }
            }
            (Repr::Sparse { .. }, Repr::Dense(_)) => {
                self.densify();
                self.merge(other);
            }
            (Repr::Dense(inner), Repr::Dense(theirs)) => {
                // Both sides come from `config()`, so the only error (config mismatch) cannot occur.
                let _ = inner.merge(theirs);
            }
        }
    }

    pub fn count(&self) -> u64 {
        match &self.repr {
            Repr::Sparse { count, .. } => *count,
            Repr::Dense(inner) => inner.count() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Value at quantile `q` (0..=1), within [`RELATIVE_ACCURACY`]; `None` when empty or `q` is out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        match &self.repr {
            Repr::Dense(inner) => inner.quantile(q).ok().flatten(),
            Repr::Sparse { values, count } => {
                if !(0.0..=1.0).contains(&q) || *count == 0 {
                    return None;
                }
                // As DDSketch: q=0 / q=1 are the exact extremes, else the bin at rank ⌊q(n−1)⌋.
                if q == 0.0 {
                    return values.first().map(|&(v, _)| v);
                }
                if q == 1.0 {
                    return values.last().map(|&(v, _)| v);
                }
                let rank = (q * (*count as f64 - 1.0)) as u64;
                let mut seen = 0u64;
                for &(value, n) in values {
                    seen += n;
                    if seen > rank {
                        return Some(representative(value));
                    }
                }
                values.last().map(|&(v, _)| representative(v))
            }
        }
    }

    /// p50, p95 and p99 in one call (one walk over a sparse sketch's values).
    pub fn p50_p95_p99(&self) -> [Option<f64>; 3] {
        const QS: [f64; 3] = [0.5, 0.95, 0.99];
        match &self.repr {
            Repr::Sparse { values, count } if *count > 0 => {
                let ranks = QS.map(|q| (q * (*count as f64 - 1.0)) as u64);
                let mut out = [None; 3];
                let mut next = 0;
                let mut seen = 0u64;
                for &(value, n) in values {
                    seen += n;
                    while next < 3 && seen > ranks[next] {
                        out[next] = Some(representative(value));
                        next += 1;
                    }
                    if next == 3 {
                        break;
                    }
                }
                out
            }
            _ => QS.map(|q| self.quantile(q)),
        }
    }

    /// DataDog's standard DDSketch binary encoding (varint-packed bins); interoperable and compact.
    /// The same bytes for the sparse and the dense form.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.repr {
            Repr::Dense(inner) => inner.to_java_bytes(),
            Repr::Sparse { values, count } => encode_sparse(values, *count),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch, SketchError> {
        if bytes.is_empty() {
            return Ok(Sketch::new());
        }
        if let Some(sparse) = decode_sparse(bytes) {
            return Ok(sparse);
        }
        // sketches-ddsketch 0.4.2 panics on some malformed encodings (bins whose keys span more than
        // the store can shift: an index out of bounds in `Store::shift_bins`, found by the
        // `stored_bucket_item` fuzz target). A damaged stored item must read as an error, not take
        // the process down, so a panic of the decoder is caught and reported as malformed.
        let decoded =
            std::panic::catch_unwind(|| DDSketch::from_java_bytes(bytes)).map_err(|_| {
                SketchError::Malformed(
                    "the sketch's bins are inconsistent (decoder panicked)".into(),
                )
            })?;
        let inner = decoded.map_err(|e| SketchError::Malformed(format!("{e:?}")))?;
        let mut sketch = DDSketch::new(config());
        sketch.merge(&inner).map_err(|e| {
            SketchError::Malformed(format!(
                "sketch was encoded with another configuration: {e:?}"
            ))
        })?;
        Ok(Sketch {
            repr: Repr::Dense(Box::new(sketch)),
        })
    }
}

/// A dense DDSketch with the sparse list's insertions.
fn dense_of(values: &[(f64, u64)]) -> DDSketch {
    let mut dense = DDSketch::new(config());
    for &(value, n) in values {
        dense.add_with_count(value, n);
    }
    dense
}

/// Sorted (value, count) pairs folded into their DDSketch bins, ascending: each bin at its
/// representative, except that the exact extremes stay in their bins' places (see [`keep_extremes`]).
fn binned(values: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let (Some(&(min, _)), Some(&(max, _))) = (values.first(), values.last()) else {
        return Vec::new();
    };
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(values.len());
    // Representatives rise with the values (bins are monotone), so equal ones are adjacent.
    for &(value, n) in values {
        let bin = representative(value);
        match out.last_mut() {
            Some((last, count)) if last.to_bits() == bin.to_bits() => *count += n,
            _ => out.push((bin, n)),
        }
    }
    keep_extremes(&mut out, Some(min), Some(max));
    out
}

/// Puts the exact `min` / `max` in place of the representatives of the first / last bins when they
/// lie in those bins: quantiles read the same bins, and q=0 / q=1 read the exact extremes as the
/// dense sketch does. One bin holding both is split in two entries (the same bin either way).
fn keep_extremes(values: &mut Vec<(f64, u64)>, min: Option<f64>, max: Option<f64>) {
    if let (Some(min), Some(first)) = (min, values.first_mut()) {
        if min.is_finite() && representative(min) == representative(first.0) {
            first.0 = min;
        }
    }
    if let (Some(max), Some(&(last, n))) = (max, values.last()) {
        if max.is_finite() && representative(max) == representative(last) && max != last {
            let at = values.len() - 1;
            if at > 0 {
                values[at].0 = max;
            } else if n > 1 {
                values[at].1 = n - 1;
                values.push((max, 1));
            }
        }
    }
}

/// Two sorted (value, count) lists merged into one, equal values' counts added.
fn merge_sorted(a: &[(f64, u64)], b: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.total_cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

// ---- the byte form of a sparse sketch ----
//
// DataDog's Java encoding (as `sketches-ddsketch` writes it: count, min, max, sum, the log index
// mapping, the zero count, then each sign's bins as index deltas and counts). The crate exposes no
// bins, so a sparse sketch is written and read here directly — byte for byte what the crate writes
// for the same insertions (a test pins that) — and everything else (more bins than the sparse form
// keeps, other bin encodings, another mapping) is left to the crate's own decoder.

const FLAG_INDEX_MAPPING_LOG: u8 = 0x02;
const FLAG_ZERO_COUNT: u8 = 0x04;
const FLAG_COUNT: u8 = 0xA0;
const FLAG_SUM: u8 = 0x84;
const FLAG_MIN: u8 = 0x88;
const FLAG_MAX: u8 = 0x8C;
/// Positive / negative store, bins as (index delta, count) pairs.
const FLAG_POSITIVE_BINS: u8 = 0x05;
const FLAG_NEGATIVE_BINS: u8 = 0x07;

fn put_unsigned_var_long(out: &mut Vec<u8>, mut value: u64) {
    let length = ((63 - value.leading_zeros() as i32) / 7).clamp(0, 8);
    for _ in 0..length {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_signed_var_long(out: &mut Vec<u8>, value: i64) {
    put_unsigned_var_long(out, ((value >> 63) ^ (value << 1)) as u64);
}

fn put_var_double(out: &mut Vec<u8>, value: f64) {
    let mut bits = f64::to_bits(value + 1.0)
        .wrapping_sub(f64::to_bits(1.0))
        .rotate_left(6);
    for _ in 0..8 {
        let next = (bits >> 57) as u8;
        bits <<= 7;
        if bits == 0 {
            out.push(next);
            return;
        }
        out.push(next | 0x80);
    }
    out.push((bits >> 56) as u8);
}

fn put_bins(out: &mut Vec<u8>, flag: u8, bins: &[(i32, u64)]) {
    if bins.is_empty() {
        return;
    }
    out.push(flag);
    put_unsigned_var_long(out, bins.len() as u64);
    let mut previous = 0i64;
    for &(index, count) in bins {
        put_signed_var_long(out, i64::from(index) - previous);
        put_var_double(out, count as f64);
        previous = i64::from(index);
    }
}

/// Adds `count` to the last bin if it has `key`, else appends a bin.
fn push_bin(bins: &mut Vec<(i32, u64)>, key: i32, count: u64) {
    match bins.last_mut() {
        Some((last, n)) if *last == key => *n += count,
        _ => bins.push((key, count)),
    }
}

/// What the crate's `to_java_bytes` gives for a dense sketch with `values` inserted in order.
fn encode_sparse(values: &[(f64, u64)], count: u64) -> Vec<u8> {
    let config = &*CONFIG;
    let mut out = Vec::with_capacity(32 + 4 * values.len());
    let mut sum = 0.0;
    let mut zero = 0u64;
    let mut positive: Vec<(i32, u64)> = Vec::new();
    let mut negative: Vec<(i32, u64)> = Vec::new();
    for &(value, n) in values {
        sum += value * (n as f64);
        if value > MIN_VALUE {
            push_bin(&mut positive, config.key(value), n);
        } else if value < -MIN_VALUE {
            push_bin(&mut negative, config.key(-value), n);
        } else {
            zero += n;
        }
    }
    // Ascending values are descending magnitudes on the negative side.
    negative.reverse();
    if count != 0 {
        out.push(FLAG_COUNT);
        put_var_double(&mut out, count as f64);
        let (min, max) = match (values.first(), values.last()) {
            (Some(first), Some(last)) => (first.0, last.0),
            _ => (f64::INFINITY, f64::NEG_INFINITY),
        };
        out.push(FLAG_MIN);
        out.extend_from_slice(&min.to_le_bytes());
        out.push(FLAG_MAX);
        out.extend_from_slice(&max.to_le_bytes());
    }
    if sum != 0.0 {
        out.push(FLAG_SUM);
        out.extend_from_slice(&sum.to_le_bytes());
    }
    out.push(FLAG_INDEX_MAPPING_LOG);
    out.extend_from_slice(&config.gamma.to_le_bytes());
    out.extend_from_slice(&0.0f64.to_le_bytes());
    if zero != 0 {
        out.push(FLAG_ZERO_COUNT);
        put_var_double(&mut out, zero as f64);
    }
    put_bins(&mut out, FLAG_POSITIVE_BINS, &positive);
    put_bins(&mut out, FLAG_NEGATIVE_BINS, &negative);
    out
}

/// A reader over the byte form; every read is `None` past the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn f64(&mut self) -> Option<f64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(f64::from_le_bytes(*head))
    }

    fn unsigned_var_long(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let next = self.byte()?;
            if next < 0x80 || shift == 56 {
                return Some(value | (u64::from(next) << shift));
            }
            value |= (u64::from(next) & 0x7F) << shift;
            shift += 7;
        }
    }

    fn signed_var_long(&mut self) -> Option<i64> {
        let encoded = self.unsigned_var_long()?;
        Some(((encoded >> 1) as i64) ^ -((encoded & 1) as i64))
    }

    fn var_double(&mut self) -> Option<f64> {
        let mut bits = 0u64;
        let mut shift = 57i32;
        loop {
            let next = self.byte()?;
            if shift == 1 {
                bits |= u64::from(next);
                break;
            }
            if next < 0x80 {
                bits |= u64::from(next) << shift;
                break;
            }
            bits |= (u64::from(next) & 0x7F) << shift;
            shift -= 7;
        }
        Some(f64::from_bits(bits.rotate_right(6).wrapping_add(f64::to_bits(1.0))) - 1.0)
    }

    /// A whole-number count, as the crate reads one (`as u64`), refusing what it would mangle.
    fn count(&mut self) -> Option<u64> {
        let value = self.var_double()?;
        (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64)
            .then_some(value as u64)
    }
}

/// The sparse sketch in `bytes`, when they are the byte form of one (see above); `None` sends them
/// to the crate's decoder.
fn decode_sparse(bytes: &[u8]) -> Option<Sketch> {
    let config = &*CONFIG;
    // A leading 0x02 may be a version prefix: the crate's decoder knows that rule.
    if bytes.first() == Some(&FLAG_INDEX_MAPPING_LOG) {
        return None;
    }
    let mut input = Reader(bytes);
    let (mut min, mut max) = (None, None);
    let mut mapped = false;
    let mut values: Vec<(f64, u64)> = Vec::new();
    while !input.0.is_empty() {
        match input.byte()? {
            FLAG_COUNT => {
                input.var_double()?;
            }
            FLAG_SUM => {
                input.f64()?;
            }
            FLAG_MIN => min = Some(input.f64()?),
            FLAG_MAX => max = Some(input.f64()?),
            FLAG_INDEX_MAPPING_LOG => {
                let gamma = input.f64()?;
                let offset = input.f64()?;
                if gamma.to_bits() != config.gamma.to_bits() || offset != 0.0 {
                    return None;
                }
                mapped = true;
            }
            FLAG_ZERO_COUNT => values.push((0.0, input.count()?)),
            flag @ (FLAG_POSITIVE_BINS | FLAG_NEGATIVE_BINS) => {
                let bins = input.unsigned_var_long()?;
                if bins > SPARSE_MAX_VALUES as u64 {
                    return None;
                }
                let sign = if flag == FLAG_POSITIVE_BINS {
                    1.0
                } else {
                    -1.0
                };
                let mut index = 0i64;
                for _ in 0..bins {
                    index = index.checked_add(input.signed_var_long()?)?;
                    let key = i32::try_from(index).ok()?;
                    values.push((sign * config.value(key), input.count()?));
                }
            }
            _ => return None,
        }
    }
    if !mapped {
        return None;
    }
    values.retain(|&(v, n)| n > 0 && v.is_finite());
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    values.dedup_by(|later, kept| {
        let same = later.0.to_bits() == kept.0.to_bits();
        if same {
            kept.1 = kept.1.saturating_add(later.1);
        }
        same
    });
    if values.len() > SPARSE_MAX_VALUES {
        return None;
    }
    let count = values
        .iter()
        .try_fold(0u64, |total, &(_, n)| total.checked_add(n))?;
    keep_extremes(&mut values, min, max);
    Some(Sketch {
        repr: Repr::Sparse { values, count },
    })
}

#[cfg(test)]
mod tests {

    /// Regression input of the second `stored_bucket_item` run (crash-135e812a…, fuzz/regressions/):
    /// the run aborted with "panic in a function that cannot unwind" after sketches-ddsketch
    /// panics on it (caught by `from_bytes`); outside libFuzzer the same calls neither panic
    /// nor abort. Kept so the input stays handled.
    #[test]
    fn bytes_of_the_second_fuzz_crash_are_handled_without_a_panic() {
        let crash: &[u8] = b"\x07\x07\xbc\xff\xff\xff\x6f\x2e\x64\x88\x00\x1a\x00\x00\x00\x00\x00\x00\x00\x04\xf7\xbc\xff\xff\xbf\x1d";
        if let Ok(sketch) = Sketch::from_bytes(crash) {
            let _ = sketch.quantile(0.99);
            let _ = Sketch::from_bytes(&sketch.to_bytes());
        }
    }

    /// Regression (fuzz target `stored_bucket_item`, crash-370be347…): these bytes made
    /// sketches-ddsketch's decoder index past its bins; they must decode to an error instead.
    #[test]
    fn bytes_that_panicked_the_ddsketch_decoder_are_refused_as_malformed() {
        let mut crash = vec![0x0f, 0xa0];
        crash.extend(std::iter::repeat_n(0xd1, 88));
        assert!(matches!(
            Sketch::from_bytes(&crash),
            Err(SketchError::Malformed(_))
        ));
    }

    use super::*;

    #[test]
    fn bytes_round_trip_keeps_quantiles_and_count() {
        let mut s = Sketch::new();
        for i in 1..=1000 {
            s.add(i as f64);
        }
        s.add(-5.0);
        s.add(0.0);
        let back = Sketch::from_bytes(&s.to_bytes()).expect("decodes");
        assert_eq!(back.count(), s.count());
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(back.quantile(q), s.quantile(q), "q={q}");
        }
    }

    #[test]
    fn counts_saturate_instead_of_overflowing() {
        let mut s = Sketch::new();
        s.add_n(2.0, u64::MAX - 1);
        s.add_n(3.0, 5);
        assert_eq!(s.count(), u64::MAX);
        let mut other = Sketch::new();
        other.add_n(4.0, 10);
        s.merge(&other);
        assert_eq!(s.count(), u64::MAX);
        assert!(s.quantile(0.5).is_some_and(f64::is_finite));
    }

    /// The dense DDSketch the previous version of this type always built, with the same insertions.
    fn reference(values: &[(f64, u64)]) -> DDSketch {
        let mut dense = DDSketch::new(config());
        for &(v, n) in values {
            dense.add_with_count(v, n);
        }
        dense
    }

    fn sketch_of(values: &[(f64, u64)]) -> Sketch {
        let mut s = Sketch::new();
        for &(v, n) in values {
            s.add_n(v, n);
        }
        s
    }

    const QS: [f64; 12] = [
        0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0,
    ];

    fn data_sets() -> Vec<Vec<(f64, u64)>> {
        vec![
            vec![(42.0, 1)],
            vec![
                (3.5, 10),
                (3.5, 5),
                (-2.0, 3),
                (0.0, 4),
                (1e-12, 2),
                (7.25, 1),
            ],
            // A gauge's minute: 60 readings around one level (few distinct bins, many values).
            (0..60)
                .map(|i| (100.0 + (i % 7) as f64 * 0.01, 1))
                .collect(),
            // More distinct values than the sparse form keeps: goes dense mid-way.
            (0..200)
                .map(|i| ((i * 37 % 101) as f64 * 1.5 - 20.0, 1 + i % 3))
                .collect(),
            // Wide but within the dense store's 2,048 bins (beyond them the dense store collapses its lowest bins
            // and the sparse form is the more accurate one).
            vec![(1e15, 2), (-1e15, 1), (5e-10, 7)],
        ]
    }

    #[test]
    fn sparse_and_dense_forms_report_the_dense_ddsketch_quantiles_and_count() {
        for data in data_sets() {
            let ours = sketch_of(&data);
            let dense = reference(&data);
            assert_eq!(ours.count(), dense.count() as u64, "{data:?}");
            for q in QS {
                assert_eq!(
                    ours.quantile(q),
                    dense.quantile(q).unwrap(),
                    "q={q} {data:?}"
                );
            }
            let [p50, p95, p99] = ours.p50_p95_p99();
            assert_eq!(
                [p50, p95, p99],
                [ours.quantile(0.5), ours.quantile(0.95), ours.quantile(0.99)]
            );
        }
        assert!(
            sketch_of(&data_sets()[2]).is_sparse(),
            "7 distinct values stay sparse"
        );
        assert!(
            !sketch_of(&data_sets()[3]).is_sparse(),
            "101 distinct values go dense"
        );
    }

    #[test]
    fn sorted_pairs_added_in_one_pass_equal_inserting_them_one_by_one() {
        for data in data_sets() {
            // Into an empty sketch, one already holding values, and a dense one; sorted runs of
            // the data (one pass) and the data as given (out of order: one by one).
            let mut sorted = data.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            sorted.dedup_by(|b, a| {
                let same = a.0 == b.0;
                if same {
                    a.1 += b.1;
                }
                same
            });
            for start in [vec![], vec![(3.0, 2), (7.5, 1)], data_sets()[3].clone()] {
                for pairs in [&sorted, &data] {
                    let mut ours = sketch_of(&start);
                    for run in pairs.chunks(17) {
                        ours.add_sorted(run);
                    }
                    let everything: Vec<(f64, u64)> =
                        start.iter().chain(pairs.iter()).copied().collect();
                    let dense = reference(&everything);
                    assert_eq!(ours.count(), dense.count() as u64, "{pairs:?}");
                    for q in QS {
                        assert_eq!(
                            ours.quantile(q),
                            dense.quantile(q).unwrap(),
                            "q={q} {pairs:?}"
                        );
                    }
                }
            }
        }
        // Counts still saturate rather than overflow.
        let mut full = Sketch::new();
        full.add_n(1.0, u64::MAX - 1);
        full.add_sorted(&[(2.0, 5), (3.0, 5)]);
        assert_eq!(full.count(), u64::MAX);
    }

    #[test]
    fn merging_any_mix_of_forms_equals_inserting_everything_into_one_dense_sketch() {
        let sets = data_sets();
        for a in &sets {
            for b in &sets {
                let mut merged = sketch_of(a);
                merged.merge(&sketch_of(b));
                let all: Vec<(f64, u64)> = a.iter().chain(b).copied().collect();
                let dense = reference(&all);
                assert_eq!(merged.count(), dense.count() as u64);
                for q in QS {
                    assert_eq!(merged.quantile(q), dense.quantile(q).unwrap(), "q={q}");
                }
                // And through the byte form, as a store reads it back.
                let back = Sketch::from_bytes(&merged.to_bytes()).expect("decodes");
                assert_eq!(back.count(), merged.count());
                for q in QS {
                    assert_eq!(back.quantile(q), merged.quantile(q), "bytes q={q}");
                }
            }
        }
    }

    #[test]
    fn bytes_written_by_the_previous_dense_only_sketch_read_back_the_same() {
        for data in data_sets() {
            // What the previous version stored: the crate's encoding of its dense sketch.
            let stored = reference(&data).to_java_bytes();
            let read = Sketch::from_bytes(&stored).expect("old bytes decode");
            let ours = sketch_of(&data);
            assert_eq!(read.count(), ours.count());
            for q in QS {
                assert_eq!(read.quantile(q), ours.quantile(q), "q={q}");
            }
            // The byte form is unchanged: the crate decodes what we write to the same sketch.
            let theirs = DDSketch::from_java_bytes(&ours.to_bytes()).expect("crate decodes ours");
            assert_eq!(theirs.count() as u64, ours.count());
            for q in QS {
                assert_eq!(theirs.quantile(q).unwrap(), ours.quantile(q), "q={q}");
            }
        }
    }

    #[test]
    fn a_sparse_sketch_writes_the_crates_bytes_and_reads_back_sparse() {
        for data in data_sets() {
            let ours = sketch_of(&data);
            let Repr::Sparse { values, .. } = &ours.repr else {
                assert!(data.len() > SPARSE_MAX_VALUES, "{data:?}");
                continue;
            };
            // Byte for byte what the crate writes for the same insertions.
            let bytes = ours.to_bytes();
            assert_eq!(bytes, dense_of(values).to_java_bytes(), "{data:?}");
            let back = Sketch::from_bytes(&bytes).expect("decodes");
            assert!(back.is_sparse(), "{data:?}");
            assert_eq!(back.count(), ours.count());
            for q in QS {
                assert_eq!(back.quantile(q), ours.quantile(q), "q={q} {data:?}");
            }
            // Read, written again and read: still the same sketch.
            let again = Sketch::from_bytes(&back.to_bytes()).expect("decodes");
            for q in QS {
                assert_eq!(again.quantile(q), ours.quantile(q), "q={q} {data:?}");
            }
        }
        let wide = sketch_of(&data_sets()[3]);
        assert!(!Sketch::from_bytes(&wide.to_bytes())
            .expect("decodes")
            .is_sparse());
        assert!(Sketch::from_bytes(&Sketch::new().to_bytes())
            .expect("decodes")
            .is_empty());
    }

    #[test]
    fn truncated_sparse_bytes_are_an_error_or_a_smaller_sketch_never_a_panic() {
        let bytes = sketch_of(&data_sets()[1]).to_bytes();
        for end in 0..bytes.len() {
            if let Ok(s) = Sketch::from_bytes(&bytes[..end]) {
                assert!(s.count() <= 25);
            }
        }
    }

    #[test]
    fn many_distinct_readings_in_few_bins_stay_sparse_with_the_dense_quantiles() {
        // 1,000 different readings of a gauge between 100 and 103: a couple of 2% bins.
        let data: Vec<(f64, u64)> = (0..1000).map(|i| (100.0 + i as f64 * 0.003, 1)).collect();
        let ours = sketch_of(&data);
        assert!(ours.is_sparse());
        let dense = reference(&data);
        assert_eq!(ours.count(), dense.count() as u64);
        for q in QS {
            assert_eq!(ours.quantile(q), dense.quantile(q).unwrap(), "q={q}");
        }
        let back = Sketch::from_bytes(&ours.to_bytes()).expect("decodes");
        for q in QS {
            assert_eq!(back.quantile(q), dense.quantile(q).unwrap(), "bytes q={q}");
        }
    }

    #[test]
    fn quantiles_of_the_sparse_form_are_within_the_relative_accuracy() {
        let data: Vec<(f64, u64)> = (1..=30).map(|i| (i as f64 * 3.3, i as u64)).collect();
        let s = sketch_of(&data);
        assert!(s.is_sparse());
        let mut exact: Vec<f64> = data
            .iter()
            .flat_map(|&(v, n)| std::iter::repeat_n(v, n as usize))
            .collect();
        exact.sort_by(f64::total_cmp);
        for q in [0.1, 0.5, 0.95, 0.99] {
            let truth = exact[(q * (exact.len() - 1) as f64) as usize];
            let got = s.quantile(q).expect("non-empty");
            assert!(
                (got - truth).abs() <= RELATIVE_ACCURACY * truth.abs() + 1e-12,
                "q={q}: {got} vs {truth}"
            );
        }
    }

    #[test]
    fn a_bin_edge_table_gives_the_logarithms_upper_edge_bit_for_bit() {
        let config = &*CONFIG;
        for (lo, hi) in [
            (0.5, 9000.0),
            (100.0, 250.0),
            (1e-6, 3e-6),
            (7.0, 7.0),
            (1e200, 5e201),
        ] {
            let table = BinEdges::new(lo, hi).expect("a positive range has a table");
            let mut values: Vec<f64> = (0..=2000)
                .map(|i| lo + (hi - lo) * f64::from(i) / 2000.0)
                .collect();
            // The edges themselves and their floating-point neighbours, where rounding decides.
            for k in config.key(lo)..=config.key(hi).saturating_add(1) {
                let edge = config.pow_gamma(k);
                values.extend([
                    edge,
                    f64::from_bits(edge.to_bits() + 1),
                    f64::from_bits(edge.to_bits() - 1),
                ]);
            }
            for value in values {
                assert_eq!(
                    table.upper_edge(value).to_bits(),
                    bin_upper_edge(value).to_bits(),
                    "{value} in ({lo}, {hi})"
                );
            }
        }
        // No table where it would not help: zero or negative ranges, very wide ones.
        assert!(BinEdges::new(0.0, 5.0).is_none());
        assert!(BinEdges::new(-5.0, -1.0).is_none());
        assert!(BinEdges::new(1e-6, 1e280).is_none());
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        assert!(Sketch::from_bytes(&[0xff, 0x13, 0x00, 0x99]).is_err());
    }
}
