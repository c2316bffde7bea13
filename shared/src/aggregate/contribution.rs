//! What one normalized point adds to a bucket.
//!
//! - Gauge: one observation of its value.
//! - Sum (a delta, see [`crate::aggregate::cumulative`]): one observation of the delta, so a bucket's
//!   `sum` is the increase within the bucket and its rate is `sum / bucket seconds`.
//! - Histogram (explicit bounds): `count`, `sum`, `min` and `max` are the point's own (exact). Only the
//!   sketch is approximate: each bucket's count goes in at one representative value — the midpoint of
//!   its finite bounds; the open-ended first bucket at `min` (else its upper bound) and the last at
//!   `max` (else its lower bound); every representative clamped into `[min, max]` when both are known.
//!   **Error:** a value in `(lo, hi]` is represented with an absolute error of at most `(hi − lo) / 2`,
//!   so a quantile is off by at most half the width of the bucket that holds it (plus the sketch's 1%
//!   relative error); in the open-ended buckets it is bounded only by `min`/`max`. With the SDK
//!   default bounds (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, …) a p99 of 180 ms may read 175 ms.
//!   When the point has no `min`/`max`/`sum` (e.g. a delta derived from a cumulative histogram, see
//!   `cumulative`), they are estimated from the representatives, with the same error.
//! - Exponential histogram: bucket `i` (values in `(base^i, base^(i+1)]`, `base = 2^(2^-scale)`) goes in
//!   at its geometric midpoint `base^(i + 0.5)`, the zero bucket at 0, negative buckets mirrored.
//!   **Error:** relative, at most `√base − 1`: 0.14% at scale 8, 1.1% at scale 5, 4.4% at scale 3, 41%
//!   at scale 0 — plus the sketch's 1%. count/sum/min/max are again the point's own.
//! - Summary: `count` and `sum` only; the sketch stays empty (summary quantiles cannot be merged and
//!   arrive as separate gauge series).
//!
//! [`contribution`] expects normalized data: a cumulative point given here is taken at face value.

use crate::model::PointData;

use super::stats::BucketStats;

/// The statistics one normalized point adds to each bucket it falls in.
pub fn contribution(data: &PointData) -> BucketStats {
    let mut stats = BucketStats::new();
    add_contribution(data, &mut stats);
    stats
}

/// Adds what [`contribution`] returns straight into `stats`, without building a sketch per point.
pub fn add_contribution(data: &PointData, stats: &mut BucketStats) {
    match data {
        PointData::Gauge(value) | PointData::Sum { value, .. } => stats.observe(*value),
        PointData::Histogram {
            count,
            sum,
            min,
            max,
            bounds,
            bucket_counts,
            ..
        } => {
            let placed = bucket_counts.iter().enumerate().map(|(i, &n)| {
                (
                    explicit_representative(i, bounds, *min, *max, *sum, *count),
                    n,
                )
            });
            add_buckets(stats, *count, *sum, *min, *max, placed);
        }
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
        } => {
            let clamp = |v: f64| clamp_to(v, *min, *max);
            let zero = std::iter::once((clamp(0.0), *zero_count));
            let positive = positive_counts.iter().enumerate().map(|(i, &n)| {
                let index = i64::from(*positive_offset) + i as i64;
                (clamp(exponential_midpoint(*scale, index)), n)
            });
            let negative = negative_counts.iter().enumerate().map(|(i, &n)| {
                let index = i64::from(*negative_offset) + i as i64;
                (clamp(-exponential_midpoint(*scale, index)), n)
            });
            let placed = zero.chain(positive).chain(negative);
            add_buckets(stats, *count, *sum, *min, *max, placed);
        }
        PointData::Summary { count, sum } => {
            if *count > 0 {
                stats.count = stats.count.saturating_add(*count);
                stats.add_to_sum(*sum);
            }
        }
    }
}

