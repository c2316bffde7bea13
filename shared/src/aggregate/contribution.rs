//! What one normalized point adds to a bucket.
//!
//! - Gauge: one observation of its value.
//! - Sum (a delta, see [`crate::aggregate::cumulative`]): one observation of the delta, so a bucket's
//!   `sum` is the increase within the bucket and its rate is `sum / bucket seconds`.
//! - Histogram (explicit bounds): `count`, `sum`, `min` and `max` are the point's own (exact). Only the
//!   sketch is approximate: each bucket's count is spread evenly over its range, as Prometheus's
//!   `histogram_quantile` interpolates ([`super::interpolate`]): the first bucket from `min` (else 0),
//!   the last up to `max` (else its lower bound), every range clipped to `[min, max]`, and `min` and
//!   `max` themselves placed as observations. **Error:** exactly linear interpolation within a bucket
//!   at the sketch's resolution (1%) for buckets up to ~1.9× wide; wider ones (and those starting at
//!   0) at 1/32 of their width; the rest is the interpolation's assumption that values are uniform
//!   within a bucket (`docs/quantiles.md` measures it against exact quantiles). When the point has no
//!   `min`/`max`/`sum` (e.g. a delta derived from a cumulative histogram, see `cumulative`), they are
//!   estimated from the spread values.
//! - Exponential histogram: bucket `i` (values in `(base^i, base^(i+1)]`, `base = 2^(2^-scale)`) goes in
//!   at its geometric midpoint `base^(i + 0.5)`, the zero bucket at 0, negative buckets mirrored.
//!   **Error:** relative, at most `√base − 1`: 0.14% at scale 8, 1.1% at scale 5, 4.4% at scale 3, 41%
//!   at scale 0 — plus the sketch's 1%. count/sum/min/max are again the point's own.
//! - Summary: `count` and `sum` only; the sketch stays empty (summary quantiles cannot be merged and
//!   arrive as separate gauge series).
//!
//! [`contribution`] expects normalized data: a cumulative point given here is taken at face value.

use crate::model::PointData;

use super::interpolate;
use super::stats::BucketStats;

/// The statistics one normalized point adds to each bucket it falls in.
pub fn contribution(data: &PointData) -> BucketStats {
    let mut stats = BucketStats::new();
    add_contribution(data, &mut stats);
    stats
}

/// Adds what [`contribution`] returns straight into `stats`, without building a sketch per point.
pub fn add_contribution(data: &PointData, stats: &mut BucketStats) {
    let mut placed = Vec::new();
    PointContribution::of(data, &mut placed).add_to(&placed, stats);
}

/// What one normalized point adds to each bucket it falls in, worked out once: a point feeds up to
/// three buckets (1m/5m/1h), and a histogram's representatives (an `exp2` pair per exponential
/// bucket) are placed here once instead of once per bucket. [`PointContribution::add_to`] gives
/// exactly what [`add_contribution`] gives (same sketch insertions in the same order, same
/// count/sum/min/max).
#[derive(Debug, Clone, PartialEq)]
pub enum PointContribution {
    /// A gauge value or a sum's delta: one observation.
    Value(f64),
    /// A histogram spread over its representatives.
    Spread(Spread),
    /// A summary: count and sum only.
    Summary { count: u64, sum: f64 },
}

/// A histogram point placed into `(value, count)` pairs, with the exact fields it adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// Where its pairs (finite value, non-zero count, in bucket order) are in the batch's list of
    /// placed pairs: one list for the batch, no allocation per point.
    placed: std::ops::Range<usize>,
    count: u64,
    /// The point's sum, else the sum of the placed pairs.
    sum: f64,
    /// The point's min/max, else the placed pairs' range.
    min: Option<f64>,
    max: Option<f64>,
}

