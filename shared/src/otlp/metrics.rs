//! ExportMetricsServiceRequest → validated, normalized [`MetricPoint`]s.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, summary_data_point::ValueAtQuantile,
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
};
use prost::Message;
use serde_json::Value;

use super::attributes::{flatten, Origin, ResourceInfo};
use super::{
    json, truncated, Format, OtlpError, PointLimits, Refused, RejectReason, Rejections,
    MAX_ABS_VALUE,
};
use crate::model::{MetricPoint, PointData, SeriesKey, SeriesRef, Temporality, Unit};
use crate::record;

/// OTLP's "no recorded value" data point flag: a valid point that marks a gap, carrying nothing.
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// Exponential histogram scales the OTLP data model allows.
const MIN_SCALE: i32 = -10;
const MAX_SCALE: i32 = 20;

/// The result of decoding one metrics request.
#[derive(Debug, Default)]
pub struct DecodedMetrics {
    /// Normalized points in request order (a summary yields one point plus one per quantile).
    pub points: Vec<MetricPoint>,
    /// OTLP data points accepted (including "no recorded value" points, which yield nothing).
    pub accepted_data_points: u64,
    pub rejected: Rejections,
    /// OTLP data points seen so far (accepted or not), for the per-request limit.
    seen_data_points: u64,
}

/// Decodes a (decompressed) metrics request body; points outside `limits` are rejected.
pub fn decode_metrics(
    format: Format,
    body: &[u8],
    limits: PointLimits,
) -> Result<DecodedMetrics, OtlpError> {
    let mut decoded = DecodedMetrics::default();
    let request = match format {
        Format::Protobuf => ExportMetricsServiceRequest::decode(body)
            .map_err(|e| OtlpError::Malformed(format!("invalid protobuf: {e}")))?,
        Format::Json => from_json(body, &mut decoded.rejected)?,
    };
    normalize(request, limits, &mut decoded);
    Ok(decoded)
}

/// A decoded metrics request normalized a chunk at a time (see [`decode_metrics_in_chunks`]).
#[derive(Debug, Default)]
pub struct ChunkedMetrics {
    chunks: std::vec::IntoIter<ExportMetricsServiceRequest>,
    limits: Option<PointLimits>,
    /// The current chunk's points in `points`; counts and rejections of every chunk so far.
    pub decoded: DecodedMetrics,
}

impl ChunkedMetrics {
    /// Replaces `decoded.points` with the next chunk's normalized points; `false` when none is left.
    pub fn next_chunk(&mut self) -> bool {
        self.decoded.points.clear();
        match (self.chunks.next(), self.limits) {
            (Some(chunk), Some(limits)) => {
                normalize(chunk, limits, &mut self.decoded);
                true
            }
            _ => false,
        }
    }

    /// The instances the not yet normalized chunks' resources name with `service.instance.id`
    /// (the service registry's OTLP source); one per resource, duplicates included.
    pub fn sightings(&self) -> Vec<crate::registry::Sighting> {
        let mut out = Vec::new();
        for chunk in self.chunks.as_slice() {
            for resource_metrics in &chunk.resource_metrics {
                let Some(resource) = resource_metrics.resource.as_ref() else {
                    continue;
                };
                let info = ResourceInfo::new(Some(resource));
                let attributes = flatten(&resource.attributes);
                out.extend(crate::registry::Sighting::from_attributes(
                    info.service(),
                    |key| attributes.get(key).map(String::as_str),
                    attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ));
            }
        }
        out
    }

    /// Counts and rejections of the whole request (`points` holds the last chunk's).
    pub fn finish(self) -> DecodedMetrics {
        self.decoded
    }
}

/// Like [`decode_metrics`], but the domain points (an owned series key per point, several times
/// the protobuf's size) are built `max_points` OTLP data points at a time, as
/// [`ChunkedMetrics::next_chunk`] is called: the receiver admits and encodes each chunk before the
/// next is built, so a request of many points refused by the series limits never holds them all.
/// Limits and counts apply to the whole request exactly as in [`decode_metrics`].
pub fn decode_metrics_in_chunks(
    format: Format,
    body: &[u8],
    limits: PointLimits,
    max_points: usize,
) -> Result<ChunkedMetrics, OtlpError> {
    let mut decoded = DecodedMetrics::default();
    let request = match format {
        Format::Protobuf => ExportMetricsServiceRequest::decode(body)
            .map_err(|e| OtlpError::Malformed(format!("invalid protobuf: {e}")))?,
        Format::Json => from_json(body, &mut decoded.rejected)?,
    };
    Ok(ChunkedMetrics {
        chunks: split_request(request, max_points.max(1)).into_iter(),
        limits: Some(limits),
        decoded,
    })
}

