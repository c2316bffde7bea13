//! Active-series (cardinality) limits: which series a request may create.
//!
//! A series (service + metric + point attributes, see [`SeriesKey`](crate::model::SeriesKey)) is
//! *active* while it has been seen within the activity window. Each service may have at most
//! `max_series_per_service` active series and each of its metrics at most `max_series_per_metric`.
//! At ingest, after decoding and before the stream write, points of active series pass, new series
//! are admitted while both limits have room, and the points of the rest are refused in the OTLP
//! `partial_success` with a message naming the metric and the limit; the rest of the request is
//! written. Refusals are counted per service and metric (with a few example attribute sets) and
//! served at `GET /api/limits`.
//!
//! The decision itself sits behind the [`SeriesAdmission`] port: in memory locally
//! ([`crate::embedded::MemorySeriesAdmission`]), DynamoDB counters on AWS.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{Attributes, MetricPoint, SeriesId, SeriesKey};
use crate::otlp::Rejections;
use crate::ports::admission::{AdmissionError, SeriesAdmission};
use crate::spans::Span;
use crate::traces::red;

pub use crate::domain::limits::{
    LimitKind, MetricRefusals, MetricSeries, RefusalReport, RefusedSeries, SeriesLimits,
    SeriesRefusal, MAX_EXAMPLES_PER_METRIC, MAX_REFUSED_METRICS,
};

/// Bounded in-memory refusal counts: [`MAX_REFUSED_METRICS`] metrics with
/// [`MAX_EXAMPLES_PER_METRIC`] examples each, the rest totalled.
#[derive(Debug, Default)]
pub struct RefusalLog {
    metrics: BTreeMap<(String, String), MetricRefusals>,
    other_refused_points: u64,
}

impl RefusalLog {
    pub fn add(&mut self, now_unix_s: i64, refusal: &SeriesRefusal) {
        let key = (refusal.service.clone(), refusal.metric.clone());
        if !self.metrics.contains_key(&key) && self.metrics.len() >= MAX_REFUSED_METRICS {
            self.other_refused_points = self.other_refused_points.saturating_add(refusal.points);
            return;
        }
        let entry = self.metrics.entry(key).or_insert_with(|| MetricRefusals {
            service: refusal.service.clone(),
            metric: refusal.metric.clone(),
            limit: refusal.limit,
            refused_points: 0,
            last_refused_unix_s: now_unix_s,
            examples: Vec::new(),
        });
        entry.limit = refusal.limit;
        entry.refused_points = entry.refused_points.saturating_add(refusal.points);
        entry.last_refused_unix_s = entry.last_refused_unix_s.max(now_unix_s);
        for example in &refusal.examples {
            if entry.examples.len() >= MAX_EXAMPLES_PER_METRIC {
                break;
            }
            if !entry.examples.contains(example) {
                entry.examples.push(example.clone());
            }
        }
    }

    pub fn report(&self, limits: SeriesLimits) -> RefusalReport {
        RefusalReport {
            limits,
            refusals: self.metrics.values().cloned().collect(),
            other_refused_points: self.other_refused_points,
        }
    }
}

/// The partial-success reason for one refused group; `what` is "points" or "spans".
pub fn refusal_message(refusal: &SeriesRefusal, limits: SeriesLimits, what: &str) -> String {
    match refusal.limit {
        LimitKind::PerMetric => format!(
            "metric {:?} of service {:?} is at its limit of {} active series; {} {what} of new series refused",
            refusal.metric, refusal.service, limits.max_series_per_metric, refusal.points
        ),
        LimitKind::PerService => format!(
            "service {:?} is at its limit of {} active series; {} {what} of new series of metric {:?} refused",
            refusal.service, limits.max_series_per_service, refusal.points, refusal.metric
        ),
    }
}

/// Applies the limits to a decoded request: removes the points of refused series from `points`,
/// reports them in `rejected` (one reason per refused metric) and counts them through the port.
/// Returns how many points were removed.
pub async fn admit_points(
    admission: &dyn SeriesAdmission,
    now_unix_s: i64,
    points: &mut Vec<MetricPoint>,
    rejected: &mut Rejections,
) -> Result<u64, AdmissionError> {
    // The id each point's shared series key already carries: no rehash per point.
    let keys: Vec<(&SeriesKey, SeriesId)> = points
        .iter()
        .map(|p| (p.series.key(), p.series.id()))
        .collect();
    let keep = admit_keys(admission, now_unix_s, &keys, rejected, "points").await?;
    Ok(retain_kept(points, &keep))
}

/// Spans make RED series per operation (span name + kind, see [`crate::traces::red`]): an exploding
/// span name is the same attack as an exploding attribute. Each span's operation series
/// (`red.operation.requests{operation, span.kind}`, the id the aggregator will create) goes through
/// the same admission, so a service's operations are capped by the per-metric limit; spans of
/// operations beyond it are refused in the partial success (the rest of the trace is kept).
/// Returns how many spans were removed.
pub async fn admit_spans(
    admission: &dyn SeriesAdmission,
    now_unix_s: i64,
    spans: &mut Vec<Span>,
    rejected: &mut Rejections,
) -> Result<u64, AdmissionError> {
    let owned: Vec<SeriesKey> = spans.iter().map(operation_series).collect();
    let keys: Vec<(&SeriesKey, SeriesId)> = owned.iter().map(|k| (k, k.id())).collect();
    let keep = admit_keys(admission, now_unix_s, &keys, rejected, "spans").await?;
    drop(keys);
    drop(owned);
    Ok(retain_kept(spans, &keep))
}

