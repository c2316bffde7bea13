//! Metric and label names as the OpenTelemetry–Prometheus compatibility specification maps them:
//! `service.name` → `job`, `service.instance.id` → `instance`, other attribute names with every
//! character outside `[a-zA-Z0-9_]` replaced by `_`; metric names likewise, plus the unit suffix
//! (`_seconds`, `_bytes`, …) and `_total` for monotonic counters. Histograms are also reachable as
//! `<name>_count`, `<name>_sum` and `<name>_bucket`.

use std::collections::BTreeMap;

use crate::model::{MetricKind, SeriesMeta};

/// A series' labels, Prometheus-style (`__name__` included where a name applies).
pub type Labels = BTreeMap<String, String>;

pub const NAME: &str = "__name__";

/// What a metric name selects of a series' buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The metric itself: a counter's increase, else the mean of the observations (the sketch is kept).
    Plain,
    /// `_count`: how many observations.
    Count,
    /// `_sum`: the sum of the observations.
    Sum,
    /// `_bucket`: the distribution (the sketch), for `histogram_quantile`; its value is the count.
    Bucket,
}

/// `[a-zA-Z0-9_:]` kept, everything else `_`, runs of `_` collapsed, no leading digit.
pub fn sanitize(name: &str, allow_colon: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        let ok = ch.is_ascii_alphanumeric() || ch == '_' || (allow_colon && ch == ':');
        let ch = if ok { ch } else { '_' };
        if ch == '_' && out.ends_with('_') {
            continue;
        }
        out.push(ch);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label name from an attribute name (also used on the names written in matchers and `by (…)`,
/// so `service.name` and `job` select the same thing).
pub fn label_name(attribute: &str) -> String {
    match attribute {
        "service.name" | "service_name" => "job".to_string(),
        "service.instance.id" | "service_instance_id" => "instance".to_string(),
        NAME => NAME.to_string(),
        other => sanitize(other, false),
    }
}

fn unit_suffix(unit: &str) -> Option<String> {
    let unit = unit.trim();
    if unit.is_empty() || unit.starts_with('{') {
        return None;
    }
    let word = |u: &str| -> Option<&'static str> {
        Some(match u {
            "d" => "days",
            "h" => "hours",
            "min" => "minutes",
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "GiBy" => "gibibytes",
            "KBy" => "kilobytes",
            "MBy" => "megabytes",
            "GBy" => "gigabytes",
            "m" => "meters",
            "V" => "volts",
            "A" => "amperes",
            "J" => "joules",
            "W" => "watts",
            "g" => "grams",
            "Cel" => "celsius",
            "Hz" => "hertz",
            "%" => "percent",
            _ => return None,
        })
    };
    if let Some((num, per)) = unit.split_once('/') {
        let per = match per {
            "s" => "second",
            "m" => "minute",
            "h" => "hour",
            "d" => "day",
            _ => return None,
        };
        let num = word(num)
            .map(str::to_string)
            .unwrap_or_else(|| sanitize(num, false));
        return Some(format!("{num}_per_{per}"));
    }
    word(unit).map(str::to_string)
}

/// The specification's Prometheus name of a metric (without the histogram suffixes).
pub fn metric_name(metric: &str, unit: &str, kind: MetricKind) -> String {
    let mut name = sanitize(metric, true);
    if let Some(suffix) = unit_suffix(unit) {
        if !name.ends_with(&suffix) {
            name = format!("{name}_{suffix}");
        }
    } else if unit == "1" && kind == MetricKind::Gauge && !name.ends_with("_ratio") {
        name.push_str("_ratio");
    }
    if kind == MetricKind::Counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

fn is_distribution(kind: MetricKind) -> bool {
    matches!(
        kind,
        MetricKind::Histogram | MetricKind::ExponentialHistogram | MetricKind::Summary
    )
}

/// Every name a series answers to, with what each selects. The first is its canonical name.
pub fn names(meta: &SeriesMeta) -> Vec<(String, Variant)> {
    let base = metric_name(&meta.key.metric, &meta.unit, meta.kind);
    let mut out = vec![(base.clone(), Variant::Plain)];
    let bare = sanitize(&meta.key.metric, true);
    if bare != base {
        out.push((bare.clone(), Variant::Plain));
    }
    if is_distribution(meta.kind) {
        for stem in [&base, &bare] {
            out.push((format!("{stem}_count"), Variant::Count));
            out.push((format!("{stem}_sum"), Variant::Sum));
            out.push((format!("{stem}_bucket"), Variant::Bucket));
        }
        out.dedup();
    }
    out
}

/// The names listed by `/api/v1/label/__name__/values` for a series (canonical ones only).
pub fn listed_names(meta: &SeriesMeta) -> Vec<String> {
    let base = metric_name(&meta.key.metric, &meta.unit, meta.kind);
    if is_distribution(meta.kind) {
        vec![
            base.clone(),
            format!("{base}_count"),
            format!("{base}_sum"),
            format!("{base}_bucket"),
        ]
    } else {
        vec![base]
    }
}

/// A series' labels without `__name__`: `job`, then its attributes renamed. Attributes whose names
/// collide after renaming are joined with `;` (in attribute-name order), as the specification says.
pub fn series_labels(meta: &SeriesMeta) -> Labels {
    let mut labels = Labels::new();
    for (k, v) in &meta.key.attributes {
        let name = label_name(k);
        if name == "job" || name == NAME {
            continue;
        }
        labels
            .entry(name)
            .and_modify(|old: &mut String| {
                old.push(';');
                old.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    labels.insert("job".to_string(), meta.key.service.clone());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attributes, SeriesKey};

    fn meta(metric: &str, unit: &str, kind: MetricKind, attrs: &[(&str, &str)]) -> SeriesMeta {
        let key = SeriesKey {
            service: "checkout".into(),
            metric: metric.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Attributes>(),
        };
        SeriesMeta {
            id: key.id(),
            key,
            kind,
            unit: unit.into(),
            last_seen_unix_s: 0,
        }
    }

    #[test]
    fn names_follow_the_compatibility_spec() {
        assert_eq!(
            metric_name("http.server.duration", "ms", MetricKind::Histogram),
            "http_server_duration_milliseconds"
        );
        assert_eq!(
            metric_name("http.requests", "{request}", MetricKind::Counter),
            "http_requests_total"
        );
        assert_eq!(
            metric_name("cpu.utilization", "1", MetricKind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name("net.io", "By/s", MetricKind::Gauge),
            "net_io_bytes_per_second"
        );
        let m = meta(
            "http.server.duration",
            "ms",
            MetricKind::Histogram,
            &[("http.route", "/a"), ("service.instance.id", "i-1")],
        );
        let names: Vec<String> = names(&m).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"http_server_duration_milliseconds_bucket".to_string()));
        assert!(names.contains(&"http_server_duration".to_string()));
        let labels = series_labels(&m);
        assert_eq!(labels.get("job").map(String::as_str), Some("checkout"));
        assert_eq!(labels.get("instance").map(String::as_str), Some("i-1"));
        assert_eq!(labels.get("http_route").map(String::as_str), Some("/a"));
        assert_eq!(label_name("service.name"), "job");
    }

    #[test]
    fn colliding_attribute_names_are_joined() {
        let m = meta("x", "", MetricKind::Gauge, &[("a.b", "1"), ("a_b", "2")]);
        assert_eq!(
            series_labels(&m).get("a_b").map(String::as_str),
            Some("1;2")
        );
    }
}