/// Splits a request into requests of at most `max_points` data points each (a larger metric is
/// split too), in the same order, moving the points (resource, scope and metric descriptions are
/// copied into each part).
fn split_request(
    request: ExportMetricsServiceRequest,
    max_points: usize,
) -> Vec<ExportMetricsServiceRequest> {
    let mut chunks = Vec::new();
    let mut current = ExportMetricsServiceRequest::default();
    let mut in_current = 0usize;
    for mut resource_metrics in request.resource_metrics {
        let scopes = std::mem::take(&mut resource_metrics.scope_metrics);
        for mut scope_metrics in scopes {
            let metrics = std::mem::take(&mut scope_metrics.metrics);
            // Whether `current` ends with this resource and scope, ready to take more metrics.
            let mut scope_open = false;
            for metric in metrics {
                for piece in split_metric(metric, max_points) {
                    let n = piece.data.as_ref().map_or(0, point_count) as usize;
                    if in_current > 0 && in_current + n > max_points {
                        chunks.push(std::mem::take(&mut current));
                        in_current = 0;
                        scope_open = false;
                    }
                    if !scope_open {
                        let mut scope = scope_metrics.clone();
                        scope.metrics = Vec::new();
                        let mut resource = resource_metrics.clone();
                        resource.scope_metrics = vec![scope];
                        current.resource_metrics.push(resource);
                        scope_open = true;
                    }
                    if let Some(scope) = current
                        .resource_metrics
                        .last_mut()
                        .and_then(|r| r.scope_metrics.last_mut())
                    {
                        scope.metrics.push(piece);
                    }
                    in_current += n;
                }
            }
        }
    }
    if !current.resource_metrics.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// One metric as parts of at most `max_points` data points (itself when it is small enough).
fn split_metric(mut metric: Metric, max_points: usize) -> Vec<Metric> {
    let Some(data) = metric.data.take() else {
        return vec![metric];
    };
    // A metric without a name is refused whole: it makes no points, so it need not be split.
    if point_count(&data) as usize <= max_points || metric.name.is_empty() {
        metric.data = Some(data);
        return vec![metric];
    }
    let with = |data: Data| Metric {
        data: Some(data),
        ..metric.clone()
    };
    fn parts<T>(points: Vec<T>, max: usize) -> Vec<Vec<T>> {
        let mut parts = Vec::new();
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            parts.push(points.by_ref().take(max).collect());
        }
        parts
    }
    match data {
        Data::Gauge(mut g) => parts(std::mem::take(&mut g.data_points), max_points)
            .into_iter()
            .map(|data_points| {
                with(Data::Gauge(
                    opentelemetry_proto::tonic::metrics::v1::Gauge { data_points },
                ))
            })
            .collect(),
        Data::Sum(mut s) => parts(std::mem::take(&mut s.data_points), max_points)
            .into_iter()
            .map(|data_points| {
                with(Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum {
                    data_points,
                    ..s.clone()
                }))
            })
            .collect(),
        Data::Histogram(mut h) => parts(std::mem::take(&mut h.data_points), max_points)
            .into_iter()
            .map(|data_points| {
                with(Data::Histogram(
                    opentelemetry_proto::tonic::metrics::v1::Histogram {
                        data_points,
                        ..h.clone()
                    },
                ))
            })
            .collect(),
        Data::ExponentialHistogram(mut h) => parts(std::mem::take(&mut h.data_points), max_points)
            .into_iter()
            .map(|data_points| {
                with(Data::ExponentialHistogram(
                    opentelemetry_proto::tonic::metrics::v1::ExponentialHistogram {
                        data_points,
                        ..h.clone()
                    },
                ))
            })
            .collect(),
        Data::Summary(mut s) => parts(std::mem::take(&mut s.data_points), max_points)
            .into_iter()
            .map(|data_points| {
                with(Data::Summary(
                    opentelemetry_proto::tonic::metrics::v1::Summary { data_points },
                ))
            })
            .collect(),
    }
}

