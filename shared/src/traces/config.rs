//! Settings of the trace processor.

use crate::model::Retention;

use super::sampling::SamplingPolicy;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceConfig {
    /// Retention of the RED and edge buckets (the same as the metrics aggregator's).
    pub retention: Retention,
    pub sampling: SamplingPolicy,
    /// How long (shard event time) an edge half waits for its partner.
    pub pairing_window_seconds: u64,
    /// Most halves waiting per shard; beyond it those nearest their deadline leave early.
    pub max_pending_halves: usize,
    /// Span ids remembered per trace for de-duplication; spans beyond it are counted unchecked.
    pub max_seen_spans: usize,
    /// How long a kept trace stays readable.
    pub kept_ttl_seconds: i64,
    /// Whether spans of dropped traces are held (for [`TraceConfig::provisional_ttl_seconds`]) so that
    /// a later error can keep the whole trace. Off: a late error keeps only the spans from then on,
    /// and dropped spans cost no store writes.
    pub hold_dropped_spans: bool,
    pub provisional_ttl_seconds: i64,
    /// Spans ending further than this past the clock do not move the shard's event time (a service
    /// with a wrong clock must not expire every waiting half at once).
    pub max_clock_skew_seconds: u64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            retention: Retention::default(),
            sampling: SamplingPolicy::default(),
            pairing_window_seconds: 30,
            max_pending_halves: 3_000,
            max_seen_spans: 2_048,
            kept_ttl_seconds: 24 * 3600,
            hold_dropped_spans: true,
            provisional_ttl_seconds: 10 * 60,
            max_clock_skew_seconds: 5 * 60,
        }
    }
}