/// Whether the normalized point adds nothing to a bucket (an empty delta), so no write is needed.
pub fn adds_nothing(data: &PointData) -> bool {
    match data {
        PointData::Gauge(value) | PointData::Sum { value, .. } => !value.is_finite(),
        PointData::Histogram { count, .. }
        | PointData::ExponentialHistogram { count, .. }
        | PointData::Summary { count, .. } => *count == 0,
    }
}

/// `base^(index + 0.5)` with `base = 2^(2^-scale)`: the geometric middle of bucket `index`.
pub fn exponential_midpoint(scale: i32, index: i64) -> f64 {
    ((index as f64 + 0.5) * (-f64::from(scale)).exp2()).exp2()
}

/// Where the values counted in bucket `i` of an explicit-bounds histogram are assumed to be.
fn explicit_representative(
    i: usize,
    bounds: &[f64],
    min: Option<f64>,
    max: Option<f64>,
    sum: Option<f64>,
    count: u64,
) -> f64 {
    let lower = i.checked_sub(1).and_then(|j| bounds.get(j)).copied();
    let upper = bounds.get(i).copied();
    let value = match (lower, upper) {
        (Some(lo), Some(hi)) => lo + (hi - lo) / 2.0,
        (None, Some(hi)) => min.filter(|m| *m <= hi).unwrap_or(hi),
        (Some(lo), None) => max.filter(|m| *m > lo).unwrap_or(lo),
        // No bounds: one bucket holding everything, best represented by the mean.
        (None, None) => match sum {
            Some(s) if count > 0 => s / count as f64,
            _ => min.or(max).unwrap_or(0.0),
        },
    };
    clamp_to(value, min, max)
}

fn clamp_to(value: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    match (min, max) {
        (Some(lo), Some(hi)) if lo <= hi => value.clamp(lo, hi),
        _ => value,
    }
}

/// Adds `(value, count)` pairs to the sketch, and the point's own count/sum/min/max to the exact
/// fields, estimating those from the pairs only where the point lacks them.
fn add_buckets(
    stats: &mut BucketStats,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    placed: impl Iterator<Item = (f64, u64)>,
) {
    if count == 0 {
        return;
    }
    let mut placed_sum = 0.0;
    let mut placed_min: Option<f64> = None;
    let mut placed_max: Option<f64> = None;
    for (value, n) in placed {
        if n == 0 || !value.is_finite() {
            continue;
        }
        stats.sketch.add_n(value, n);
        // Representatives lie within the point's values (≤ 1e280 after validation), so this stays
        // finite; `add_to_sum` would saturate anyway.
        placed_sum += value * n as f64;
        placed_min = Some(placed_min.map_or(value, |m| m.min(value)));
        placed_max = Some(placed_max.map_or(value, |m| m.max(value)));
    }
    // Counts come from the wire: saturate rather than overflow on absurd input.
    stats.count = stats.count.saturating_add(count);
    stats.add_to_sum(sum.unwrap_or(placed_sum));
    stats.extend_range(min.or(placed_min), max.or(placed_max));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Temporality;

    #[test]
    fn exponential_midpoint_is_the_geometric_middle_of_the_bucket() {
        // Scale 0: bucket 3 is (8, 16]; its geometric middle is 8·√2.
        assert!((exponential_midpoint(0, 3) - 8.0 * 2f64.sqrt()).abs() < 1e-9);
        // Scale 1: base √2, bucket -2 is (0.5, 0.707…].
        let mid = exponential_midpoint(1, -2);
        assert!(mid > 0.5 && mid < 0.5f64.sqrt());
    }

    #[test]
    fn histogram_without_min_max_sum_estimates_them_from_bucket_representatives() {
        let stats = contribution(&PointData::Histogram {
            temporality: Temporality::Delta,
            count: 3,
            sum: None,
            min: None,
            max: None,
            bounds: vec![0.0, 10.0, 20.0],
            bucket_counts: vec![0, 2, 0, 1],
        });
        assert_eq!(stats.count, 3);
        assert_eq!(stats.min, Some(5.0));
        // The open-ended last bucket sits at its lower bound when max is unknown.
        assert_eq!(stats.max, Some(20.0));
        assert_eq!(stats.sum, 30.0);
    }
}