const DATA_KEYS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// The data points taken out of one metric of the JSON document.
struct TakenPoints {
    data_key: &'static str,
    points: Vec<Value>,
}

fn from_json(
    body: &[u8],
    rejected: &mut Rejections,
) -> Result<ExportMetricsServiceRequest, OtlpError> {
    let mut root = json::parse(body)?;
    json::normalize(&mut root);

    // Take every metric's data points out, in document order.
    let mut taken: Vec<Option<TakenPoints>> = Vec::new();
    for resource in json::objects_mut(&mut root, "resourceMetrics") {
        for scope in json::objects_mut(resource, "scopeMetrics") {
            for metric in json::objects_mut(scope, "metrics") {
                let found = DATA_KEYS.iter().find_map(|key| {
                    let data = metric.get_mut(*key)?.as_object_mut()?;
                    let points = json::take_array(data, "dataPoints")?;
                    Some(TakenPoints {
                        data_key: key,
                        points,
                    })
                });
                taken.push(found);
            }
        }
    }

    let mut request: ExportMetricsServiceRequest = serde_json::from_value(Value::Object(root))
        .map_err(|e| OtlpError::Malformed(format!("invalid OTLP/JSON metrics request: {e}")))?;

    // Decode each point on its own and put it back.
    let mut taken = taken.into_iter();
    for resource in &mut request.resource_metrics {
        for scope in &mut resource.scope_metrics {
            scope.metrics.retain_mut(|metric| {
                let Some(TakenPoints { data_key, points }) = taken.next().flatten() else {
                    return true; // no points in the document: normalize() reports it
                };
                let name = metric.name.clone();
                let in_document = points.len().max(1) as u64;
                let kept = match (&mut metric.data, data_key) {
                    (Some(Data::Gauge(g)), "gauge") => {
                        g.data_points = json_points(points, &name, rejected);
                        true
                    }
                    (Some(Data::Sum(s)), "sum") => {
                        s.data_points = json_points(points, &name, rejected);
                        true
                    }
                    (Some(Data::Histogram(h)), "histogram") => {
                        h.data_points = json_points(points, &name, rejected);
                        true
                    }
                    (Some(Data::ExponentialHistogram(h)), "exponentialHistogram") => {
                        h.data_points = json_points(points, &name, rejected);
                        true
                    }
                    (Some(Data::Summary(s)), "summary") => {
                        s.data_points = json_points(points, &name, rejected);
                        true
                    }
                    _ => false,
                };
                if !kept {
                    // The data object itself did not decode (serde turned it into None).
                    rejected.reject(in_document, || {
                        format!("metric {name:?}: its {data_key} data is invalid")
                    });
                }
                kept
            });
        }
    }
    Ok(request)
}

fn json_points<T: serde::de::DeserializeOwned>(
    points: Vec<Value>,
    metric: &str,
    rejected: &mut Rejections,
) -> Vec<T> {
    let mut out = Vec::with_capacity(points.len());
    for point in points {
        if let Some((field, text)) = json::non_finite_field(&point, "explicitBounds") {
            rejected.reject(1, || {
                format!("metric {metric:?}: data point has a non-finite {field} ({text})")
            });
            continue;
        }
        match json::decode_item::<T>(point, &["exemplars"]) {
            Ok(p) => out.push(p),
            Err(e) => rejected.reject(1, || format!("metric {metric:?}: invalid data point: {e}")),
        }
    }
    out
}

/// Validates every data point and turns the valid ones into domain points.
fn normalize(request: ExportMetricsServiceRequest, limits: PointLimits, out: &mut DecodedMetrics) {
    for resource_metrics in request.resource_metrics {
        let resource = ResourceInfo::new(resource_metrics.resource.as_ref());
        for scope_metrics in resource_metrics.scope_metrics {
            let origin = resource.origin(scope_metrics.scope.as_ref());
            for metric in scope_metrics.metrics {
                normalize_metric(&origin, metric, limits, out);
            }
        }
    }
}

/// Emits the points of one metric into `out`.
struct MetricSink<'a> {
    origin: &'a Origin,
    metric: &'a str,
    /// Shared by the metric's points.
    unit: Unit,
    limits: PointLimits,
    out: &'a mut DecodedMetrics,
}

