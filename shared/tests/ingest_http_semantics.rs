//! OTLP/HTTP status codes, content types, encodings and back-pressure of the receiver core.

use flowscope_core::testing::otlp as support;

use std::time::Duration;

use flowscope_core::ingest::{IngestLimits, Signal};
use flowscope_core::otlp::response::Status;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Gauge};
use prost::Message;
use serde_json::Value;
use support::*;

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn empty_body_is_200_with_an_empty_response_for_every_signal_and_format() {
    let (ingest, sink) = receiver();
    for signal in [Signal::Metrics, Signal::Traces, Signal::Logs] {
        let response = ingest
            .handle(request(signal, PROTOBUF, None, Vec::new()))
            .await;
        assert_eq!(response.status, 200, "{signal:?}");
        assert_eq!(response.content_type, PROTOBUF);
        match signal {
            Signal::Metrics => assert_eq!(
                ExportMetricsServiceResponse::decode(&response.body[..]).unwrap(),
                ExportMetricsServiceResponse::default()
            ),
            Signal::Traces => assert_eq!(
                ExportTraceServiceResponse::decode(&response.body[..]).unwrap(),
                ExportTraceServiceResponse::default()
            ),
            Signal::Logs => assert_eq!(
                ExportLogsServiceResponse::decode(&response.body[..]).unwrap(),
                ExportLogsServiceResponse::default()
            ),
        }

        let response = ingest.handle(request(signal, JSON, None, Vec::new())).await;
        assert_eq!(response.status, 200, "{signal:?}");
        assert_eq!(response.content_type, JSON);
        assert_eq!(json(&response.body), serde_json::json!({}));
    }
    // A gzip-wrapped empty payload is empty too.
    let response = ingest
        .handle(request(Signal::Metrics, PROTOBUF, Some("gzip"), gzip(b"")))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(sink.calls(), 0, "nothing to write is not a stream call");
}

