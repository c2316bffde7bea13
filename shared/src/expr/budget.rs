//! The memory budget of one evaluation (`--query-max-samples`, like Prometheus's
//! `--query.max-samples`): the bucket statistics a query loads from the store and the samples its
//! evaluation holds at once, counted in samples weighted by what they hold. A sample is one loaded
//! bucket or one point of a selected series at one evaluation time (which may hold a merged sketch:
//! `rate(h[5m])` keeps one per series and step). Only selectors whose samples are read as
//! distributions (under `quantile`, `quantile_over_time` or `histogram_quantile`) keep their
//! sketches; every other selector's buckets are stripped to count/sum/min/max as they load, and such
//! a sample counts 1 while one that keeps a sketch counts [`SKETCH_SAMPLE_WEIGHT`]. The points are
//! counted before anything is loaded (selected series × evaluation times, known once the selector is
//! resolved); the buckets as each series is loaded, so a query over the budget is refused having
//! loaded at most one series' range.

use super::parse::ExprError;

/// What one sample that keeps its sketch counts against the budget, relative to one without: a
/// latency sketch of ≈220 bins costs ≈2.3 KB held (`shared/tests/expr_memory.rs`), a bucket without
/// its sketch ≈100 bytes (`shared/tests/expr_memory_scalar.rs`).
pub const SKETCH_SAMPLE_WEIGHT: usize = 30;

/// Default of [`super::ExprLimits::max_samples`], measured with both memory tests: the worst query
/// keeping sketches (`histogram_quantile(0.99, sum(rate(h_bucket[5m])))`, a merged dense sketch per
/// series and step: 100,000 samples of weight 30) added 226 MB, and the dashboard query
/// `sum(rate(http_requests[5m])) by (route)` over 1,000 series × 1,440 steps at 1m (2.9M samples
/// without sketches) stays below 300 MB as well (`shared/tests/expr_memory*.rs`).
pub const DEFAULT_MAX_SAMPLES: usize = 3_000_000;

/// What one evaluation has reserved so far.
#[derive(Debug)]
pub(crate) struct SampleBudget {
    limit: usize,
    used: usize,
}

impl SampleBudget {
    pub(crate) fn new(limit: usize) -> Self {
        SampleBudget { limit, used: 0 }
    }

    /// Reserves `n` more samples for what `what` describes, or the error naming the limit and what
    /// to narrow (at the selector's position `pos` in `src`).
    pub(crate) fn reserve(
        &mut self,
        n: usize,
        src: &str,
        pos: usize,
        what: &str,
    ) -> Result<(), ExprError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limit {
            return Err(ExprError::at(
                src,
                pos,
                format!(
                    "the query would hold more than {} samples at once ({what}; --query-max-samples): \
                     narrow the selectors, shorten the range or use a larger step",
                    self.limit
                ),
            ));
        }
        Ok(())
    }
}