impl MetricSink<'_> {
    fn push(&mut self, attributes: crate::model::Attributes, time_unix_nano: u64, data: PointData) {
        self.out.points.push(MetricPoint {
            series: SeriesRef::new(SeriesKey {
                service: self.origin.service.clone(),
                metric: self.metric.to_string(),
                attributes,
            }),
            source: self.origin.source,
            unit: self.unit.clone(),
            time_unix_nano,
            data,
        });
    }

    /// [`MetricSink::push`] of the point's OTLP attributes: a series seen before (all attribute
    /// values strings, the common case) comes from the process-wide series cache instead of being
    /// flattened and hashed again.
    fn push_otlp(&mut self, attributes: &[KeyValue], time_unix_nano: u64, data: PointData) {
        fn string(kv: &KeyValue) -> Option<&str> {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Some(s),
                _ => None,
            }
        }
        if !attributes.iter().all(|kv| string(kv).is_some()) {
            self.push(flatten(attributes), time_unix_nano, data);
            return;
        }
        let pairs = attributes
            .iter()
            .map(|kv| (kv.key.as_str(), string(kv).unwrap_or_default()));
        let series =
            record::series_cache::lock().series(&self.origin.service, self.metric, pairs, || {
                SeriesRef::new(SeriesKey {
                    service: self.origin.service.clone(),
                    metric: self.metric.to_string(),
                    attributes: flatten(attributes),
                })
            });
        self.out.points.push(MetricPoint {
            series,
            source: self.origin.source,
            unit: self.unit.clone(),
            time_unix_nano,
            data,
        });
    }

    /// Accepts or rejects one OTLP data point: `convert` emits the point(s) or says why it is invalid.
    fn point(
        &mut self,
        flags: u32,
        time_unix_nano: u64,
        attributes: &[KeyValue],
        convert: impl FnOnce(&mut Self) -> Result<(), Refused>,
    ) {
        self.out.seen_data_points += 1;
        let emitted_before = self.out.points.len();
        let result = if self.out.seen_data_points > self.limits.max_items_per_request as u64 {
            Err(Refused::new(
                RejectReason::TooManyInRequest,
                format!(
                    "the request carries more than {} data points (the limit per request); \
                     the points after it are refused",
                    self.limits.max_items_per_request
                ),
            ))
        } else if flags & FLAG_NO_RECORDED_VALUE != 0 {
            Ok(())
        } else if time_unix_nano == 0 {
            Err(Refused::invalid("time_unix_nano is missing"))
        } else {
            self.limits
                .time
                .check(time_unix_nano)
                .and_then(|()| self.limits.check_attributes(attributes))
                .and_then(|()| convert(self))
                .and_then(|()| {
                    if self.out.points[emitted_before..]
                        .iter()
                        .all(record::metric_point_fits)
                    {
                        Ok(())
                    } else {
                        Err(Refused::new(
                            RejectReason::TooLarge,
                            format!(
                                "data point is larger than a stream record ({} bytes)",
                                record::MAX_RECORD_BYTES
                            ),
                        ))
                    }
                })
        };
        if result.is_err() {
            self.out.points.truncate(emitted_before);
        }
        match result {
            Ok(()) => self.out.accepted_data_points += 1,
            Err(Refused { reason, message }) => {
                let metric = truncated(self.metric, 256);
                self.out
                    .rejected
                    .reject_as(reason, 1, || format!("metric {metric:?}: {message}"));
            }
        }
    }
}

