//! The mergeable quantile sketch behind every bucket's p50/p95/p99.
//!
//! A thin wrapper over `sketches-ddsketch` (DDSketch, relative accuracy 1%): merging adds bin counts,
//! so buckets merge exactly and order-independently across batches, shards and rollups. The wrapper
//! pins the configuration (a sketch can only merge with one of the same configuration) and gives it a
//! compact, versioned byte form for stream records and store items.

use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every quantile the sketch reports.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Bins per sign before the lowest bins collapse: at 1% this covers ~1e-9 .. 1e9 without collapsing.
const MAX_BINS: u32 = 2048;
/// Values with a smaller magnitude count as zero.
const MIN_VALUE: f64 = 1.0e-9;

#[derive(Debug, thiserror::Error)]
pub enum SketchError {
    #[error("sketch bytes are malformed: {0}")]
    Malformed(String),
}

#[derive(Clone)]
pub struct Sketch {
    inner: DDSketch,
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.count())
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

impl Sketch {
    pub fn new() -> Self {
        Sketch {
            inner: DDSketch::new(config()),
        }
    }

    /// Adds one observation. Non-finite values are refused upstream (validation); ignoring them here
    /// keeps a bug elsewhere from poisoning a whole bucket.
    pub fn add(&mut self, value: f64) {
        if value.is_finite() {
            self.inner.add(value);
        }
    }

    /// Adds `count` observations of `value` in constant time. The total count saturates at
    /// `u64::MAX` (observations beyond it are not added) instead of overflowing.
    pub fn add_n(&mut self, value: f64, count: u64) {
        let count = count.min(u64::MAX - self.count());
        if value.is_finite() && count > 0 {
            self.inner.add_with_count(value, count);
        }
    }

    /// Adds `other`'s bins. A merge whose total count would pass `u64::MAX` (only reachable with
    /// absurd wire counts) is skipped: the sketch stays as it was rather than overflowing.
    pub fn merge(&mut self, other: &Sketch) {
        if self.count().checked_add(other.count()).is_none() {
            tracing::warn!("sketch merge skipped: the total count would pass u64::MAX");
            return;
        }
        // Both sides come from `config()`, so the only error (config mismatch) cannot occur.
        let _ = self.inner.merge(&other.inner);
    }

    pub fn count(&self) -> u64 {
        self.inner.count() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Value at quantile `q` (0..=1), within [`RELATIVE_ACCURACY`]; `None` when empty or `q` is out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.inner.quantile(q).ok().flatten()
    }

    /// DataDog's standard DDSketch binary encoding (varint-packed bins); interoperable and compact.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_java_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch, SketchError> {
        if bytes.is_empty() {
            return Ok(Sketch::new());
        }
        let inner = DDSketch::from_java_bytes(bytes)
            .map_err(|e| SketchError::Malformed(format!("{e:?}")))?;
        let mut sketch = Sketch::new();
        sketch.inner.merge(&inner).map_err(|e| {
            SketchError::Malformed(format!(
                "sketch was encoded with another configuration: {e:?}"
            ))
        })?;
        Ok(sketch)
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        assert!(Sketch::from_bytes(&[0xff, 0x13, 0x00, 0x99]).is_err());
    }
}