impl PointContribution {
    /// Works out the contribution of `data`, appending a histogram's placed pairs to `placed`.
    pub fn of(data: &PointData, placed: &mut Vec<(f64, u64)>) -> PointContribution {
        match data {
            PointData::Gauge(value) | PointData::Sum { value, .. } => {
                PointContribution::Value(*value)
            }
            PointData::Histogram {
                count,
                sum,
                min,
                max,
                bounds,
                bucket_counts,
                ..
            } => {
                let start = placed.len();
                if *count > 0 {
                    interpolate::place_explicit(bounds, bucket_counts, *sum, *min, *max, placed);
                }
                PointContribution::Spread(Spread::of_placed(
                    *count, *sum, *min, *max, start, placed,
                ))
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
                // Only buckets with a count are placed (no `exp2` for empty ones).
                let positive = positive_counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(i, &n)| {
                        let index = i64::from(*positive_offset) + i as i64;
                        (clamp(exponential_midpoint(*scale, index)), n)
                    });
                let negative = negative_counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(i, &n)| {
                        let index = i64::from(*negative_offset) + i as i64;
                        (clamp(-exponential_midpoint(*scale, index)), n)
                    });
                let pairs = zero.chain(positive).chain(negative);
                PointContribution::Spread(Spread::new(*count, *sum, *min, *max, pairs, placed))
            }
            PointData::Summary { count, sum } => PointContribution::Summary {
                count: *count,
                sum: *sum,
            },
        }
    }

    /// Adds this contribution to `stats` (what [`add_contribution`] of the point adds); `placed` is
    /// the list [`PointContribution::of`] appended to.
    pub fn add_to(&self, placed: &[(f64, u64)], stats: &mut BucketStats) {
        match self {
            PointContribution::Value(value) => stats.observe(*value),
            PointContribution::Spread(spread) => spread.add_to(placed, stats),
            PointContribution::Summary { count, sum } => {
                if *count > 0 {
                    stats.count = stats.count.saturating_add(*count);
                    stats.add_to_sum(*sum);
                }
            }
        }
    }
}

impl Spread {
    /// Places `(value, count)` pairs, keeping the point's own count/sum/min/max and estimating those
    /// from the pairs only where the point lacks them.
    fn new(
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        pairs: impl Iterator<Item = (f64, u64)>,
        placed: &mut Vec<(f64, u64)>,
    ) -> Spread {
        let start = placed.len();
        if count > 0 {
            placed.extend(pairs.filter(|&(value, n)| n > 0 && value.is_finite()));
        }
        Spread::of_placed(count, sum, min, max, start, placed)
    }

    /// The spread of the pairs `placed[start..]` (finite values, non-zero counts), estimating the
    /// fields the point lacks from them.
    fn of_placed(
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        start: usize,
        placed: &mut Vec<(f64, u64)>,
    ) -> Spread {
        if count == 0 {
            placed.truncate(start);
            return Spread {
                placed: start..start,
                count: 0,
                sum: 0.0,
                min: None,
                max: None,
            };
        }
        let mut placed_sum = 0.0;
        let mut placed_min: Option<f64> = None;
        let mut placed_max: Option<f64> = None;
        for &(value, n) in placed.get(start..).unwrap_or_default() {
            // Placed values lie within the point's values (≤ 1e280 after validation), so this
            // stays finite; `add_to_sum` would saturate anyway.
            placed_sum += value * n as f64;
            placed_min = Some(placed_min.map_or(value, |m| m.min(value)));
            placed_max = Some(placed_max.map_or(value, |m| m.max(value)));
        }
        Spread {
            placed: start..placed.len(),
            count,
            sum: sum.unwrap_or(placed_sum),
            min: min.or(placed_min),
            max: max.or(placed_max),
        }
    }

    fn add_to(&self, placed: &[(f64, u64)], stats: &mut BucketStats) {
        if self.count == 0 {
            return;
        }
        // A point's pairs are in ascending order (explicit buckets): one sorted merge.
        stats
            .sketch
            .add_sorted(placed.get(self.placed.clone()).unwrap_or_default());
        // Counts come from the wire: saturate rather than overflow on absurd input.
        stats.count = stats.count.saturating_add(self.count);
        stats.add_to_sum(self.sum);
        stats.extend_range(self.min, self.max);
    }
}