fn normalize_metric(
    origin: &Origin,
    metric: Metric,
    limits: PointLimits,
    out: &mut DecodedMetrics,
) {
    let Metric {
        name, unit, data, ..
    } = metric;
    let Some(data) = data else {
        out.rejected
            .reject(1, || format!("metric {name:?} has no data"));
        return;
    };
    if name.is_empty() {
        let n = point_count(&data);
        out.rejected
            .reject(n.max(1), || "a metric has no name".to_string());
        return;
    }
    let mut sink = MetricSink {
        origin,
        metric: &name,
        unit: Unit::from(unit),
        limits,
        out,
    };
    match data {
        Data::Gauge(gauge) => {
            for p in gauge.data_points {
                sink.point(p.flags, p.time_unix_nano, &p.attributes, |sink| {
                    let value = number_value(&p)?;
                    sink.push_otlp(&p.attributes, p.time_unix_nano, PointData::Gauge(value));
                    Ok(())
                });
            }
        }
        Data::Sum(sum) => {
            let temporality_code = sum.aggregation_temporality;
            for p in sum.data_points {
                sink.point(p.flags, p.time_unix_nano, &p.attributes, |sink| {
                    let temporality = temporality(temporality_code, p.start_time_unix_nano)?;
                    let value = number_value(&p)?;
                    let data = PointData::Sum {
                        value,
                        monotonic: sum.is_monotonic,
                        temporality,
                    };
                    sink.push_otlp(&p.attributes, p.time_unix_nano, data);
                    Ok(())
                });
            }
        }
        Data::Histogram(histogram) => {
            let temporality_code = histogram.aggregation_temporality;
            for p in histogram.data_points {
                sink.point(p.flags, p.time_unix_nano, &p.attributes, |sink| {
                    let data = histogram_data(&p, temporality_code)?;
                    sink.push_otlp(&p.attributes, p.time_unix_nano, data);
                    Ok(())
                });
            }
        }
        Data::ExponentialHistogram(histogram) => {
            let temporality_code = histogram.aggregation_temporality;
            for mut p in histogram.data_points {
                // The point is consumed by the conversion (no copy of its bucket counts); its
                // attributes are taken out first.
                let attributes = std::mem::take(&mut p.attributes);
                let (flags, time_unix_nano) = (p.flags, p.time_unix_nano);
                sink.point(flags, time_unix_nano, &attributes, |sink| {
                    let data = exponential_histogram_data(p, temporality_code)?;
                    sink.push_otlp(&attributes, time_unix_nano, data);
                    Ok(())
                });
            }
        }
        Data::Summary(summary) => {
            for p in summary.data_points {
                sink.point(p.flags, p.time_unix_nano, &p.attributes, |sink| {
                    summary_points(sink, &p)
                });
            }
        }
    }
}

fn point_count(data: &Data) -> u64 {
    let n = match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    };
    n as u64
}

fn temporality(code: i32, start_time_unix_nano: u64) -> Result<Temporality, Refused> {
    match code {
        1 => Ok(Temporality::Delta),
        2 => Ok(Temporality::Cumulative {
            start_time_unix_nano,
        }),
        0 => Err("aggregation temporality is unspecified".to_string().into()),
        other => Err(format!("unknown aggregation temporality {other}").into()),
    }
}

/// A finite value within [`MAX_ABS_VALUE`], so that no bucket statistic it enters can overflow.
fn finite(what: &str, value: f64) -> Result<f64, Refused> {
    if !value.is_finite() {
        Err(Refused::invalid(format!("{what} is not finite ({value})")))
    } else if value.abs() > MAX_ABS_VALUE {
        Err(out_of_range(what, value))
    } else {
        Ok(value)
    }
}

fn out_of_range(what: &str, value: f64) -> Refused {
    Refused::new(
        RejectReason::ValueOutOfRange,
        format!("{what} {value:e} is beyond the accepted magnitude of {MAX_ABS_VALUE:e}"),
    )
}

fn finite_opt(what: &str, value: Option<f64>) -> Result<Option<f64>, Refused> {
    value.map(|v| finite(what, v)).transpose()
}

fn number_value(p: &NumberDataPoint) -> Result<f64, Refused> {
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => finite("value", v),
        Some(number_data_point::Value::AsInt(v)) => Ok(v as f64),
        None => Err("data point has no value".to_string().into()),
    }
}

fn check_min_max(min: Option<f64>, max: Option<f64>) -> Result<(), Refused> {
    match (min, max) {
        (Some(min), Some(max)) if min > max => {
            Err(format!("min {min} is greater than max {max}").into())
        }
        _ => Ok(()),
    }
}

/// Sum of counts, or an error when it overflows u64.
fn total(counts: &[u64]) -> Result<u64, Refused> {
    counts
        .iter()
        .try_fold(0u64, |acc, c| acc.checked_add(*c))
        .ok_or_else(|| Refused::invalid("bucket counts overflow"))
}

