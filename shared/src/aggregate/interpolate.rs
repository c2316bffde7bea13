//! Explicit-bounds histogram buckets spread over their ranges, as Prometheus's `histogram_quantile`
//! interpolates: a bucket's `n` values are taken to be evenly spread over `[lower, upper]` — the
//! k-th at `lower + (k − ½)·(upper − lower)/n` — and go into the sketch bin by bin, without inserting
//! them one by one (see `docs/quantiles.md` for the error this leaves).
//!
//! - **Ranges.** A bucket between two bounds spreads over them. The first bucket (`≤ b₀`) starts at the
//!   point's `min` when known, else at 0 (when `b₀ > 0`; else it is the bound itself); the last
//!   (`> bₙ`) ends at the point's `max` when known, else it is its lower bound (as in Prometheus). Every
//!   range is clipped to `[min, max]` when they are known. A histogram without bounds spreads over
//!   `[min, max]`, else sits at its mean.
//! - **Extremes.** The point's `min` and `max` are observations: they go in as themselves (one count
//!   each, from the lowest and highest non-empty buckets), so q=0 and q=1 read them exactly.
//! - **Bins.** Walking up the range, each step takes every value up to the end of the current sketch
//!   bin ([`bin_upper_edge`]) and places their count at their centroid, which lies in that bin: the
//!   result is exactly what inserting the `n` values one by one would give, at the sketch's
//!   resolution. Work per bucket is bounded by the steps, not by `n`: a step also runs at least to
//!   the next of [`MAX_PIECES_PER_BUCKET`] equal slices of the range, so a bucket spanning more bins
//!   than that (a ratio `upper/lower` above ~1.9, or a bucket starting at 0) is spread at slice
//!   resolution instead — each slice's values at their centroid, off by at most half a slice,
//!   `(upper − lower)/64`. A point shares [`MAX_PIECES_PER_POINT`] steps among its non-empty buckets
//!   (at least one each), so one histogram point places at most `max(256, buckets) + 2` pairs.

use std::cell::RefCell;
use std::rc::Rc;

use crate::sketch::{bin_upper_edge, BinEdges};

use super::FastMap;

/// Most (value, count) pairs one bucket is spread into.
pub const MAX_PIECES_PER_BUCKET: u64 = 32;
/// Most pairs one histogram point's buckets are spread into together (each non-empty bucket gets at
/// least one; the point's min and max add one each).
pub const MAX_PIECES_PER_POINT: u64 = 256;

/// Pairs each non-empty bucket of a point with `nonempty` non-empty buckets may be spread into.
fn pieces_per_bucket(nonempty: u64) -> u64 {
    (MAX_PIECES_PER_POINT / nonempty.max(1)).clamp(1, MAX_PIECES_PER_BUCKET)
}

/// How many pairs [`place_explicit`] pushes for these bucket counts at most (a capacity hint).
pub fn most_pieces(bucket_counts: &[u64]) -> usize {
    let nonempty = bucket_counts.iter().filter(|&&n| n > 0).count() as u64;
    let per_bucket = pieces_per_bucket(nonempty);
    let spread: u64 = bucket_counts.iter().map(|&n| n.min(per_bucket)).sum();
    usize::try_from(spread.saturating_add(2)).unwrap_or(usize::MAX)
}

