//! A parsed exposition → an OTLP `ExportMetricsServiceRequest`, as the OpenTelemetry specification's
//! "Prometheus and OpenMetrics Compatibility" section maps it, so scraped samples take the receiver's
//! path (validation, limits, series admission, stream, exactly-once aggregation) like pushed ones.
//!
//! - Resource: `job` → `service.name`, `instance` → `service.instance.id`; the labels of a
//!   `target_info` sample (other than `job`/`instance`) become resource attributes, and `target_info`
//!   itself is not kept as a series.
//! - Other target labels (`static_configs[].labels`, relabeling) are added to every sample's
//!   attributes; an exposed label that collides with one is kept as `exported_<name>` (Prometheus's
//!   `honor_labels: false`).
//! - Counter → cumulative monotonic Sum named as the sample (`http_requests_total`, the name
//!   Prometheus users query), start time from `_created` when present. Without `_created` the start
//!   time is 0: the aggregator's cumulative tracker then takes the first scrape as a baseline and
//!   counts increases from the second on, with a decrease counted as a reset (the exporter restarted),
//!   by the same code as OTLP cumulative sums. A `<name>_created` family the text format exposes
//!   as a gauge beside a counter, histogram or summary is used the same way, not kept as a series.
//! - Histogram → cumulative explicit-bucket Histogram from `_bucket{le}` (cumulative counts turned
//!   into per-bucket counts), `_sum`, `_count`; the `+Inf` bucket is required (else `_count` stands
//!   in). Summary → Summary (`quantile` labels, `_sum`, `_count`).
//! - Gauge, unknown (untyped), info, stateset and gaugehistogram samples → Gauge per sample name.
//! - Point time: the scrape's start, or the exposed timestamp with `honor_timestamps` (default, as in
//!   Prometheus).
//! - Synthetic per target: `up` (1, or 0 when the scrape failed), `scrape_duration_seconds`,
//!   `scrape_samples_scraped`.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::parse::{Exposition, Family, MetricType};

/// Who was scraped: the target's final labels (after relabeling, `__*` labels removed), `job` and
/// `instance` among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLabels {
    pub labels: Vec<(String, String)>,
}

impl TargetLabels {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn job(&self) -> &str {
        self.get("job").unwrap_or("")
    }
    pub fn instance(&self) -> &str {
        self.get("instance").unwrap_or("")
    }
}

/// What one scrape produced, for the mapping.
pub struct ScrapeResult<'a> {
    /// The scrape's start, unix nanoseconds.
    pub time_unix_nano: u64,
    pub duration_seconds: f64,
    /// The body as parsed, or none when the scrape failed (up = 0).
    pub exposition: Option<&'a Exposition>,
    pub honor_timestamps: bool,
}

/// Counts of what the mapping did not turn into points (kept out before the receiver sees them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MappingStats {
    /// Histogram or summary series that could not be assembled (missing `+Inf` bucket and `_count`,
    /// decreasing cumulative bucket counts, non-integral counts).
    pub invalid_series: u64,
    /// Data points produced (synthetic ones included).
    pub points: u64,
}

/// Maps one scrape to OTLP requests of at most `max_points_per_request` data points each (so a large
/// scrape fits the receiver's per-request limits).
pub fn to_otlp(
    target: &TargetLabels,
    scrape: &ScrapeResult<'_>,
    max_points_per_request: usize,
) -> (Vec<ExportMetricsServiceRequest>, MappingStats) {
    let mut resource = vec![
        string_kv("service.name", target.job()),
        string_kv("service.instance.id", target.instance()),
    ];
    let extra: Vec<(String, String)> = target
        .labels
        .iter()
        .filter(|(k, _)| k != "job" && k != "instance")
        .cloned()
        .collect();
    let mut builder = Builder {
        resource: Resource::default(),
        requests: Vec::new(),
        current: Vec::new(),
        current_points: 0,
        max_points: max_points_per_request.max(1),
        stats: MappingStats::default(),
    };
    if let Some(exposition) = scrape.exposition {
        for family in &exposition.families {
            if family.name == "target_info" {
                for sample in &family.samples {
                    for (k, v) in &sample.labels {
                        if k != "job" && k != "instance" && !resource.iter().any(|kv| &kv.key == k)
                        {
                            resource.push(string_kv(k, v));
                        }
                    }
                }
            }
        }
    }
    builder.resource = Resource {
        attributes: resource,
        ..Default::default()
    };
    let ctx = PointContext {
        extra: &extra,
        scrape_time: scrape.time_unix_nano,
        honor_timestamps: scrape.honor_timestamps,
    };
    if let Some(exposition) = scrape.exposition {
        let created = created_times(exposition);
        let bases = created_bases(exposition);
        for family in &exposition.families {
            if family.name == "target_info" {
                continue;
            }
            match family.kind {
                MetricType::Counter => counter(&mut builder, &ctx, family, &created),
                MetricType::Histogram => histogram(&mut builder, &ctx, family, &created),
                MetricType::Summary => summary(&mut builder, &ctx, family, &created),
                _ => {
                    // A `<base>_created` gauge beside its counter/histogram/summary (text format).
                    let is_created_of_other = family
                        .name
                        .strip_suffix("_created")
                        .is_some_and(|base| bases.contains_key(base));
                    if !is_created_of_other {
                        gauges(&mut builder, &ctx, family);
                    }
                }
            }
        }
    }
    let (samples, up) = match scrape.exposition {
        Some(e) => (e.sample_count as f64, 1.0),
        None => (0.0, 0.0),
    };
    let synthetic_ctx = PointContext {
        honor_timestamps: false,
        ..ctx
    };
    for (name, unit, value) in [
        ("up", "", up),
        ("scrape_duration_seconds", "s", scrape.duration_seconds),
        ("scrape_samples_scraped", "", samples),
    ] {
        let point = synthetic_ctx.number_point(&[], None, value);
        builder.push(gauge_metric(name, unit, "", vec![point]));
    }
    builder.finish()
}