fn histogram_data(p: &HistogramDataPoint, temporality_code: i32) -> Result<PointData, Refused> {
    let temporality = temporality(temporality_code, p.start_time_unix_nano)?;
    let sum = finite_opt("sum", p.sum)?;
    let min = finite_opt("min", p.min)?;
    let max = finite_opt("max", p.max)?;
    check_min_max(min, max)?;
    let (bounds, bucket_counts) = if p.bucket_counts.is_empty() && p.explicit_bounds.is_empty() {
        // OTLP allows a histogram without buckets; it is one bucket spanning everything.
        (Vec::new(), vec![p.count])
    } else {
        if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            return Err(format!(
                "histogram has {} bucket counts for {} explicit bounds (want {})",
                p.bucket_counts.len(),
                p.explicit_bounds.len(),
                p.explicit_bounds.len() + 1
            )
            .into());
        }
        for bound in &p.explicit_bounds {
            finite("histogram bound", *bound)?;
        }
        if p.explicit_bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err("histogram bounds are not strictly increasing"
                .to_string()
                .into());
        }
        (p.explicit_bounds.clone(), p.bucket_counts.clone())
    };
    let in_buckets = total(&bucket_counts)?;
    if in_buckets != p.count {
        return Err(format!(
            "histogram count {} differs from the sum of its bucket counts {in_buckets}",
            p.count
        )
        .into());
    }
    Ok(PointData::Histogram {
        temporality,
        count: p.count,
        sum,
        min,
        max,
        bounds,
        bucket_counts,
    })
}

fn exponential_histogram_data(
    p: ExponentialHistogramDataPoint,
    temporality_code: i32,
) -> Result<PointData, Refused> {
    let temporality = temporality(temporality_code, p.start_time_unix_nano)?;
    if !(MIN_SCALE..=MAX_SCALE).contains(&p.scale) {
        return Err(format!(
            "exponential histogram scale {} is outside {MIN_SCALE}..={MAX_SCALE}",
            p.scale
        )
        .into());
    }
    if p.zero_threshold.abs() > MAX_ABS_VALUE {
        return Err(out_of_range(
            "exponential histogram zero threshold",
            p.zero_threshold,
        ));
    }
    if !(p.zero_threshold.is_finite() && p.zero_threshold >= 0.0) {
        return Err(format!(
            "exponential histogram zero threshold {} is invalid",
            p.zero_threshold
        )
        .into());
    }
    let sum = finite_opt("sum", p.sum)?;
    let min = finite_opt("min", p.min)?;
    let max = finite_opt("max", p.max)?;
    check_min_max(min, max)?;
    let positive = p.positive.unwrap_or_default();
    let negative = p.negative.unwrap_or_default();
    for (side, buckets) in [("positive", &positive), ("negative", &negative)] {
        let last = i64::from(buckets.offset) + buckets.bucket_counts.len() as i64 - 1;
        if last > i64::from(i32::MAX) {
            return Err(
                format!("exponential histogram {side} buckets run past the largest index").into(),
            );
        }
        check_exponential_range(side, p.scale, buckets.offset, &buckets.bucket_counts)?;
    }
    let in_buckets = total(&positive.bucket_counts)?
        .checked_add(total(&negative.bucket_counts)?)
        .and_then(|n| n.checked_add(p.zero_count))
        .ok_or_else(|| "bucket counts overflow".to_string())?;
    if in_buckets != p.count {
        return Err(format!(
            "exponential histogram count {} differs from zero count plus bucket counts {in_buckets}",
            p.count
        ).into());
    }
    Ok(PointData::ExponentialHistogram {
        temporality,
        count: p.count,
        sum,
        min,
        max,
        scale: p.scale,
        zero_count: p.zero_count,
        positive_offset: positive.offset,
        positive_counts: positive.bucket_counts,
        negative_offset: negative.offset,
        negative_counts: negative.bucket_counts,
    })
}

