//! The memory budget of one evaluation (`--query-max-samples`, like Prometheus's
//! `--query.max-samples`): the bucket statistics a query loads from the store and the samples its
//! evaluation holds at once, counted in samples. A sample is one loaded bucket (its statistics and
//! sketch) or one point of a selected series at one evaluation time (which may hold a merged sketch:
//! `rate(h[5m])` keeps one per series and step). The points are counted before anything is loaded
//! (selected series × evaluation times, known once the selector is resolved); the buckets as each
//! series is loaded, so a query over the budget is refused having loaded at most one series' range.

use super::parse::ExprError;

/// Default of [`super::ExprLimits::max_samples`]: the worst query measured at this budget (a
/// merged dense sketch per series and step, `histogram_quantile(0.99, sum(rate(h_bucket[5m])))`)
/// added 226 MB at this budget and 454 MB at 200,000 (`shared/tests/expr_memory.rs`: ≈2.3 KB per
/// sample for latency sketches of ≈220 bins; a sketch spanning the whole range holds up to 2048).
pub const DEFAULT_MAX_SAMPLES: usize = 100_000;

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