struct Builder {
    resource: Resource,
    requests: Vec<ExportMetricsServiceRequest>,
    current: Vec<Metric>,
    current_points: usize,
    max_points: usize,
    stats: MappingStats,
}

impl Builder {
    fn push(&mut self, metric: Metric) {
        let points = point_count(&metric);
        if points == 0 {
            return;
        }
        if self.current_points + points > self.max_points && !self.current.is_empty() {
            self.flush();
        }
        self.current_points += points;
        self.stats.points += points as u64;
        self.current.push(metric);
    }

    fn flush(&mut self) {
        let metrics = std::mem::take(&mut self.current);
        self.current_points = 0;
        self.requests.push(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
    }

    fn finish(mut self) -> (Vec<ExportMetricsServiceRequest>, MappingStats) {
        if !self.current.is_empty() {
            self.flush();
        }
        (self.requests, self.stats)
    }
}

fn point_count(metric: &Metric) -> usize {
    match &metric.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        None => 0,
    }
}

#[derive(Clone, Copy)]
struct PointContext<'a> {
    extra: &'a [(String, String)],
    scrape_time: u64,
    honor_timestamps: bool,
}

impl PointContext<'_> {
    fn time(&self, timestamp_ms: Option<i64>) -> u64 {
        match timestamp_ms {
            Some(ms) if self.honor_timestamps && ms > 0 => {
                u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
            }
            _ => self.scrape_time,
        }
    }

    /// The sample's labels (minus `skip`) with the target's labels added; a colliding exposed label
    /// becomes `exported_<name>`.
    fn attributes(&self, labels: &[(String, String)], skip: &[&str]) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(labels.len() + self.extra.len());
        for (k, v) in labels {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let collides = k == "job" || k == "instance" || self.extra.iter().any(|(t, _)| t == k);
            if collides {
                out.push(string_kv(&format!("exported_{k}"), v));
            } else {
                out.push(string_kv(k, v));
            }
        }
        for (k, v) in self.extra {
            out.push(string_kv(k, v));
        }
        out
    }

    fn number_point(
        &self,
        labels: &[(String, String)],
        timestamp_ms: Option<i64>,
        value: f64,
    ) -> NumberDataPoint {
        NumberDataPoint {
            attributes: self.attributes(labels, &[]),
            time_unix_nano: self.time(timestamp_ms),
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        }
    }
}

/// A canonical key for a label set (sorted, without `skip`).
fn label_key(labels: &[(String, String)], skip: &str) -> Vec<(String, String)> {
    let mut key: Vec<(String, String)> =
        labels.iter().filter(|(k, _)| k != skip).cloned().collect();
    key.sort();
    key
}

type CreatedMap = HashMap<(String, Vec<(String, String)>), f64>;

/// Every `<base>_created` sample by (base, labels), in seconds.
fn created_times(exposition: &Exposition) -> CreatedMap {
    let mut out = HashMap::new();
    for family in &exposition.families {
        for sample in &family.samples {
            if let Some(base) = sample.name.strip_suffix("_created") {
                out.insert(
                    (base.to_string(), label_key(&sample.labels, "")),
                    sample.value,
                );
            }
        }
    }
    out
}