/// Refuses exponential buckets whose boundaries leave the range of values a bucket may hold: the
/// upper boundary of the highest populated bucket must be ≤ [`MAX_ABS_VALUE`], the lower boundary of
/// the lowest populated one ≥ the smallest normal double (`f64::MIN_POSITIVE`). Bucket `i` at scale
/// `s` is `(2^(i·2^-s), 2^((i+1)·2^-s)]`; empty buckets at either end do not matter.
fn check_exponential_range(
    side: &str,
    scale: i32,
    offset: i32,
    counts: &[u64],
) -> Result<(), Refused> {
    let (Some(first), Some(last)) = (
        counts.iter().position(|&n| n > 0),
        counts.iter().rposition(|&n| n > 0),
    ) else {
        return Ok(());
    };
    let boundary_log2 = |index: i64| index as f64 * (-f64::from(scale)).exp2();
    let lowest = i64::from(offset) + first as i64;
    let highest = i64::from(offset) + last as i64;
    let upper = boundary_log2(highest + 1);
    if upper > MAX_ABS_VALUE.log2() {
        return Err(Refused::new(
            RejectReason::ValueOutOfRange,
            format!(
                "exponential histogram {side} bucket {highest} at scale {scale} reaches 2^{upper}, \
                 beyond the accepted magnitude of {MAX_ABS_VALUE:e}"
            ),
        ));
    }
    let lower = boundary_log2(lowest);
    if lower < f64::MIN_POSITIVE.log2() {
        return Err(Refused::new(
            RejectReason::ValueOutOfRange,
            format!(
                "exponential histogram {side} bucket {lowest} at scale {scale} starts at 2^{lower}, \
                 below the smallest normal double"
            ),
        ));
    }
    Ok(())
}

/// A summary becomes its count/sum point plus one gauge per quantile (`quantile` = "0.99" …),
/// because quantiles cannot be merged across instances.
fn summary_points(sink: &mut MetricSink<'_>, p: &SummaryDataPoint) -> Result<(), Refused> {
    let sum = finite("sum", p.sum)?;
    for ValueAtQuantile { quantile, value } in &p.quantile_values {
        if !(0.0..=1.0).contains(quantile) {
            return Err(format!("summary quantile {quantile} is outside [0, 1]").into());
        }
        finite("summary quantile value", *value)?;
    }
    let attributes = flatten(&p.attributes);
    for ValueAtQuantile { quantile, value } in &p.quantile_values {
        let mut with_quantile = attributes.clone();
        with_quantile.insert("quantile".to_string(), quantile.to_string());
        sink.push(with_quantile, p.time_unix_nano, PointData::Gauge(*value));
    }
    sink.push(
        attributes,
        p.time_unix_nano,
        PointData::Summary {
            count: p.count,
            sum,
        },
    );
    Ok(())
}

#[cfg(test)]
mod chunk_tests {
    use super::*;
    use crate::model::Retention;
    use crate::otlp::TimeLimit;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        summary_data_point, Gauge, ResourceMetrics, ScopeMetrics, Sum, Summary,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    pub(super) const NOW: u64 = 1_764_000_000_000_000_000;

    pub(super) fn limits(max_items_per_request: usize) -> PointLimits {
        PointLimits {
            time: TimeLimit {
                now_unix_nano: NOW,
                max_skew_nanos: 600_000_000_000,
                retention: Retention::default(),
            },
            max_attributes: 128,
            max_attribute_value_bytes: 4096,
            max_items_per_request,
        }
    }

    fn attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn number(i: usize, time_unix_nano: u64) -> NumberDataPoint {
        NumberDataPoint {
            attributes: vec![attribute("i", &i.to_string())],
            start_time_unix_nano: NOW - 60_000_000_000,
            time_unix_nano,
            value: Some(number_data_point::Value::AsDouble(i as f64)),
            ..Default::default()
        }
    }

