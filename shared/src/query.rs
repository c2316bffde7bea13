//! Read side: services, series and bucket history, shaped for the query API ([`QueryService`]), and
//! the validated time [`Range`] every read takes. No HTTP here: the routes that serve it, the
//! query-string parsing and the status codes are in [`crate::http`] (`http::api`, `http::params`);
//! they are documented in `docs/openapi.json`
//! (generated: `crate::http::contract`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

pub use crate::domain::bucket_view::{rate, BucketView};
use crate::domain::stats::BucketStats;
use crate::model::{Attributes, MetricKind, Resolution, SeriesId, SeriesMeta};
use crate::ports::{BucketStore, SeriesCatalog, StoreError};

/// Most buckets one query may return (e.g. 24 h at 1m = 1440).
pub const MAX_BUCKETS: i64 = 2000;
/// Range when `from` is omitted.
const DEFAULT_RANGE_SECONDS: i64 = 15 * 60;
/// Earliest timestamp the API accepts, in unix seconds (1970-01-01T00:00:00Z).
pub const MIN_TIMESTAMP: i64 = 0;
/// Latest timestamp the API accepts, in unix seconds (9999-12-31T23:59:59Z).
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// A timestamp parameter (unix seconds) from a query string: `None` when absent; an error naming
/// the parameter when it is not a whole number within [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`].
pub fn timestamp_param(value: Option<&str>, name: &str) -> Result<Option<i64>, String> {
    let Some(text) = value else {
        return Ok(None);
    };
    match text.trim().parse::<i64>() {
        Ok(t) if (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&t) => Ok(Some(t)),
        _ => Err(format!(
            "`{name}` must be unix seconds from {MIN_TIMESTAMP} to {MAX_TIMESTAMP} (1970-01-01 to 9999-12-31), got {text:?}"
        )),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ServiceSummary {
    pub name: String,
    pub series: usize,
    pub last_seen: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SeriesSummary {
    pub id: String,
    pub attributes: Attributes,
    pub last_seen: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MetricSummary {
    pub name: String,
    pub kind: MetricKind,
    pub unit: String,
    pub series: Vec<SeriesSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct History {
    pub service: String,
    pub metric: String,
    /// Present for a single-series query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
    pub kind: MetricKind,
    pub unit: String,
    pub resolution: Resolution,
    pub from: i64,
    pub to: i64,
    pub buckets: Vec<BucketView>,
}

/// A range as a client asked for it: every part optional ([`RangeRequest::resolve`] applies the
/// defaults and the limits). The HTTP layer parses it from a query string
/// (`crate::http::params::RangeParams`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// Unix seconds.
    pub from: Option<i64>,
    /// Unix seconds.
    pub to: Option<i64>,
    pub resolution: Option<Resolution>,
}

/// A time range and resolution, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
    pub resolution: Resolution,
}

impl RangeRequest {
    /// Applies the defaults (`to` = now, `from` = to − 15 min, `resolution` = 1m) and checks the
    /// range: both ends within [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`], `from` before `to`, at most
    /// [`MAX_BUCKETS`] buckets.
    pub fn resolve(self, now: i64) -> Result<Range, QueryError> {
        for (value, name) in [(self.to, "to"), (self.from, "from")] {
            if let Some(t) = value {
                if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&t) {
                    return Err(QueryError::BadRequest(format!(
                        "`{name}` must be unix seconds from {MIN_TIMESTAMP} to {MAX_TIMESTAMP} (1970-01-01 to 9999-12-31), got {t}"
                    )));
                }
            }
        }
        let to = self
            .to
            .unwrap_or_else(|| now.clamp(MIN_TIMESTAMP, MAX_TIMESTAMP));
        let from = self
            .from
            .unwrap_or_else(|| to.saturating_sub(DEFAULT_RANGE_SECONDS).max(MIN_TIMESTAMP));
        let resolution = self.resolution.unwrap_or(Resolution::OneMinute);
        if from >= to {
            return Err(QueryError::BadRequest(format!(
                "`from` ({from}) must be before `to` ({to})"
            )));
        }
        // Both ends are within the accepted range, so the span cannot overflow; checked anyway.
        let buckets = to
            .checked_sub(from)
            .and_then(|span| span.checked_div(resolution.seconds()))
            .unwrap_or(i64::MAX);
        if buckets > MAX_BUCKETS {
            return Err(QueryError::BadRequest(format!(
                "range holds {buckets} buckets at {resolution}; at most {MAX_BUCKETS}: use a coarser resolution"
            )));
        }
        Ok(Range {
            from,
            to,
            resolution,
        })
    }
}

pub struct QueryService<S: SeriesCatalog + BucketStore + ?Sized> {
    store: Arc<S>,
}

impl<S: SeriesCatalog + BucketStore + ?Sized> Clone for QueryService<S> {
    fn clone(&self) -> Self {
        QueryService {
            store: self.store.clone(),
        }
    }
}

impl<S: SeriesCatalog + BucketStore + ?Sized> QueryService<S> {
    pub fn new(store: Arc<S>) -> Self {
        QueryService { store }
    }

    pub async fn services(&self) -> Result<Vec<ServiceSummary>, QueryError> {
        let mut out = Vec::new();
        for name in self.store.list_services().await? {
            let series = self.store.list_series(&name).await?;
            out.push(ServiceSummary {
                last_seen: series.iter().map(|s| s.last_seen_unix_s).max().unwrap_or(0),
                series: series.len(),
                name,
            });
        }
        Ok(out)
    }

    pub async fn metrics(&self, service: &str) -> Result<Vec<MetricSummary>, QueryError> {
        let series = self.store.list_series(service).await?;
        if series.is_empty() {
            return Err(QueryError::NotFound(format!(
                "no service named {service:?}"
            )));
        }
        let mut by_metric: BTreeMap<String, MetricSummary> = BTreeMap::new();
        for meta in series {
            let entry = by_metric
                .entry(meta.key.metric.clone())
                .or_insert_with(|| MetricSummary {
                    name: meta.key.metric.clone(),
                    kind: meta.kind,
                    unit: meta.unit.clone(),
                    series: Vec::new(),
                });
            entry.series.push(SeriesSummary {
                id: meta.id.to_string(),
                attributes: meta.key.attributes.clone(),
                last_seen: meta.last_seen_unix_s,
            });
        }
        Ok(by_metric.into_values().collect())
    }

    /// All series of one metric of one service, merged per bucket (exact for count/sum/min/max;
    /// quantiles from the merged sketches).
    pub async fn metric_history(
        &self,
        service: &str,
        metric: &str,
        range: Range,
    ) -> Result<History, QueryError> {
        let series: Vec<SeriesMeta> = self
            .store
            .list_series(service)
            .await?
            .into_iter()
            .filter(|s| s.key.metric == metric)
            .collect();
        let Some(first) = series.first() else {
            return Err(QueryError::NotFound(format!(
                "no metric {metric:?} for service {service:?}"
            )));
        };
        let (kind, unit) = (first.kind, first.unit.clone());
        let mut merged: BTreeMap<i64, BucketStats> = BTreeMap::new();
        for meta in &series {
            for (start, stats) in self
                .store
                .query_buckets(meta.id, range.resolution, range.from, range.to)
                .await?
            {
                merged.entry(start).or_default().merge(&stats);
            }
        }
        Ok(History {
            service: service.to_string(),
            metric: metric.to_string(),
            series_id: None,
            attributes: None,
            kind,
            unit,
            resolution: range.resolution,
            from: range.from,
            to: range.to,
            buckets: merged
                .iter()
                .map(|(start, stats)| BucketView::new(*start, stats, kind, range.resolution))
                .collect(),
        })
    }

    pub async fn series_history(&self, id: SeriesId, range: Range) -> Result<History, QueryError> {
        let meta = self
            .store
            .get_series(id)
            .await?
            .ok_or_else(|| QueryError::NotFound(format!("no series {id}")))?;
        let buckets = self
            .store
            .query_buckets(id, range.resolution, range.from, range.to)
            .await?;
        Ok(History {
            service: meta.key.service.clone(),
            metric: meta.key.metric.clone(),
            series_id: Some(id.to_string()),
            attributes: Some(meta.key.attributes.clone()),
            kind: meta.kind,
            unit: meta.unit.clone(),
            resolution: range.resolution,
            from: range.from,
            to: range.to,
            buckets: buckets
                .iter()
                .map(|(start, stats)| BucketView::new(*start, stats, meta.kind, range.resolution))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_defaults_and_validation() {
        let mut request = RangeRequest::default();
        let r = request.resolve(10_000).unwrap();
        assert_eq!(
            (r.from, r.to, r.resolution),
            (10_000 - 900, 10_000, Resolution::OneMinute)
        );
        request.from = Some(-1);
        assert!(matches!(
            request.resolve(10_000),
            Err(QueryError::BadRequest(_))
        ));
        request.from = Some(0);
        request.to = Some(86_400_000);
        let err = request.resolve(10_000).unwrap_err();
        assert!(err.to_string().contains("coarser resolution"), "{err}");
        request.to = Some(0);
        assert!(request.resolve(10_000).is_err());
    }
}
