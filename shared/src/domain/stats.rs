//! The statistics one bucket holds: exact count/sum/min/max beside a quantile sketch.
//!
//! **Always finite.** The receiver refuses values beyond `otlp::MAX_ABS_VALUE` (1e280), so sums of
//! up to 2^64 observations stay far below `f64::MAX`. As defence in depth, every addition here
//! *saturates*: a sum that would overflow stays at ±`f64::MAX`, an infinite input counts as
//! ±`f64::MAX` and a NaN input adds nothing. So no merge, rollup or redelivery can make a bucket
//! unreadable. Reading goes through [`BucketStats::finite_sum`] / [`BucketStats::finite_min`] /
//! [`BucketStats::finite_max`], which apply the same rule to buckets stored before this rule existed.

use crate::sketch::Sketch;

/// Statistics of one bucket (or one contribution to it). count, sum, min and max are exact and merge
/// exactly; quantiles come from the sketch within its relative accuracy.
#[derive(Debug, Clone, Default)]
pub struct BucketStats {
    pub count: u64,
    pub sum: f64,
    /// `None` while empty.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub sketch: Sketch,
}

impl BucketStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one observation.
    pub fn observe(&mut self, value: f64) {
        self.observe_n(value, 1);
    }

    /// Records `count` observations of `value`.
    pub fn observe_n(&mut self, value: f64, count: u64) {
        if count == 0 || !value.is_finite() {
            return;
        }
        self.count = self.count.saturating_add(count);
        self.sum = saturating_add(self.sum, value * count as f64);
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
        self.sketch.add_n(value, count);
    }

    /// Adds `value` to the sum, saturating (see the module documentation).
    pub fn add_to_sum(&mut self, value: f64) {
        self.sum = saturating_add(self.sum, value);
    }

    /// Lowers `min` / raises `max` to include `low` / `high` (non-finite ones are clamped or ignored).
    pub fn extend_range(&mut self, low: Option<f64>, high: Option<f64>) {
        if let Some(low) = low.and_then(finite_or_clamped) {
            self.min = Some(self.min.map_or(low, |m| m.min(low)));
        }
        if let Some(high) = high.and_then(finite_or_clamped) {
            self.max = Some(self.max.map_or(high, |m| m.max(high)));
        }
    }

    /// Folds `other` into `self`. Commutative and associative for count/min/max and the sketch; the
    /// sum is as associative as floating-point addition allows, and never leaves the finite range.
    pub fn merge(&mut self, other: &BucketStats) {
        self.count = self.count.saturating_add(other.count);
        self.sum = saturating_add(self.sum, other.sum);
        self.min = match (
            self.min.and_then(finite_or_clamped),
            other.min.and_then(finite_or_clamped),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (
            self.max.and_then(finite_or_clamped),
            other.max.and_then(finite_or_clamped),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.sketch.merge(&other.sketch);
    }

    /// The sum as the API shows it: always finite (a stored NaN reads as 0, ±infinity as ±`f64::MAX`).
    pub fn finite_sum(&self) -> f64 {
        finite_or_clamped(self.sum).unwrap_or(0.0)
    }

    /// `min`, finite or absent.
    pub fn finite_min(&self) -> Option<f64> {
        self.min.and_then(finite_or_clamped)
    }

    /// `max`, finite or absent.
    pub fn finite_max(&self) -> Option<f64> {
        self.max.and_then(finite_or_clamped)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn avg(&self) -> Option<f64> {
        (self.count > 0).then(|| self.finite_sum() / self.count as f64)
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q)
    }
}

/// A finite value as is, ±infinity as ±`f64::MAX`, NaN as nothing.
fn finite_or_clamped(value: f64) -> Option<f64> {
    if value.is_nan() {
        None
    } else {
        Some(value.clamp(f64::MIN, f64::MAX))
    }
}

/// `a + b` kept finite: NaN operands add nothing, infinities and overflow saturate at ±`f64::MAX`.
fn saturating_add(a: f64, b: f64) -> f64 {
    let a = finite_or_clamped(a).unwrap_or(0.0);
    let b = finite_or_clamped(b).unwrap_or(0.0);
    // Both are finite, so the sum is finite or ±infinity, never NaN.
    (a + b).clamp(f64::MIN, f64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: f64) -> BucketStats {
        let mut stats = BucketStats::new();
        stats.observe(value);
        stats
    }

    #[test]
    fn merging_huge_sums_saturates_instead_of_becoming_infinite() {
        let mut bucket = one(1.7e308);
        bucket.merge(&one(1.7e308));
        assert!(bucket.sum.is_finite());
        assert_eq!(bucket.sum, f64::MAX);
        assert_eq!(bucket.count, 2);
        // Opposite saturated sums cancel to a finite number rather than NaN.
        bucket.merge(&one(-1.7e308));
        bucket.merge(&one(-1.7e308));
        bucket.merge(&one(-1.7e308));
        assert!(bucket.sum.is_finite(), "sum {}", bucket.sum);
        assert!(bucket.avg().is_some_and(f64::is_finite));
    }

    #[test]
    fn observing_many_copies_of_a_large_value_saturates() {
        let mut bucket = BucketStats::new();
        bucket.observe_n(1e300, u64::MAX);
        assert_eq!(bucket.sum, f64::MAX);
        assert_eq!(bucket.count, u64::MAX);
        bucket.observe_n(1.0, 5);
        assert_eq!(bucket.count, u64::MAX, "count saturates too");
    }

    #[test]
    fn a_stored_bucket_with_non_finite_statistics_still_reads_as_numbers() {
        let stored = BucketStats {
            count: 2,
            sum: f64::INFINITY,
            min: Some(f64::NAN),
            max: Some(f64::INFINITY),
            sketch: Default::default(),
        };
        assert_eq!(stored.finite_sum(), f64::MAX);
        assert_eq!(stored.finite_min(), None);
        assert_eq!(stored.finite_max(), Some(f64::MAX));
        assert!(stored.avg().is_some_and(f64::is_finite));
        let nan = BucketStats {
            sum: f64::NAN,
            ..stored.clone()
        };
        assert_eq!(nan.finite_sum(), 0.0);
        // Merging a poisoned bucket into a healthy one keeps the healthy one readable.
        let mut healthy = one(3.0);
        healthy.merge(&nan);
        assert!(healthy.sum.is_finite());
        assert_eq!(healthy.min, Some(3.0));
    }
}
