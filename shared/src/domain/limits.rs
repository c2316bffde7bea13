//! Active-series limits and what they refuse: the types the [`SeriesAdmission`] port speaks and
//! `GET /api/limits` returns. The admission logic is in `crate::cardinality`.
//!
//! [`SeriesAdmission`]: crate::ports::SeriesAdmission

use serde::Serialize;

use crate::model::{Attributes, SeriesId};

/// Example attribute sets kept per refused metric.
pub const MAX_EXAMPLES_PER_METRIC: usize = 5;
/// (service, metric) pairs with their own refusal counts; refusals beyond are only totalled.
pub const MAX_REFUSED_METRICS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SeriesLimits {
    pub max_series_per_service: u32,
    pub max_series_per_metric: u32,
    /// A series not seen for this long stops counting against the limits.
    pub active_window_seconds: i64,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            max_series_per_service: 10_000,
            max_series_per_metric: 2_000,
            active_window_seconds: 3_600,
        }
    }
}

impl SeriesLimits {
    /// From the Lambda environment: `MAX_SERIES_PER_SERVICE`, `MAX_SERIES_PER_METRIC`,
    /// `SERIES_ACTIVE_WINDOW_SECONDS`; each defaults when unset and must be a positive integer.
    pub fn from_env() -> Result<SeriesLimits, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<SeriesLimits, String> {
        let defaults = SeriesLimits::default();
        let positive = |name: &str, default: u64| -> Result<u64, String> {
            match var(name) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<u64>() {
                    Ok(n) if n > 0 && n <= u64::from(u32::MAX) => Ok(n),
                    _ => Err(format!("{name} must be a positive integer, got {text:?}")),
                },
            }
        };
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(SeriesLimits {
            max_series_per_service: narrow(positive(
                "MAX_SERIES_PER_SERVICE",
                u64::from(defaults.max_series_per_service),
            )?),
            max_series_per_metric: narrow(positive(
                "MAX_SERIES_PER_METRIC",
                u64::from(defaults.max_series_per_metric),
            )?),
            active_window_seconds: i64::from(narrow(positive(
                "SERIES_ACTIVE_WINDOW_SECONDS",
                defaults.active_window_seconds as u64,
            )?)),
        })
    }
}

/// The distinct series of one service and metric in one request, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSeries {
    pub service: String,
    pub metric: String,
    pub ids: Vec<SeriesId>,
}

/// Which limit refused a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    PerMetric,
    PerService,
}

/// What [`SeriesAdmission::admit`](crate::ports::SeriesAdmission::admit) refused of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusedSeries {
    pub ids: Vec<SeriesId>,
    /// The limit that refused the first of them (`None` when nothing was refused).
    pub limit: Option<LimitKind>,
}

/// Refusals of one request for one service and metric, to be counted.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRefusal {
    pub service: String,
    pub metric: String,
    pub limit: LimitKind,
    pub points: u64,
    /// Up to [`MAX_EXAMPLES_PER_METRIC`] attribute sets of refused series.
    pub examples: Vec<Attributes>,
}

/// Refusal counts of one service and metric (`GET /api/limits`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MetricRefusals {
    pub service: String,
    pub metric: String,
    /// The limit of the latest refusal.
    pub limit: LimitKind,
    pub refused_points: u64,
    pub last_refused_unix_s: i64,
    pub examples: Vec<Attributes>,
}

/// The body of `GET /api/limits`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RefusalReport {
    pub limits: SeriesLimits,
    /// Sorted by service, then metric.
    pub refusals: Vec<MetricRefusals>,
    /// Points refused for metrics beyond the first [`MAX_REFUSED_METRICS`] counted individually.
    pub other_refused_points: u64,
}