/// Spreads an explicit-bounds histogram point's buckets (see the module docs), pushing finite
/// `(value, count)` pairs with non-zero counts onto `out`, in ascending order of value.
pub fn place_explicit(
    bounds: &[f64],
    bucket_counts: &[u64],
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    out: &mut Vec<(f64, u64)>,
) {
    let min = min.filter(|v| v.is_finite());
    let max = max.filter(|v| v.is_finite());
    let (min, max) = match (min, max) {
        (Some(lo), Some(hi)) if lo > hi => (None, None), // contradictory: trust neither
        other => other,
    };
    let count = bucket_counts
        .iter()
        .fold(0u64, |total, &n| total.saturating_add(n));
    let nonempty = bucket_counts.iter().filter(|&&n| n > 0).count() as u64;
    let (Some(first), Some(last)) = (
        bucket_counts.iter().position(|&n| n > 0),
        bucket_counts.iter().rposition(|&n| n > 0),
    ) else {
        return;
    };
    let pieces = pieces_per_bucket(nonempty);
    for (i, &n) in bucket_counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let (lower, upper) = bucket_range(i, bounds, min, max, sum, count);
        let mut n = n;
        if let (true, Some(min)) = (i == first, min) {
            out.push((min, 1));
            n -= 1;
        }
        let top = match (i == last, max) {
            (true, Some(max)) if n > 0 => {
                n -= 1;
                Some(max)
            }
            _ => None,
        };
        spread(lower, upper, n, pieces, out);
        if let Some(max) = top {
            out.push((max, 1));
        }
    }
}

/// The range `[lower, upper]` the values counted in bucket `i` are assumed to be spread over.
pub fn bucket_range(
    i: usize,
    bounds: &[f64],
    min: Option<f64>,
    max: Option<f64>,
    sum: Option<f64>,
    count: u64,
) -> (f64, f64) {
    let lower = i.checked_sub(1).and_then(|j| bounds.get(j)).copied();
    let upper = bounds.get(i).copied();
    let (mut lo, mut hi) = match (lower, upper) {
        (Some(lo), Some(hi)) => (lo, hi),
        (None, Some(hi)) => {
            let from = min
                .filter(|m| *m <= hi)
                .unwrap_or(if hi > 0.0 { 0.0 } else { hi });
            (from, hi)
        }
        (Some(lo), None) => (lo, max.filter(|m| *m > lo).unwrap_or(lo)),
        // No bounds: one bucket holding everything.
        (None, None) => match (min, max, sum) {
            (Some(lo), Some(hi), _) => (lo, hi),
            (_, _, Some(s)) if count > 0 && s.is_finite() => {
                let mean = s / count as f64;
                (mean, mean)
            }
            _ => {
                let at = min.or(max).unwrap_or(0.0);
                (at, at)
            }
        },
    };
    if let Some(min) = min {
        lo = lo.max(min);
        hi = hi.max(min);
    }
    if let Some(max) = max {
        lo = lo.min(max);
        hi = hi.min(max);
    }
    if hi.is_nan() || lo > hi {
        // Bounds out of order (refused at decode) or NaN: a point mass at the lower edge.
        hi = lo;
    }
    (lo, hi)
}

/// Most bucket ranges whose bin edges [`edges_of`] keeps per thread (emptied when full).
const EDGE_TABLES: usize = 1024;

/// Bin-edge tables by bucket range (`lo`, `hi` bit patterns); `None` for a range without one.
type EdgeTables = FastMap<(u64, u64), Option<Rc<BinEdges>>>;

thread_local! {
    /// Bin-edge tables by bucket range (`lo`, `hi` bit patterns): a histogram's layout repeats in
    /// every point of the series, so each range's edges are worked out once, not a logarithm and an
    /// exponential per spread step.
    static EDGES: RefCell<EdgeTables> = RefCell::new(FastMap::default());
}

/// The bin-edge table of `[lo, hi]` (`None`: the range has none, see [`BinEdges::new`]).
fn edges_of(lo: f64, hi: f64) -> Option<Rc<BinEdges>> {
    EDGES.with(|tables| {
        let mut tables = tables.borrow_mut();
        let key = (lo.to_bits(), hi.to_bits());
        if let Some(table) = tables.get(&key) {
            return table.clone();
        }
        if tables.len() >= EDGE_TABLES {
            tables.clear();
        }
        let table = BinEdges::new(lo, hi).map(Rc::new);
        tables.insert(key, table.clone());
        table
    })
}

