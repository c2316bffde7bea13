//! One bucket as the query API returns it and live updates carry it: the exact statistics and the
//! quantiles and rate derived from a [`BucketStats`].

use serde::Serialize;

use crate::domain::stats::BucketStats;
use crate::model::{MetricKind, Resolution};

/// One bucket as the API returns it (and, flattened, as live updates carry it).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BucketView {
    pub start: i64,
    pub count: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// Per second over the bucket width: the summed value for counters (increase/s), the number of
    /// observations for everything else (e.g. requests/s for a latency histogram).
    pub rate: f64,
}

/// Per-second rate of a bucket (see [`BucketView::rate`]).
pub fn rate(kind: MetricKind, resolution: Resolution, stats: &BucketStats) -> f64 {
    let seconds = resolution.seconds() as f64;
    match kind {
        MetricKind::Counter | MetricKind::UpDownCounter => stats.finite_sum() / seconds,
        _ => stats.count as f64 / seconds,
    }
}

impl BucketView {
    pub fn new(start: i64, stats: &BucketStats, kind: MetricKind, resolution: Resolution) -> Self {
        // One walk over a sparse sketch for all three.
        let [p50, p95, p99] = stats.sketch.p50_p95_p99();
        BucketView {
            start,
            count: stats.count,
            sum: stats.finite_sum(),
            min: stats.finite_min(),
            max: stats.finite_max(),
            avg: stats.avg(),
            p50,
            p95,
            p99,
            rate: rate(kind, resolution, stats),
        }
    }
}
