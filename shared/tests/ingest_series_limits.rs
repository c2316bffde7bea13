//! Active-series limits at the OTLP receiver: points of series beyond a limit are refused in the
//! partial success with a message naming the metric and the limit, the rest of the request is
//! written, and the refusals are counted.

use flowscope_core::testing::otlp as support;

use std::sync::Arc;

use flowscope_core::cardinality::{LimitKind, SeriesLimits};
use flowscope_core::embedded::MemorySeriesAdmission;
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::ports::SeriesAdmission;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Gauge, Metric};
use prost::Message;
use support::*;

const LIMITS: SeriesLimits = SeriesLimits {
    max_series_per_service: 8,
    max_series_per_metric: 5,
    active_window_seconds: 3600,
};

fn limited() -> (
    Ingest<RecordingSink>,
    Arc<RecordingSink>,
    Arc<MemorySeriesAdmission>,
) {
    let sink = RecordingSink::new(SinkBehaviour::Accept);
    let admission = Arc::new(MemorySeriesAdmission::new(LIMITS));
    let ingest = Ingest::new(sink.clone(), IngestLimits::default())
        .with_clock(|| T0)
        .with_series_admission(admission.clone());
    (ingest, sink, admission)
}

/// A gauge with one point per user id in `users`.
fn per_user(name: &str, users: std::ops::Range<u32>) -> Metric {
    metric(
        name,
        "1",
        metric::Data::Gauge(Gauge {
            data_points: users
                .map(|u| {
                    number_point(
                        vec![string_kv("user", &format!("u-{u}"))],
                        T0,
                        number_data_point::Value::AsDouble(1.0),
                    )
                })
                .collect(),
        }),
    )
}

fn request_of(
    service: &str,
    metrics: Vec<Metric>,
) -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    metrics_request(vec![string_kv("service.name", service)], metrics)
}

async fn send(
    ingest: &Ingest<RecordingSink>,
    service: &str,
    metrics: Vec<Metric>,
) -> ExportMetricsServiceResponse {
    let response = post_metrics_proto(ingest, &request_of(service, metrics)).await;
    assert_eq!(response.status, 200);
    ExportMetricsServiceResponse::decode(&response.body[..]).unwrap()
}

fn points_of(sink: &RecordingSink, service: &str, metric: &str) -> usize {
    sink.points()
        .iter()
        .filter(|p| p.series.service == service && p.series.metric == metric)
        .count()
}

#[tokio::test]
async fn points_of_series_beyond_the_metric_limit_are_refused_and_the_rest_is_written() {
    let (ingest, sink, admission) = limited();
    let response = send(
        &ingest,
        "api",
        vec![per_user("logins", 0..12), per_user("temperature", 0..1)],
    )
    .await;

    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 7, "12 series, limit 5");
    assert!(
        partial.error_message.contains(
            "metric \"logins\" of service \"api\" is at its limit of 5 active series; 7 points of new series refused"
        ),
        "{}",
        partial.error_message
    );
    assert_eq!(points_of(&sink, "api", "logins"), 5);
    assert_eq!(
        points_of(&sink, "api", "temperature"),
        1,
        "the rest of the request is kept"
    );
    assert_eq!(ingest.stats().accepted_data_points, 6);
    assert_eq!(ingest.stats().rejected_data_points, 7);

    // Admitted series keep writing; a fresh one of the full metric is refused.
    let response = send(&ingest, "api", vec![per_user("logins", 3..6)]).await;
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 1, "u-5 is new");
    assert_eq!(points_of(&sink, "api", "logins"), 5 + 2);

    // Counted per service and metric, with examples of the refused attribute sets.
    let report = admission.refusals().await.unwrap();
    assert_eq!(report.refusals.len(), 1);
    let logins = &report.refusals[0];
    assert_eq!(
        (logins.service.as_str(), logins.metric.as_str()),
        ("api", "logins")
    );
    assert_eq!(logins.refused_points, 8);
    assert_eq!(logins.limit, LimitKind::PerMetric);
    assert_eq!(logins.examples.len(), 5, "at most 5 examples");
    assert_eq!(
        logins.examples[0].get("user").map(String::as_str),
        Some("u-5")
    );
}

#[tokio::test]
async fn the_service_limit_refuses_new_series_of_any_metric_and_leaves_other_services_alone() {
    let (ingest, sink, admission) = limited();
    // 5 + 3 = the service limit of 8; the 4th series of `b` is over it.
    let response = send(
        &ingest,
        "api",
        vec![per_user("a", 0..5), per_user("b", 0..4)],
    )
    .await;
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains(
            "service \"api\" is at its limit of 8 active series; 1 points of new series of metric \"b\" refused"
        ),
        "{}",
        partial.error_message
    );
    let report = admission.refusals().await.unwrap();
    assert_eq!(report.refusals[0].limit, LimitKind::PerService);

    // A well-behaved neighbour is unaffected.
    let response = send(&ingest, "checkout", vec![per_user("a", 0..5)]).await;
    assert_eq!(response.partial_success, None, "{response:?}");
    assert_eq!(points_of(&sink, "checkout", "a"), 5);
}

#[tokio::test]
async fn without_admission_nothing_is_limited() {
    let (ingest, sink) = receiver_with(IngestLimits::default());
    let ingest = ingest.with_clock(|| T0);
    let response = send(&ingest, "api", vec![per_user("logins", 0..50)]).await;
    assert_eq!(response.partial_success, None);
    assert_eq!(points_of(&sink, "api", "logins"), 50);
}

#[tokio::test]
async fn spans_of_operations_beyond_the_limit_are_refused_and_the_rest_is_written() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};

    let (ingest, sink, admission) = limited();
    // 8 distinct span names (operations) of `api`: each is a RED operation series.
    let spans = (0..8u8)
        .map(|i| Span {
            trace_id: vec![7; 16],
            span_id: vec![i + 1; 8],
            name: format!("GET /user/{i}"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: T0 - 2_000_000,
            end_time_unix_nano: T0,
            ..Default::default()
        })
        .collect();
    let request_body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![string_kv("service.name", "api")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let response = ingest
        .handle(request(
            flowscope_core::ingest::Signal::Traces,
            PROTOBUF,
            None,
            request_body.encode_to_vec(),
        ))
        .await;
    assert_eq!(response.status, 200);
    let partial = ExportTraceServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_spans, 3, "8 operations, limit 5");
    assert!(
        partial.error_message.contains(
            "metric \"red.operation.requests\" of service \"api\" is at its limit of 5 active series; 3 spans of new series refused"
        ),
        "{}",
        partial.error_message
    );
    let names: Vec<String> = sink.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names.len(), 5);
    assert!(names.contains(&"GET /user/0".to_string()));
    let report = admission.refusals().await.unwrap();
    assert_eq!(report.refusals[0].metric, "red.operation.requests");
    assert_eq!(
        report.refusals[0].examples[0]
            .get("operation")
            .map(String::as_str),
        Some("GET /user/5")
    );
}