/// Spreads `n` values evenly over `[lo, hi]` into at most `pieces` pairs, one per sketch bin
/// (or per slice of the range where bins are finer than `pieces` slices), each at the centroid of
/// the values it holds.
pub fn spread(lo: f64, hi: f64, n: u64, pieces: u64, out: &mut Vec<(f64, u64)>) {
    if n == 0 || !lo.is_finite() || !hi.is_finite() {
        return;
    }
    let width = hi - lo;
    if n == 1 || width <= 0.0 || !width.is_finite() {
        out.push((lo + width.max(0.0) / 2.0, n));
        return;
    }
    let total = n as f64;
    let slice = width / pieces.max(1) as f64;
    let mut done = 0u64;
    let mut steps = 0u64;
    // More than two steps: the range's bin edges from its table (the same edges, see
    // [`BinEdges`]) instead of a logarithm and an exponential per step.
    let edges = if n > 2 { edges_of(lo, hi) } else { None };
    while done < n {
        // Offset from `lo` of the next value not yet placed.
        let offset = (done as f64 + 0.5) * width / total;
        let slice_end = ((offset / slice).floor() + 1.0) * slice;
        let edge = match &edges {
            Some(edges) => edges.upper_edge(lo + offset),
            None => bin_upper_edge(lo + offset),
        };
        let step_end = (edge - lo).max(slice_end);
        steps += 1;
        let next = if step_end >= width || steps >= pieces {
            // The last step (the `pieces`-th at most: should rounding ever stall the walk, the
            // rest goes in one piece).
            n
        } else {
            // Values at offsets ≤ step_end: k ≤ step_end·n/width + ½. `as` saturates.
            ((step_end / width * total + 0.5).floor() as u64).clamp(done + 1, n)
        };
        let centroid = lo + (done as f64 + next as f64) / 2.0 * width / total;
        out.push((centroid.clamp(lo, hi), next - done));
        done = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::Sketch;

    /// Inserting every value one by one: what the spread stands for.
    fn one_by_one(lo: f64, hi: f64, n: u64) -> Sketch {
        let mut sketch = Sketch::new();
        for k in 1..=n {
            sketch.add(lo + (k as f64 - 0.5) * (hi - lo) / n as f64);
        }
        sketch
    }

    #[test]
    fn a_bucket_spanning_few_bins_is_spread_exactly_at_the_sketch_resolution() {
        // (250, 500] spans ~35 bins of 2%; 1,000 values: per bin the same counts as one by one.
        for (lo, hi, n) in [(250.0, 500.0, 1000), (10.0, 12.0, 7), (100.0, 150.0, 3)] {
            let mut pairs = Vec::new();
            spread(lo, hi, n, 64, &mut pairs);
            assert_eq!(pairs.iter().map(|p| p.1).sum::<u64>(), n);
            assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "{pairs:?}");
            let mut ours = Sketch::new();
            for &(v, c) in &pairs {
                ours.add_n(v, c);
            }
            let reference = one_by_one(lo, hi, n);
            for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99] {
                assert_eq!(
                    ours.quantile(q),
                    reference.quantile(q),
                    "q={q} ({lo}, {hi}]"
                );
            }
        }
    }

    #[test]
    fn work_per_bucket_is_bounded_whatever_the_count() {
        let mut pairs = Vec::new();
        spread(0.0, 1e280, u64::MAX, 32, &mut pairs);
        assert!(pairs.len() <= 32, "{}", pairs.len());
        assert_eq!(
            pairs.iter().fold(0u64, |t, p| t.saturating_add(p.1)),
            u64::MAX
        );
        // A wide bucket at slice resolution: its median within half a slice (width/64).
        let mut pairs = Vec::new();
        spread(0.0, 5.0, 10_000, 32, &mut pairs);
        assert!(pairs.len() <= 32);
        let mut sketch = Sketch::new();
        for &(v, c) in &pairs {
            sketch.add_n(v, c);
        }
        let median = sketch.quantile(0.5).unwrap();
        assert!((median - 2.5).abs() <= 5.0 / 64.0 + 0.01 * 2.5, "{median}");
    }

    #[test]
    fn a_point_places_at_most_max_256_buckets_plus_its_extremes_whatever_its_counts() {
        for buckets in [1usize, 8, 16, 100, 1000] {
            let bounds: Vec<f64> = (1..buckets).map(|i| i as f64 * 10.0).collect();
            let counts = vec![u64::MAX / buckets as u64; buckets];
            let mut pairs = Vec::new();
            place_explicit(&bounds, &counts, None, Some(0.5), Some(1e6), &mut pairs);
            let most = (MAX_PIECES_PER_POINT as usize).max(buckets) + 2;
            assert!(
                pairs.len() <= most,
                "{buckets} buckets: {} pairs",
                pairs.len()
            );
            assert!(
                pairs.len() <= most_pieces(&counts),
                "the capacity hint covers them"
            );
            let total = pairs.iter().fold(0u64, |t, p| t.saturating_add(p.1));
            assert_eq!(total, counts.iter().sum::<u64>(), "every count placed");
        }
    }

    #[test]
    fn negative_and_zero_crossing_ranges_keep_their_counts_in_order() {
        let mut pairs = Vec::new();
        spread(-10.0, 10.0, 101, 32, &mut pairs);
        assert_eq!(pairs.iter().map(|p| p.1).sum::<u64>(), 101);
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "{pairs:?}");
        assert!(pairs.iter().all(|p| (-10.0..=10.0).contains(&p.0)));
    }

    #[test]
    fn the_points_min_and_max_are_placed_as_themselves() {
        let mut pairs = Vec::new();
        // 2 in (0, 10], 3 in (10, 100], 2 above 100; min 4, max 400.
        place_explicit(
            &[10.0, 100.0],
            &[2, 3, 2],
            None,
            Some(4.0),
            Some(400.0),
            &mut pairs,
        );
        assert_eq!(pairs.iter().map(|p| p.1).sum::<u64>(), 7);
        assert_eq!(pairs.first(), Some(&(4.0, 1)));
        assert_eq!(pairs.last(), Some(&(400.0, 1)));
        // The other value of the first bucket spreads over [4, 10], the other of the last over (100, 400].
        assert_eq!(pairs[1], (7.0, 1));
        assert_eq!(pairs[5], (250.0, 1));
        assert!(pairs.windows(2).all(|w| w[0].0 <= w[1].0), "{pairs:?}");
        assert!(most_pieces(&[2, 3, 2]) >= pairs.len());
    }

    #[test]
    fn open_ended_buckets_without_min_or_max_start_at_zero_and_stop_at_their_bound() {
        assert_eq!(
            bucket_range(0, &[5.0, 10.0], None, None, None, 4),
            (0.0, 5.0)
        );
        assert_eq!(
            bucket_range(0, &[-5.0, 10.0], None, None, None, 4),
            (-5.0, -5.0)
        );
        assert_eq!(
            bucket_range(2, &[5.0, 10.0], None, None, None, 4),
            (10.0, 10.0)
        );
        assert_eq!(
            bucket_range(2, &[5.0, 10.0], None, Some(30.0), None, 4),
            (10.0, 30.0)
        );
        // Clipped to [min, max].
        assert_eq!(
            bucket_range(1, &[5.0, 10.0], Some(6.0), Some(8.0), None, 4),
            (6.0, 8.0)
        );
        // No bounds: [min, max], else the mean.
        assert_eq!(
            bucket_range(0, &[], Some(1.0), Some(3.0), None, 4),
            (1.0, 3.0)
        );
        assert_eq!(bucket_range(0, &[], None, None, Some(8.0), 4), (2.0, 2.0));
    }
}