/// Bases whose `_created` belongs to a counter, histogram or summary family.
fn created_bases(exposition: &Exposition) -> HashMap<String, ()> {
    let mut out = HashMap::new();
    for family in &exposition.families {
        match family.kind {
            MetricType::Counter => {
                let base = family.name.strip_suffix("_total").unwrap_or(&family.name);
                out.insert(base.to_string(), ());
            }
            MetricType::Histogram | MetricType::Summary => {
                out.insert(family.name.clone(), ());
            }
            _ => {}
        }
    }
    out
}

fn start_time(created: &CreatedMap, base: &str, labels: &[(String, String)]) -> u64 {
    match created.get(&(base.to_string(), labels.to_vec())) {
        Some(seconds) if seconds.is_finite() && *seconds > 0.0 && *seconds < 1.8e10 => {
            (seconds * 1e9) as u64
        }
        _ => 0,
    }
}

fn counter(builder: &mut Builder, ctx: &PointContext<'_>, family: &Family, created: &CreatedMap) {
    let mut by_name: Vec<(String, Vec<NumberDataPoint>)> = Vec::new();
    for sample in &family.samples {
        if sample.name.ends_with("_created") {
            continue;
        }
        let base = sample.name.strip_suffix("_total").unwrap_or(&sample.name);
        let mut point = ctx.number_point(&sample.labels, sample.timestamp_ms, sample.value);
        point.start_time_unix_nano = start_time(created, base, &label_key(&sample.labels, ""));
        match by_name.iter_mut().find(|(n, _)| n == &sample.name) {
            Some((_, points)) => points.push(point),
            None => by_name.push((sample.name.clone(), vec![point])),
        }
    }
    for (name, data_points) in by_name {
        builder.push(Metric {
            name,
            description: family.help.clone().unwrap_or_default(),
            unit: otlp_unit(family.unit.as_deref()),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        });
    }
}

fn gauges(builder: &mut Builder, ctx: &PointContext<'_>, family: &Family) {
    let mut by_name: Vec<(String, Vec<NumberDataPoint>)> = Vec::new();
    for sample in &family.samples {
        let point = ctx.number_point(&sample.labels, sample.timestamp_ms, sample.value);
        match by_name.iter_mut().find(|(n, _)| n == &sample.name) {
            Some((_, points)) => points.push(point),
            None => by_name.push((sample.name.clone(), vec![point])),
        }
    }
    for (name, points) in by_name {
        let unit = otlp_unit(family.unit.as_deref());
        builder.push(gauge_metric(
            &name,
            &unit,
            family.help.as_deref().unwrap_or(""),
            points,
        ));
    }
}

fn gauge_metric(name: &str, unit: &str, help: &str, data_points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_string(),
        description: help.to_string(),
        unit: unit.to_string(),
        data: Some(metric::Data::Gauge(Gauge { data_points })),
        ..Default::default()
    }
}

/// Samples of one histogram or summary series (labels without `le`/`quantile`).
#[derive(Default)]
struct Group {
    labels: Vec<(String, String)>,
    /// (`le` or `quantile`, value)
    parts: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
    timestamp_ms: Option<i64>,
    bad_bound: bool,
}

fn groups(family: &Family, part_label: &str, part_suffix: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    for sample in &family.samples {
        let Some(suffix) = sample.name.strip_prefix(family.name.as_str()) else {
            continue;
        };
        let key = label_key(&sample.labels, part_label);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(Group {
                labels: key,
                ..Default::default()
            });
            groups.len() - 1
        });
        let group = &mut groups[i];
        group.timestamp_ms = group.timestamp_ms.or(sample.timestamp_ms);
        match suffix {
            "_sum" => group.sum = Some(sample.value),
            "_count" => group.count = Some(sample.value),
            s if s == part_suffix => {
                match sample.label(part_label).and_then(super::parse::parse_float) {
                    Some(bound) => group.parts.push((bound, sample.value)),
                    None => group.bad_bound = true,
                }
            }
            _ => {}
        }
    }
    groups
}

fn whole_count(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < 1.8e19)
        .then_some(value as u64)
}

