//! RED metrics (rate, errors, duration) from spans, as ordinary series: they go into the same
//! 1m/5m/1h buckets as OTLP metrics, so the query API and live updates serve them unchanged.
//!
//! Per operation (span name + kind), from every span, with attributes `{operation, span.kind}`:
//! - [`OPERATION_REQUESTS`] (counter): 1 per span — its bucket `rate` is requests/s;
//! - [`OPERATION_ERRORS`] (counter): 1 per failed span — no write at all for a bucket without errors;
//! - [`OPERATION_DURATION`] (histogram, ms): the span's duration — count, p50/p95/p99.
//!
//! Per service, without attributes, from the service's *entry* spans only (SERVER, CONSUMER, or a
//! span without a parent), so that a service's request rate is not inflated by its own outgoing calls
//! and internal steps: [`REQUESTS`], [`ERRORS`], [`DURATION`]. They have their own metric names
//! because `GET /api/services/{s}/metrics/{m}` merges all series of a metric: sharing a name with the
//! per-operation series would count every entry span twice.
//!
//! A span failed when its status is ERROR or it carries an HTTP 5xx status code.

use crate::model::MetricKind;
use crate::spans::{Span, SpanKind};

use super::series::{Observation, SeriesIndex, SeriesSpec, SeriesTable};

pub const REQUESTS: &str = "red.requests";
pub const ERRORS: &str = "red.errors";
pub const DURATION: &str = "red.duration";
pub const OPERATION_REQUESTS: &str = "red.operation.requests";
pub const OPERATION_ERRORS: &str = "red.operation.errors";
pub const OPERATION_DURATION: &str = "red.operation.duration";
/// Attribute of the per-operation series holding the span name.
pub const OPERATION_ATTRIBUTE: &str = "operation";
/// Attribute of the per-operation series holding the span kind (`server`, `client` …).
pub const SPAN_KIND_ATTRIBUTE: &str = "span.kind";

pub use crate::spans::is_error;

/// Whether the span is a request *into* its service (counts for the service-level series).
pub fn is_entry(span: &Span) -> bool {
    matches!(span.kind, SpanKind::Server | SpanKind::Consumer) || span.parent_span_id.is_none()
}

pub fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

pub fn duration_ms(span: &Span) -> f64 {
    span.duration_nanos() as f64 / 1e6
}

/// Appends what `span` adds to the RED series (bucketed at the span's end).
pub fn observe(span: &Span, series: &mut SeriesTable, out: &mut Vec<Observation>) {
    let time = span.end_unix_nano;
    let failed = is_error(span);
    let duration = duration_ms(span);
    let operation = [
        (OPERATION_ATTRIBUTE, span.name.as_str()),
        (SPAN_KIND_ATTRIBUTE, kind_name(span.kind)),
    ];
    // The series this batch already interned for spans like this one; the others are interned
    // (their key hashed) once and remembered.
    let known = series.red_series(&span.service, span.kind, &span.name);
    let mut red = known;
    let mut emit = |slot: &mut Option<SeriesIndex>,
                    metric: &str,
                    attributes: &[(&str, &str)],
                    kind,
                    unit,
                    value| {
        let index = match *slot {
            Some(index) => {
                series.touch(index, time);
                index
            }
            None => {
                let spec = SeriesSpec {
                    service: &span.service,
                    metric,
                    attributes,
                    kind,
                    unit,
                };
                let index = series.intern(&spec, time);
                *slot = Some(index);
                index
            }
        };
        out.push(Observation {
            series: index,
            time_unix_nano: time,
            value,
        });
    };
    let [requests, durations, errors] = &mut red.operation;
    emit(
        requests,
        OPERATION_REQUESTS,
        &operation,
        MetricKind::Counter,
        "1",
        1.0,
    );
    emit(
        durations,
        OPERATION_DURATION,
        &operation,
        MetricKind::Histogram,
        "ms",
        duration,
    );
    if failed {
        emit(
            errors,
            OPERATION_ERRORS,
            &operation,
            MetricKind::Counter,
            "1",
            1.0,
        );
    }
    if is_entry(span) {
        let [requests, durations, errors] = &mut red.service;
        emit(requests, REQUESTS, &[], MetricKind::Counter, "1", 1.0);
        emit(
            durations,
            DURATION,
            &[],
            MetricKind::Histogram,
            "ms",
            duration,
        );
        if failed {
            emit(errors, ERRORS, &[], MetricKind::Counter, "1", 1.0);
        }
    }
    if red != known {
        series.set_red_series(&span.service, span.kind, &span.name, red);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attributes;
    use crate::spans::SpanStatus;

    fn span(kind: SpanKind, status: SpanStatus, attributes: &[(&str, &str)]) -> Span {
        Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: Some([3; 8]),
            service: "api".into(),
            name: "GET /x".into(),
            kind,
            start_unix_nano: 1_000_000_000,
            end_unix_nano: 1_250_000_000,
            status,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Attributes>(),
        }
    }

    #[test]
    fn status_error_and_http_5xx_fail_but_4xx_and_garbage_do_not() {
        assert!(is_error(&span(SpanKind::Server, SpanStatus::Error, &[])));
        assert!(is_error(&span(
            SpanKind::Server,
            SpanStatus::Unset,
            &[("http.response.status_code", "503")]
        )));
        assert!(is_error(&span(
            SpanKind::Client,
            SpanStatus::Ok,
            &[("http.status_code", "500")]
        )));
        assert!(!is_error(&span(
            SpanKind::Server,
            SpanStatus::Unset,
            &[("http.response.status_code", "404")]
        )));
        assert!(!is_error(&span(
            SpanKind::Server,
            SpanStatus::Unset,
            &[("http.response.status_code", "five hundred")]
        )));
    }

    #[test]
    fn an_outgoing_call_counts_for_its_operation_but_not_for_the_service() {
        let mut table = SeriesTable::new();
        let mut out = Vec::new();
        observe(
            &span(SpanKind::Client, SpanStatus::Error, &[]),
            &mut table,
            &mut out,
        );
        let metrics: Vec<&str> = out
            .iter()
            .map(|o| table.meta(o.series).key.metric.as_str())
            .collect();
        assert_eq!(
            metrics,
            [OPERATION_REQUESTS, OPERATION_DURATION, OPERATION_ERRORS]
        );
        let duration = out[1];
        assert_eq!(duration.value, 250.0);
        assert_eq!(duration.time_unix_nano, 1_250_000_000);
        let key = &table.meta(duration.series).key;
        assert_eq!(key.attributes[SPAN_KIND_ATTRIBUTE], "client");
        assert_eq!(key.attributes[OPERATION_ATTRIBUTE], "GET /x");
    }

    #[test]
    fn a_server_span_also_feeds_the_service_level_series() {
        let mut table = SeriesTable::new();
        let mut out = Vec::new();
        observe(
            &span(SpanKind::Server, SpanStatus::Ok, &[]),
            &mut table,
            &mut out,
        );
        let service_level: Vec<&str> = out
            .iter()
            .map(|o| &table.meta(o.series).key)
            .filter(|k| k.attributes.is_empty())
            .map(|k| k.metric.as_str())
            .collect();
        assert_eq!(service_level, [REQUESTS, DURATION]);
    }
}