/// How many `(value, count)` pairs [`PointContribution::of`] places for `data` at most: a capacity
/// hint for a batch's list of placed pairs, so that it is not regrown (and copied) while filled.
pub fn most_placed(data: &PointData) -> usize {
    match data {
        PointData::Histogram { bucket_counts, .. } => interpolate::most_pieces(bucket_counts),
        PointData::ExponentialHistogram {
            positive_counts,
            negative_counts,
            ..
        } => 1 + positive_counts.len() + negative_counts.len(),
        PointData::Gauge(_) | PointData::Sum { .. } | PointData::Summary { .. } => 0,
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

fn clamp_to(value: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    match (min, max) {
        (Some(lo), Some(hi)) if lo <= hi => value.clamp(lo, hi),
        _ => value,
    }
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
    fn histogram_without_min_max_sum_estimates_them_from_the_spread_values() {
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
        // The two values of (0, 10] spread evenly: at 2.5 and 7.5.
        assert_eq!(stats.min, Some(2.5));
        // The open-ended last bucket sits at its lower bound when max is unknown.
        assert_eq!(stats.max, Some(20.0));
        assert_eq!(stats.sum, 30.0);
    }

    fn same_stats(a: &BucketStats, b: &BucketStats) {
        assert_eq!(a.count, b.count);
        assert_eq!(a.sum, b.sum);
        assert_eq!(a.min, b.min);
        assert_eq!(a.max, b.max);
        assert_eq!(a.sketch.to_bytes(), b.sketch.to_bytes());
    }

    #[test]
    fn contributions_worked_out_once_per_batch_add_each_points_own_statistics_to_every_bucket() {
        let points = [
            PointData::Histogram {
                temporality: Temporality::Delta,
                count: 7,
                sum: Some(120.0),
                min: Some(1.0),
                max: Some(90.0),
                bounds: vec![5.0, 10.0, 50.0],
                bucket_counts: vec![1, 0, 4, 2],
            },
            PointData::Gauge(2.5),
            PointData::ExponentialHistogram {
                temporality: Temporality::Delta,
                count: 9,
                sum: None,
                min: None,
                max: None,
                scale: 3,
                zero_count: 1,
                positive_offset: -2,
                positive_counts: vec![3, 0, 2],
                negative_offset: 1,
                negative_counts: vec![0, 3],
            },
            PointData::Summary {
                count: 4,
                sum: 10.0,
            },
            PointData::Histogram {
                temporality: Temporality::Delta,
                count: 0,
                sum: None,
                min: None,
                max: None,
                bounds: vec![1.0],
                bucket_counts: vec![0, 0],
            },
        ];
        // One list of placed pairs for the whole batch, as the aggregator keeps it.
        let mut placed = Vec::new();
        let worked_out: Vec<PointContribution> = points
            .iter()
            .map(|p| PointContribution::of(p, &mut placed))
            .collect();
        for (point, contribution) in points.iter().zip(&worked_out) {
            let expected = super::contribution(point);
            // A point feeds up to three buckets (1m/5m/1h): each gets the same statistics.
            for _bucket in 0..3 {
                let mut stats = BucketStats::new();
                contribution.add_to(&placed, &mut stats);
                same_stats(&stats, &expected);
            }
        }
        // Added into a bucket that already holds values, it merges like the point's own stats.
        let mut merged = BucketStats::new();
        merged.observe(3.0);
        worked_out[0].add_to(&placed, &mut merged);
        let mut expected = BucketStats::new();
        expected.observe(3.0);
        expected.merge(&super::contribution(&points[0]));
        assert_eq!(merged.count, expected.count);
        assert_eq!(merged.sum, expected.sum);
        assert_eq!((merged.min, merged.max), (expected.min, expected.max));
        assert_eq!(merged.sketch.count(), expected.sketch.count());
    }
}