#[tokio::test]
async fn malformed_protobuf_is_400_with_an_invalid_argument_status() {
    let (ingest, sink) = receiver();
    // Field 1 (resource_metrics) declared 100 bytes long, only 3 follow.
    let body = vec![0x0a, 100, 1, 2, 3];
    let response = ingest
        .handle(request(Signal::Metrics, PROTOBUF, None, body))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.content_type, PROTOBUF);
    let status = Status::decode(&response.body[..]).unwrap();
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("protobuf"), "{}", status.message);
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn malformed_json_is_400_with_the_reason_in_a_json_status() {
    let (ingest, sink) = receiver();
    let response = post_json(&ingest, Signal::Metrics, r#"{"resourceMetrics": ["#).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.content_type, JSON);
    let status = json(&response.body);
    assert_eq!(status["code"], 3);
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("invalid JSON"), "{message}");
    assert!(message.contains("EOF"), "says where it broke: {message}");

    let response = post_json(&ingest, Signal::Metrics, r#"{"resourceMetrics": "nope"}"#).await;
    assert_eq!(response.status, 400);
    let message = json(&response.body)["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("expected a sequence"), "{message}");

    let response = post_json(&ingest, Signal::Traces, "[1, 2]").await;
    assert_eq!(response.status, 400);
    let message = json(&response.body)["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("JSON object"), "{message}");
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let (ingest, sink) = receiver_with(IngestLimits {
        max_body_bytes: 1_000,
        max_decompressed_bytes: 10_000,
        ..IngestLimits::default()
    });
    let mut req = simple_request("api");
    let long = "x".repeat(2_000);
    req.resource_metrics[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(string_kv("padding", &long));
    let response = post_metrics_proto(&ingest, &req).await;
    assert_eq!(response.status, 413);
    let status = Status::decode(&response.body[..]).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("1000"),
        "names the limit: {}",
        status.message
    );
    assert_eq!(sink.calls(), 0);

    // The same request without padding is fine.
    let response = post_metrics_proto(&ingest, &simple_request("api")).await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn gzip_bomb_is_413_although_the_compressed_body_is_small() {
    let limits = IngestLimits {
        max_body_bytes: 64 * 1024,
        max_decompressed_bytes: 1024 * 1024,
        ..IngestLimits::default()
    };
    let (ingest, sink) = receiver_with(limits);
    let bomb = gzip(&vec![0u8; 16 * 1024 * 1024]);
    assert!(
        bomb.len() < limits.max_body_bytes,
        "bomb is {} bytes",
        bomb.len()
    );
    for content_type in [PROTOBUF, JSON] {
        let response = ingest
            .handle(request(
                Signal::Metrics,
                content_type,
                Some("gzip"),
                bomb.clone(),
            ))
            .await;
        assert_eq!(response.status, 413);
        assert_eq!(response.content_type, content_type);
    }
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn unsupported_content_type_or_encoding_is_415() {
    let (ingest, sink) = receiver();
    let body = simple_request("api").encode_to_vec();
    let response = ingest
        .handle(request(Signal::Metrics, "text/plain", None, body.clone()))
        .await;
    assert_eq!(response.status, 415);
    let status = Status::decode(&response.body[..]).unwrap();
    assert!(status.message.contains("text/plain"), "{}", status.message);

    let mut missing = request(Signal::Metrics, PROTOBUF, None, body.clone());
    missing.content_type = None;
    assert_eq!(ingest.handle(missing).await.status, 415);

    let response = ingest
        .handle(request(Signal::Metrics, PROTOBUF, Some("br"), body.clone()))
        .await;
    assert_eq!(response.status, 415);
    let status = Status::decode(&response.body[..]).unwrap();
    assert!(status.message.contains("br"), "{}", status.message);
    assert_eq!(sink.calls(), 0);

    // Parameters and letter case do not matter.
    let response = ingest
        .handle(request(
            Signal::Metrics,
            "Application/X-Protobuf; charset=utf-8",
            Some("identity"),
            body,
        ))
        .await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn invalid_gzip_is_400() {
    let (ingest, sink) = receiver();
    let response = ingest
        .handle(request(
            Signal::Metrics,
            JSON,
            Some("gzip"),
            b"not gzip at all".to_vec(),
        ))
        .await;
    assert_eq!(response.status, 400);
    assert!(json(&response.body)["message"]
        .as_str()
        .unwrap()
        .contains("gzip"));
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn protobuf_in_protobuf_out_and_json_in_json_out() {
    let (ingest, sink) = receiver();
    let response = post_metrics_proto(&ingest, &simple_request("api")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.content_type, PROTOBUF);
    let decoded = ExportMetricsServiceResponse::decode(&response.body[..]).unwrap();
    assert_eq!(
        decoded.partial_success, None,
        "nothing rejected: no partial_success"
    );

    let body = include_str!("fixtures/otlp/metrics_gauge.json");
    let response = post_json(&ingest, Signal::Metrics, body).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.content_type, JSON);
    assert_eq!(json(&response.body), serde_json::json!({}));

    let services: Vec<String> = sink
        .points()
        .into_iter()
        .map(|p| p.series.service.clone())
        .collect();
    assert_eq!(services, ["api", "json-service"]);
}

#[tokio::test]
async fn gzip_works_for_protobuf_and_json() {
    let (ingest, sink) = receiver();
    let proto = gzip(&simple_request("gz-proto").encode_to_vec());
    let response = ingest
        .handle(request(Signal::Metrics, PROTOBUF, Some("gzip"), proto))
        .await;
    assert_eq!(response.status, 200);
    let body = gzip(include_str!("fixtures/otlp/metrics_gauge.json").as_bytes());
    let response = ingest
        .handle(request(Signal::Metrics, JSON, Some("GZIP"), body))
        .await;
    assert_eq!(response.status, 200);
    let services: Vec<String> = sink
        .points()
        .into_iter()
        .map(|p| p.series.service.clone())
        .collect();
    assert_eq!(services, ["gz-proto", "json-service"]);
}

#[tokio::test]
async fn throttled_stream_is_429_with_retry_after_rounded_up() {
    let (ingest, sink) = receiver();
    sink.set(SinkBehaviour::Throttle(Duration::from_millis(1_500)));
    let response = post_metrics_proto(&ingest, &simple_request("api")).await;
    assert_eq!(response.status, 429);
    assert_eq!(response.retry_after_seconds, Some(2));
    assert_eq!(
        Status::decode(&response.body[..]).unwrap().code,
        8,
        "RESOURCE_EXHAUSTED"
    );
    assert_eq!(sink.calls(), 1);
    assert_eq!(
        ingest.stats().accepted_data_points,
        0,
        "a refused request accepted nothing"
    );
}

#[tokio::test]
async fn unavailable_stream_is_503_with_retry_after_and_a_retry_succeeds() {
    let (ingest, sink) = receiver();
    sink.set(SinkBehaviour::Unavailable);
    let body = include_str!("fixtures/otlp/metrics_gauge.json");
    let response = post_json(&ingest, Signal::Metrics, body).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.retry_after_seconds, Some(1));
    assert_eq!(response.content_type, JSON);
    assert_eq!(json(&response.body)["code"], 14, "UNAVAILABLE");
    assert!(sink.entries().is_empty());

    sink.set(SinkBehaviour::Accept);
    let response = post_json(&ingest, Signal::Metrics, body).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.retry_after_seconds, None);
    assert_eq!(
        sink.points().len(),
        1,
        "only the successful attempt reached the stream"
    );
}

#[tokio::test]
async fn a_request_whose_points_are_all_rejected_is_200_with_partial_success() {
    let (ingest, sink) = receiver();
    let req = metrics_request(
        vec![string_kv("service.name", "api")],
        vec![metric(
            "broken",
            "1",
            metric::Data::Gauge(Gauge {
                data_points: vec![
                    number_point(vec![], T0, number_data_point::Value::AsDouble(f64::NAN)),
                    number_point(
                        vec![],
                        T0,
                        number_data_point::Value::AsDouble(f64::INFINITY),
                    ),
                ],
            }),
        )],
    );
    let response = post_metrics_proto(&ingest, &req).await;
    assert_eq!(response.status, 200);
    let partial = ExportMetricsServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial.error_message.contains("not finite"),
        "{}",
        partial.error_message
    );
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn logs_are_counted_and_reported_as_not_kept_in_the_partial_success() {
    let (ingest, sink) = receiver();
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord::default(),
                    LogRecord::default(),
                    LogRecord::default(),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let response = ingest
        .handle(request(Signal::Logs, PROTOBUF, None, req.encode_to_vec()))
        .await;
    assert_eq!(response.status, 200);
    let partial = ExportLogsServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
        .expect("the exporter is told its logs were not stored");
    assert_eq!(partial.rejected_log_records, 3);
    assert!(
        partial.error_message.contains("not stored"),
        "{}",
        partial.error_message
    );
    let json_logs =
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]}"#;
    let response = post_json(&ingest, Signal::Logs, json_logs).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        json(&response.body)["partialSuccess"]["rejectedLogRecords"],
        "1"
    );
    assert_eq!(ingest.stats().log_records, 4);
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn stats_count_points_and_stream_writes_of_successful_requests() {
    let (ingest, sink) = receiver();
    post_metrics_proto(&ingest, &simple_request("a")).await;
    post_metrics_proto(&ingest, &simple_request("b")).await;
    ingest
        .handle(request(Signal::Metrics, "text/plain", None, vec![1]))
        .await;
    let stats = ingest.stats();
    assert_eq!(stats.accepted_data_points, 2);
    assert_eq!(stats.rejected_data_points, 0);
    assert_eq!(stats.stream_records, 2);
    let bytes: usize = sink.entries().iter().map(|e| e.data.len()).sum();
    assert_eq!(stats.stream_bytes, bytes as u64);
    assert_eq!(stats.refused_requests, 1);
}

#[tokio::test]
async fn the_receiver_works_behind_a_trait_object_and_its_future_is_send() {
    use flowscope_core::ingest::Ingest;
    use flowscope_core::ports::StreamSink;
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    let sink = RecordingSink::new(SinkBehaviour::Accept);
    let dynamic: std::sync::Arc<dyn StreamSink> = sink.clone();
    let ingest = Ingest::new(dynamic, IngestLimits::default()).with_clock(|| NOW);
    // Servers (axum, lambda_http) spawn the handler future on a multi-threaded runtime.
    let body = simple_request("api").encode_to_vec();
    let response = assert_send(ingest.handle(request(Signal::Metrics, PROTOBUF, None, body))).await;
    assert_eq!(response.status, 200);
    assert_eq!(sink.points().len(), 1);
}

/// Points and spans stamped further ahead of the receiver's clock than `max_clock_skew` are
/// rejected in the partial success with the reason; the rest of the request is written.
#[tokio::test]
async fn timestamps_too_far_ahead_of_the_receivers_clock_are_rejected_and_the_rest_kept() {
    let (ingest, sink) = receiver();
    // The receiver's clock reads T0; 10 minutes of skew are accepted by default.
    let ingest = ingest.with_clock(|| T0);
    let minute = 60_000_000_000;
    let req = metrics_request(
        vec![string_kv("service.name", "api")],
        vec![metric(
            "queue.depth",
            "1",
            metric::Data::Gauge(Gauge {
                data_points: vec![
                    number_point(vec![], T0, number_data_point::Value::AsDouble(1.0)),
                    number_point(
                        vec![],
                        T0 + 10 * minute,
                        number_data_point::Value::AsDouble(2.0),
                    ),
                    // A client clock an hour ahead.
                    number_point(
                        vec![],
                        T0 + 60 * minute,
                        number_data_point::Value::AsDouble(3.0),
                    ),
                ],
            }),
        )],
    );
    let response = post_metrics_proto(&ingest, &req).await;
    assert_eq!(response.status, 200);
    let partial = ExportMetricsServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
        .expect("one point rejected");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial
            .error_message
            .contains("3600 s ahead of the receiver's clock (at most 600 s"),
        "{}",
        partial.error_message
    );
    let kept: Vec<u64> = sink.points().iter().map(|p| p.time_unix_nano).collect();
    assert_eq!(
        kept,
        vec![T0, T0 + 10 * minute],
        "the in-range points are written"
    );

    let span = |id: &str, end: u64| {
        format!(
            r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{id}","name":"GET /","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{end}"}}"#,
            end - 1_000_000
        )
    };
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},"scopeSpans":[{{"spans":[{},{}]}}]}}]}}"#,
        span("eee19b7ec3c1b174", T0),
        span("eee19b7ec3c1b175", T0 + 24 * 60 * minute)
    );
    let (ingest, sink) = receiver();
    let ingest = ingest.with_clock(|| T0);
    let response = post_json(&ingest, Signal::Traces, &body).await;
    assert_eq!(response.status, 200);
    let partial = &json(&response.body)["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "1", "{partial}");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("eee19b7ec3c1b175") && message.contains("86400 s ahead"),
        "{message}"
    );
    let spans = sink.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].end_unix_nano, T0);
}