/// The per-operation RED series a span feeds (its `red.operation.requests` series).
pub fn operation_series(span: &Span) -> SeriesKey {
    let mut attributes = Attributes::new();
    attributes.insert(red::OPERATION_ATTRIBUTE.to_string(), span.name.clone());
    attributes.insert(
        red::SPAN_KIND_ATTRIBUTE.to_string(),
        red::kind_name(span.kind).to_string(),
    );
    SeriesKey {
        service: span.service.clone(),
        metric: red::OPERATION_REQUESTS.to_string(),
        attributes,
    }
}

fn retain_kept<T>(items: &mut Vec<T>, keep: &[bool]) -> u64 {
    let before = items.len();
    let mut index = 0;
    items.retain(|_| {
        let kept = keep.get(index).copied().unwrap_or(true);
        index += 1;
        kept
    });
    (before - items.len()) as u64
}

/// Decides every key (with its id) of a request; returns, per key, whether its item is kept.
async fn admit_keys(
    admission: &dyn SeriesAdmission,
    now_unix_s: i64,
    keys: &[(&SeriesKey, SeriesId)],
    rejected: &mut Rejections,
    what: &str,
) -> Result<Vec<bool>, AdmissionError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut groups: Vec<MetricSeries> = Vec::new();
    let mut group_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut seen: HashSet<SeriesId> = HashSet::with_capacity(keys.len());
    for (key, id) in keys {
        if !seen.insert(*id) {
            continue;
        }
        let index = *group_of
            .entry((key.service.as_str(), key.metric.as_str()))
            .or_insert_with(|| {
                groups.push(MetricSeries {
                    service: key.service.clone(),
                    metric: key.metric.clone(),
                    ids: Vec::new(),
                });
                groups.len() - 1
            });
        groups[index].ids.push(*id);
    }
    drop(group_of);
    drop(seen);
    let verdicts = admission.admit(now_unix_s, &groups).await?;
    // Refused id → its group's index into `refusals`.
    let mut refused_group: HashMap<SeriesId, usize> = HashMap::new();
    let mut refusals: Vec<SeriesRefusal> = Vec::new();
    for (group, verdict) in groups.iter().zip(&verdicts) {
        let (Some(limit), false) = (verdict.limit, verdict.ids.is_empty()) else {
            continue;
        };
        for id in &verdict.ids {
            refused_group.insert(*id, refusals.len());
        }
        refusals.push(SeriesRefusal {
            service: group.service.clone(),
            metric: group.metric.clone(),
            limit,
            points: 0,
            examples: Vec::new(),
        });
    }
    let mut keep = vec![true; keys.len()];
    if refusals.is_empty() {
        return Ok(keep);
    }
    for ((key, id), kept) in keys.iter().zip(keep.iter_mut()) {
        let Some(&group) = refused_group.get(id) else {
            continue;
        };
        *kept = false;
        let refusal = &mut refusals[group];
        refusal.points += 1;
        if refusal.examples.len() < MAX_EXAMPLES_PER_METRIC
            && !refusal.examples.contains(&key.attributes)
        {
            refusal.examples.push(key.attributes.clone());
        }
    }
    let limits = admission.limits();
    for refusal in &refusals {
        rejected.reject(refusal.points, || refusal_message(refusal, limits, what));
    }
    admission.record_refusals(now_unix_s, &refusals).await?;
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_the_environment_default_and_refuse_nonsense() {
        let none = SeriesLimits::from_lookup(|_| None).unwrap();
        assert_eq!(none, SeriesLimits::default());
        let set = SeriesLimits::from_lookup(|name| match name {
            "MAX_SERIES_PER_METRIC" => Some("50".into()),
            "SERIES_ACTIVE_WINDOW_SECONDS" => Some("600".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(set.max_series_per_metric, 50);
        assert_eq!(set.active_window_seconds, 600);
        assert_eq!(set.max_series_per_service, 10_000);
        for bad in ["0", "-1", "many", "99999999999"] {
            let error = SeriesLimits::from_lookup(|name| {
                (name == "MAX_SERIES_PER_SERVICE").then(|| bad.to_string())
            })
            .unwrap_err();
            assert!(error.contains("MAX_SERIES_PER_SERVICE"), "{error}");
        }
    }

    #[test]
    fn the_refusal_log_is_bounded_in_metrics_and_examples() {
        let mut log = RefusalLog::default();
        for m in 0..(MAX_REFUSED_METRICS + 10) {
            let examples = (0..8)
                .map(|i| Attributes::from([("user".to_string(), format!("u-{i}"))]))
                .collect();
            log.add(
                1,
                &SeriesRefusal {
                    service: "api".into(),
                    metric: format!("m{m:03}"),
                    limit: LimitKind::PerMetric,
                    points: 2,
                    examples,
                },
            );
        }
        let report = log.report(SeriesLimits::default());
        assert_eq!(report.refusals.len(), MAX_REFUSED_METRICS);
        assert!(report
            .refusals
            .iter()
            .all(|r| r.examples.len() == MAX_EXAMPLES_PER_METRIC && r.refused_points == 2));
        assert_eq!(
            report.other_refused_points, 20,
            "10 metrics beyond the bound, 2 points each"
        );
    }
}
