//! The statistics one bucket holds: exact count/sum/min/max beside a quantile sketch.

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
        self.count += count;
        self.sum += value * count as f64;
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
        self.sketch.add_n(value, count);
    }

    /// Folds `other` into `self`. Commutative and associative for count/sum/min/max and the sketch.
    pub fn merge(&mut self, other: &BucketStats) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.sketch.merge(&other.sketch);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn avg(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q)
    }
}
