//! OTLP/HTTP protobuf request bodies, as an OpenTelemetry SDK would send them.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// An `ExportMetricsServiceRequest` from `service` with one gauge point per value of `metric`, all at
/// `time_unix_s` (each point is one observation of its bucket).
pub fn gauge_request(service: &str, metric: &str, values: &[f64], time_unix_s: i64) -> Vec<u8> {
    let points: Vec<(Option<String>, f64)> = values.iter().map(|v| (None, *v)).collect();
    export_request(service, metric, &points, time_unix_s)
}

/// Like [`gauge_request`], with `per_route` points on each of `routes` series (`route` attribute).
pub fn gauge_request_per_route(
    service: &str,
    metric: &str,
    routes: usize,
    per_route: usize,
    time_unix_s: i64,
) -> Vec<u8> {
    let points: Vec<(Option<String>, f64)> = (0..routes)
        .flat_map(|route| (0..per_route).map(move |i| (Some(format!("/r{route}")), i as f64)))
        .collect();
    export_request(service, metric, &points, time_unix_s)
}

fn export_request(
    service: &str,
    metric: &str,
    points: &[(Option<String>, f64)],
    time_unix_s: i64,
) -> Vec<u8> {
    let time_unix_nano = u64::try_from(time_unix_s).unwrap_or(0) * 1_000_000_000;
    let data_points = points
        .iter()
        .map(|(route, value)| NumberDataPoint {
            attributes: route.iter().map(|r| string_attribute("route", r)).collect(),
            time_unix_nano,
            value: Some(number_data_point::Value::AsDouble(*value)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_attribute("service.name", service),
                    string_attribute("service.instance.id", "e2e-1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "flowscope-e2e".to_string(),
                    ..Default::default()
                }),
                metrics: vec![Metric {
                    name: metric.to_string(),
                    unit: "1".to_string(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// One trace as two instrumented services' OpenTelemetry SDKs export it (one request, a resource
/// per service): `frontend`'s server span `GET /checkout` (the root) with a client span calling
/// `checkout`, whose server span is the client span's child. All spans end `end_unix_ns`.
pub fn two_service_trace_request(
    frontend: &str,
    checkout: &str,
    trace_id: [u8; 16],
    end_unix_ns: u64,
) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
    let span = |id: u8, parent: Option<u8>, name: &str, kind: SpanKind, ms: u64, offset_ms: u64| {
        let start = end_unix_ns - (ms + offset_ms) * 1_000_000;
        Span {
            trace_id: trace_id.to_vec(),
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.to_string(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + ms * 1_000_000,
            ..Default::default()
        }
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            service_spans(
                frontend,
                vec![
                    span(1, None, "GET /checkout", SpanKind::Server, 40, 0),
                    span(2, Some(1), "POST /pay", SpanKind::Client, 30, 5),
                ],
            ),
            service_spans(
                checkout,
                vec![span(3, Some(2), "POST /pay", SpanKind::Server, 25, 7)],
            ),
        ],
    }
    .encode_to_vec()
}

/// Several traces through a chain of services in one request, as instrumented services export them:
/// per trace, `services[0]`'s root server span, then for each next service a client span in the
/// caller and a server span in the callee (its child): `2·n − 1` spans for `n` services. Trace ids
/// are `first_trace_id`, `first_trace_id + 1`, …; every trace ends at `end_unix_ns`.
pub fn chain_traces_request(
    services: &[String],
    first_trace_id: u128,
    traces: usize,
    end_unix_ns: u64,
) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); services.len()];
    for t in 0..traces {
        let trace_id = (first_trace_id + t as u128).to_be_bytes().to_vec();
        let span_id = |i: usize| (((t as u64) << 16) | (i as u64 + 1)).to_be_bytes().to_vec();
        let span = |id: usize, parent: Option<usize>, name: String, kind: SpanKind, depth: u64| {
            let start = end_unix_ns - (100 - depth * 10) * 1_000_000;
            Span {
                trace_id: trace_id.clone(),
                span_id: span_id(id),
                parent_span_id: parent.map(span_id).unwrap_or_default(),
                name,
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end_unix_ns - depth * 10 * 1_000_000,
                ..Default::default()
            }
        };
        per_service[0].push(span(0, None, "GET /".into(), SpanKind::Server, 0));
        for (hop, callee) in services.iter().enumerate().skip(1) {
            let caller_server = if hop == 1 { 0 } else { 2 * (hop - 1) };
            let client = 2 * hop - 1;
            let depth = hop as u64;
            per_service[hop - 1].push(span(
                client,
                Some(caller_server),
                format!("call {callee}"),
                SpanKind::Client,
                depth,
            ));
            per_service[hop].push(span(
                2 * hop,
                Some(client),
                format!("serve {callee}"),
                SpanKind::Server,
                depth,
            ));
        }
    }
    ExportTraceServiceRequest {
        resource_spans: services
            .iter()
            .zip(per_service)
            .map(|(service, spans)| service_spans(service, spans))
            .collect(),
    }
    .encode_to_vec()
}

/// One service's spans as its SDK exports them: a resource with `service.name` and one scope.
fn service_spans(
    service: &str,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) -> opentelemetry_proto::tonic::trace::v1::ResourceSpans {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string_attribute("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "flowscope-e2e".to_string(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}