    fn resource(service: &str, metrics: Vec<Metric>) -> ResourceMetrics {
        ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Two services, gauges, a cumulative sum, a summary, an invalid point (time 0) and a metric
    /// without a name.
    fn request() -> ExportMetricsServiceRequest {
        let gauge = |name: &str, n: usize| Metric {
            name: name.into(),
            unit: "ms".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: (0..n)
                    .map(|i| number(i, if i == 3 { 0 } else { NOW }))
                    .collect(),
            })),
            ..Default::default()
        };
        let sum = Metric {
            name: "requests".into(),
            data: Some(Data::Sum(Sum {
                data_points: (0..5).map(|i| number(i, NOW)).collect(),
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let summary = Metric {
            name: "latency".into(),
            data: Some(Data::Summary(Summary {
                data_points: (0..3)
                    .map(|i| SummaryDataPoint {
                        attributes: vec![attribute("i", &i.to_string())],
                        time_unix_nano: NOW,
                        count: 2,
                        sum: 3.0,
                        quantile_values: vec![summary_data_point::ValueAtQuantile {
                            quantile: 0.5,
                            value: 1.5,
                        }],
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![
                resource("api", vec![gauge("cpu", 7), sum, gauge("", 2)]),
                resource("db", vec![summary, gauge("mem", 4)]),
            ],
        }
    }

    fn whole_and_chunked(
        max_items: usize,
        chunk: usize,
    ) -> (DecodedMetrics, Vec<MetricPoint>, DecodedMetrics) {
        let body = request().encode_to_vec();
        let whole = decode_metrics(Format::Protobuf, &body, limits(max_items)).unwrap();
        let mut chunked =
            decode_metrics_in_chunks(Format::Protobuf, &body, limits(max_items), chunk).unwrap();
        let mut points = Vec::new();
        while chunked.next_chunk() {
            assert!(
                chunked.decoded.points.len() <= 2 * chunk,
                "a chunk holds its points only"
            );
            points.append(&mut chunked.decoded.points);
        }
        (whole, points, chunked.finish())
    }

    #[test]
    fn a_request_normalized_in_chunks_gives_the_same_points_counts_and_refusals() {
        for (max_items, chunk) in [(100_000, 1), (100_000, 3), (100_000, 1000), (10, 4)] {
            let (whole, points, chunked) = whole_and_chunked(max_items, chunk);
            assert_eq!(points, whole.points, "chunks of {chunk}");
            assert_eq!(chunked.accepted_data_points, whole.accepted_data_points);
            assert_eq!(chunked.rejected.count, whole.rejected.count);
            assert_eq!(chunked.rejected.reasons, whole.rejected.reasons);
        }
        let (whole, _, _) = whole_and_chunked(10, 4);
        assert!(whole.rejected.count > 0, "the request limit is exercised");
    }
}

#[cfg(test)]
mod series_cache_tests {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;
    use crate::model::Attributes;

    use super::chunk_tests::NOW;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn text(s: &str) -> any_value::Value {
        any_value::Value::StringValue(s.into())
    }

    fn points(attribute_sets: Vec<Vec<KeyValue>>) -> Vec<MetricPoint> {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", text("cache-test-svc"))],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "cache.test".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: attribute_sets
                                .into_iter()
                                .map(|attributes| NumberDataPoint {
                                    attributes,
                                    time_unix_nano: NOW,
                                    value: Some(number_data_point::Value::AsDouble(1.0)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        decode_metrics(
            Format::Protobuf,
            &request.encode_to_vec(),
            super::chunk_tests::limits(1000),
        )
        .unwrap()
        .points
    }

    fn attributes(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn repeated_series_share_one_key_and_lookalike_attribute_lists_get_their_own() {
        let decoded = points(vec![
            vec![kv("route", text("/a")), kv("method", text("GET"))],
            // The same set in another order: the same series, the same shared key.
            vec![kv("method", text("GET")), kv("route", text("/a"))],
            // A repeated key keeps its last value, as `flatten` does.
            vec![
                kv("method", text("GET")),
                kv("route", text("/a")),
                kv("route", text("/b")),
            ],
            // The same text from a non-string value: same key, built the uncached way.
            vec![
                kv("route", text("/a")),
                kv("method", text("GET")),
                kv("code", any_value::Value::IntValue(200)),
            ],
            vec![kv("route", text("/a"))],
        ]);
        let expected = [
            attributes(&[("method", "GET"), ("route", "/a")]),
            attributes(&[("method", "GET"), ("route", "/a")]),
            attributes(&[("method", "GET"), ("route", "/b")]),
            attributes(&[("code", "200"), ("method", "GET"), ("route", "/a")]),
            attributes(&[("route", "/a")]),
        ];
        assert_eq!(decoded.len(), expected.len());
        for (point, attributes) in decoded.iter().zip(&expected) {
            assert_eq!(point.series.service, "cache-test-svc");
            assert_eq!(point.series.metric, "cache.test");
            assert_eq!(&point.series.attributes, attributes);
            assert_eq!(point.series.id(), point.series.key().id());
        }
        assert!(std::ptr::eq(
            decoded[0].series.key(),
            decoded[1].series.key()
        ));
        // A second request reuses the first one's key.
        let again = points(vec![vec![
            kv("route", text("/a")),
            kv("method", text("GET")),
        ]]);
        assert!(std::ptr::eq(decoded[0].series.key(), again[0].series.key()));
    }
}