fn histogram(builder: &mut Builder, ctx: &PointContext<'_>, family: &Family, created: &CreatedMap) {
    let mut data_points = Vec::new();
    for mut group in groups(family, "le", "_bucket") {
        match histogram_point(ctx, &mut group, created, &family.name) {
            Some(point) => data_points.push(point),
            None => builder.stats.invalid_series += 1,
        }
    }
    builder.push(Metric {
        name: family.name.clone(),
        description: family.help.clone().unwrap_or_default(),
        unit: otlp_unit(family.unit.as_deref()),
        data: Some(metric::Data::Histogram(Histogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    });
}

fn histogram_point(
    ctx: &PointContext<'_>,
    group: &mut Group,
    created: &CreatedMap,
    base: &str,
) -> Option<HistogramDataPoint> {
    if group.bad_bound || group.parts.iter().any(|(b, _)| b.is_nan()) {
        return None;
    }
    group.parts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = match group.parts.last() {
        Some((bound, count)) if *bound == f64::INFINITY => whole_count(*count)?,
        _ => whole_count(group.count?)?,
    };
    let mut explicit_bounds = Vec::new();
    let mut bucket_counts = Vec::new();
    let mut previous = 0u64;
    for (bound, cumulative) in &group.parts {
        if *bound == f64::INFINITY {
            break;
        }
        let cumulative = whole_count(*cumulative)?;
        bucket_counts.push(cumulative.checked_sub(previous)?);
        explicit_bounds.push(*bound);
        previous = cumulative;
    }
    bucket_counts.push(total.checked_sub(previous)?);
    Some(HistogramDataPoint {
        attributes: ctx.attributes(&group.labels, &[]),
        start_time_unix_nano: start_time(created, base, &group.labels),
        time_unix_nano: ctx.time(group.timestamp_ms),
        count: total,
        sum: group.sum.filter(|s| s.is_finite()),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    })
}

fn summary(builder: &mut Builder, ctx: &PointContext<'_>, family: &Family, created: &CreatedMap) {
    let mut data_points = Vec::new();
    for group in groups(family, "quantile", "") {
        let (Some(count), false) = (group.count.and_then(whole_count), group.bad_bound) else {
            builder.stats.invalid_series += 1;
            continue;
        };
        data_points.push(SummaryDataPoint {
            attributes: ctx.attributes(&group.labels, &[]),
            start_time_unix_nano: start_time(created, &family.name, &group.labels),
            time_unix_nano: ctx.time(group.timestamp_ms),
            count,
            sum: group.sum.unwrap_or(0.0),
            quantile_values: group
                .parts
                .iter()
                .map(|(quantile, value)| ValueAtQuantile {
                    quantile: *quantile,
                    value: *value,
                })
                .collect(),
            ..Default::default()
        });
    }
    builder.push(Metric {
        name: family.name.clone(),
        description: family.help.clone().unwrap_or_default(),
        unit: otlp_unit(family.unit.as_deref()),
        data: Some(metric::Data::Summary(Summary { data_points })),
        ..Default::default()
    });
}

/// OpenMetrics unit words → UCUM as OTLP uses them (the common ones; others kept as written).
fn otlp_unit(unit: Option<&str>) -> String {
    match unit.unwrap_or("") {
        "seconds" => "s",
        "milliseconds" => "ms",
        "microseconds" => "us",
        "nanoseconds" => "ns",
        "bytes" => "By",
        "ratio" => "1",
        "celsius" => "Cel",
        "hertz" => "Hz",
        "volts" => "V",
        "amperes" => "A",
        "joules" => "J",
        "meters" => "m",
        "grams" => "g",
        other => other,
    }
    .to_string()
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse, ExpositionFormat, ParseLimits};
    use super::*;

    fn target() -> TargetLabels {
        TargetLabels {
            labels: vec![
                ("job".into(), "node".into()),
                ("instance".into(), "127.0.0.1:9100".into()),
                ("env".into(), "test".into()),
            ],
        }
    }

    fn map(body: &str, format: ExpositionFormat) -> (Vec<Metric>, Resource, MappingStats) {
        let e = parse(body.as_bytes(), format, &ParseLimits::default()).unwrap();
        let (requests, stats) = to_otlp(
            &target(),
            &ScrapeResult {
                time_unix_nano: 1_700_000_000_000_000_000,
                duration_seconds: 0.01,
                exposition: Some(&e),
                honor_timestamps: true,
            },
            100_000,
        );
        assert_eq!(requests.len(), 1);
        let rm = requests
            .into_iter()
            .next()
            .unwrap()
            .resource_metrics
            .remove(0);
        let metrics = rm.scope_metrics.into_iter().next().unwrap().metrics;
        (metrics, rm.resource.unwrap(), stats)
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match &kv.value {
                Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s)),
                }) => Some(s.as_str()),
                _ => None,
            })
    }

    #[test]
    fn counter_with_created_histogram_summary_and_synthetic_series() {
        let (metrics, resource, stats) = map(
            concat!(
                "# TYPE reqs_total counter\n",
                "reqs_total{code=\"200\",env=\"prod\"} 7\n",
                "# TYPE reqs_created gauge\n",
                "reqs_created{code=\"200\",env=\"prod\"} 1.6999999e9\n",
                "# TYPE lat histogram\n",
                "lat_bucket{le=\"0.1\"} 2\nlat_bucket{le=\"1\"} 5\nlat_bucket{le=\"+Inf\"} 6\n",
                "lat_sum 3.5\nlat_count 6\n",
                "# TYPE q summary\nq{quantile=\"0.5\"} 0.2\nq{quantile=\"0.9\"} 0.7\nq_sum 9\nq_count 30\n",
                "target_info{region=\"eu\"} 1\n",
                "temp 21.5\n",
            ),
            ExpositionFormat::Text,
        );
        assert_eq!(attr(&resource.attributes, "service.name"), Some("node"));
        assert_eq!(
            attr(&resource.attributes, "service.instance.id"),
            Some("127.0.0.1:9100")
        );
        assert_eq!(attr(&resource.attributes, "region"), Some("eu"));
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "reqs_total",
                "lat",
                "q",
                "temp",
                "up",
                "scrape_duration_seconds",
                "scrape_samples_scraped"
            ]
        );
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        let p = &sum.data_points[0];
        assert_eq!(p.start_time_unix_nano, 1_699_999_900_000_000_000);
        assert_eq!(attr(&p.attributes, "env"), Some("test"));
        assert_eq!(attr(&p.attributes, "exported_env"), Some("prod"));
        let Some(metric::Data::Histogram(h)) = &metrics[1].data else {
            panic!()
        };
        let hp = &h.data_points[0];
        assert_eq!(hp.explicit_bounds, [0.1, 1.0]);
        assert_eq!(hp.bucket_counts, [2, 3, 1]);
        assert_eq!((hp.count, hp.sum), (6, Some(3.5)));
        assert_eq!(hp.start_time_unix_nano, 0);
        let Some(metric::Data::Summary(s)) = &metrics[2].data else {
            panic!()
        };
        assert_eq!(s.data_points[0].quantile_values.len(), 2);
        assert_eq!(s.data_points[0].count, 30);
        let Some(metric::Data::Gauge(up)) = &metrics[4].data else {
            panic!()
        };
        assert_eq!(
            up.data_points[0].value,
            Some(number_data_point::Value::AsDouble(1.0))
        );
        assert_eq!(stats.invalid_series, 0);
    }

    #[test]
    fn openmetrics_unit_and_broken_histograms() {
        let (metrics, _, stats) = map(
            concat!(
                "# TYPE t_seconds counter\n# UNIT t_seconds seconds\n",
                "t_seconds_total 5\nt_seconds_created 1699999990\n",
                "# TYPE h histogram\n",
                "h_bucket{a=\"1\",le=\"1\"} 5\nh_bucket{a=\"1\",le=\"+Inf\"} 4\n",
                "h_bucket{a=\"2\",le=\"1\"} 1\nh_count{a=\"2\"} 1\n",
                "# EOF\n",
            ),
            ExpositionFormat::OpenMetrics,
        );
        assert_eq!(metrics[0].name, "t_seconds_total");
        assert_eq!(metrics[0].unit, "s");
        let Some(metric::Data::Histogram(h)) = &metrics[1].data else {
            panic!()
        };
        assert_eq!(h.data_points.len(), 1, "the decreasing series is left out");
        assert_eq!(h.data_points[0].bucket_counts, [1, 0]);
        assert_eq!(stats.invalid_series, 1);
    }

    #[test]
    fn a_failed_scrape_is_up_zero_and_large_scrapes_are_split() {
        let (requests, _) = to_otlp(
            &target(),
            &ScrapeResult {
                time_unix_nano: 1,
                duration_seconds: 1.0,
                exposition: None,
                honor_timestamps: true,
            },
            100,
        );
        let metrics = &requests[0].resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(metrics[0].name, "up");
        let Some(metric::Data::Gauge(up)) = &metrics[0].data else {
            panic!()
        };
        assert_eq!(
            up.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.0))
        );
        let body: String = (0..25).map(|i| format!("g{i} 1\n")).collect();
        let e = parse(
            body.as_bytes(),
            ExpositionFormat::Text,
            &ParseLimits::default(),
        )
        .unwrap();
        let (requests, stats) = to_otlp(
            &target(),
            &ScrapeResult {
                time_unix_nano: 1,
                duration_seconds: 1.0,
                exposition: Some(&e),
                honor_timestamps: false,
            },
            10,
        );
        assert_eq!(requests.len(), 3);
        assert_eq!(stats.points, 28);
    }
}
