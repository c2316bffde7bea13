//! OTLP/JSON as SDKs send it: lowerCamelCase, int64 as strings or numbers, hex ids, enums as numbers
//! or names, and "NaN"/"Infinity" doubles that must not fail the whole request.

use flowscope_core::testing::otlp as support;

use std::collections::BTreeMap;

use flowscope_core::ingest::Signal;
use flowscope_core::model::{PointData, Temporality};
use flowscope_core::spans::{SpanKind, SpanStatus};
use prost::Message;
use serde_json::Value;
use support::*;

const START: u64 = 1_700_000_000_000_000_000;
const T1: u64 = 1_700_000_060_000_000_000;

fn partial(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["partialSuccess"].clone()
}

#[tokio::test]
async fn an_sdk_style_request_decodes_every_metric_type() {
    let (ingest, sink) = receiver();
    let response = post_json(
        &ingest,
        Signal::Metrics,
        include_str!("fixtures/otlp/metrics_sdk.json"),
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&response.body).unwrap(),
        serde_json::json!({})
    );

    let points = sink.points();
    let data: Vec<(String, PointData)> = points
        .iter()
        .map(|p| (p.series.metric.clone(), p.data.clone()))
        .collect();
    let cumulative = Temporality::Cumulative {
        start_time_unix_nano: START,
    };
    assert_eq!(
        data,
        vec![
            // int64 as a string and as a number, both ways.
            (
                "orders".into(),
                PointData::Sum {
                    value: 42.0,
                    monotonic: true,
                    temporality: cumulative
                }
            ),
            (
                "orders".into(),
                PointData::Sum {
                    value: 50.0,
                    monotonic: true,
                    temporality: cumulative
                }
            ),
            (
                // Enum given by name; counts as strings and numbers mixed.
                "checkout.duration".into(),
                PointData::Histogram {
                    temporality: Temporality::Delta,
                    count: 6,
                    sum: Some(251.5),
                    min: Some(3.0),
                    max: Some(120.25),
                    bounds: vec![10.0, 100.5],
                    bucket_counts: vec![1, 2, 3],
                }
            ),
            (
                "payload.size".into(),
                PointData::ExponentialHistogram {
                    temporality: Temporality::Delta,
                    count: 4,
                    sum: Some(10.0),
                    min: None,
                    max: None,
                    scale: -2,
                    zero_count: 1,
                    positive_offset: -3,
                    positive_counts: vec![2, 1],
                    negative_offset: 0,
                    negative_counts: vec![],
                }
            ),
            ("gc.pause".into(), PointData::Gauge(0.03)),
            ("gc.pause".into(), PointData::Gauge(0.2)),
            (
                "gc.pause".into(),
                PointData::Summary {
                    count: 10,
                    sum: 0.5
                }
            ),
            ("cpu.usage".into(), PointData::Gauge(0.75)),
        ]
    );
    assert_eq!(points[0].time_unix_nano, T1);
    assert_eq!(points[1].time_unix_nano, T1 + 60_000_000_000);
    let expected: BTreeMap<String, String> = [
        ("region", "eu"),
        ("tier", "2"),
        ("express", "false"),
        ("weight", "1.5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(points[0].series.attributes, expected);
    assert_eq!(points[0].series.service, "shop");
    assert_eq!(points[0].unit, "{order}");
    assert_eq!(points[4].series.attributes["quantile"], "0.5");
    assert_eq!(points[5].series.attributes["quantile"], "1");
}

#[tokio::test]
async fn json_and_protobuf_of_the_same_data_give_the_same_points() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    let text = include_str!("fixtures/otlp/metrics_sdk.json");
    let (json_ingest, json_sink) = receiver();
    post_json(&json_ingest, Signal::Metrics, text).await;

    // The same document through opentelemetry-proto's serde (after our test-side enum fix-up),
    // re-encoded as protobuf.
    let fixed = text.replace("\"AGGREGATION_TEMPORALITY_DELTA\"", "1");
    let req: ExportMetricsServiceRequest = serde_json::from_str(&fixed).unwrap();
    let (proto_ingest, proto_sink) = receiver();
    let response = proto_ingest
        .handle(request(
            Signal::Metrics,
            PROTOBUF,
            None,
            req.encode_to_vec(),
        ))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(json_sink.points(), proto_sink.points());
}

#[tokio::test]
async fn nan_and_infinity_reject_only_their_points() {
    let (ingest, sink) = receiver();
    let response = post_json(
        &ingest,
        Signal::Metrics,
        include_str!("fixtures/otlp/metrics_non_finite.json"),
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.content_type, JSON);
    let partial = partial(&response.body);
    // Gauge NaN and -Infinity, histogram sum NaN and bound Infinity, summary quantile Infinity.
    assert_eq!(partial["rejectedDataPoints"], "5");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(message.contains("non-finite asDouble (NaN)"), "{message}");
    assert!(message.contains("non-finite sum (NaN)"), "{message}");

    let points = sink.points();
    assert_eq!(points.len(), 2, "{points:?}");
    assert_eq!(points[0].series.metric, "temperature");
    assert_eq!(points[0].data, PointData::Gauge(21.5));
    // An attribute spelled "Infinity" is text, not a reason to drop the point.
    assert_eq!(points[0].series.attributes["calibration"], "Infinity");
    assert_eq!(points[1].series.metric, "latency");
    assert!(
        matches!(points[1].data, PointData::Histogram { count: 2, sum: Some(s), .. } if s == 7.0)
    );
    assert_eq!(ingest.stats().accepted_data_points, 2);
    assert_eq!(ingest.stats().rejected_data_points, 5);
}

#[tokio::test]
async fn invalid_json_points_and_metrics_without_data_are_partial_success() {
    let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
        {"name":"h","histogram":{"aggregationTemporality":1,"dataPoints":[
            {"timeUnixNano":"1700000060000000000","count":"2","bucketCounts":["1","1"],"explicitBounds":[1,2]}]}},
        {"name":"nodata","unit":"1"},
        {"name":"badtemporality","sum":{"aggregationTemporality":"SOMETIMES","dataPoints":[
            {"timeUnixNano":"1700000060000000000","asInt":"1"},{"timeUnixNano":"1700000060000000000","asInt":"2"}]}},
        {"name":"badint","gauge":{"dataPoints":[
            {"timeUnixNano":"soon","asInt":"1"},
            {"timeUnixNano":"1700000060000000000","asInt":"seven"},
            {"timeUnixNano":"1700000060000000000","asInt":"7"}]}}
    ]}]}]}"#;
    let (ingest, sink) = receiver();
    let response = post_json(&ingest, Signal::Metrics, body).await;
    assert_eq!(response.status, 200);
    let partial = partial(&response.body);
    // h: 1, nodata: 1, badtemporality: its 2 points, badint: 2.
    assert_eq!(partial["rejectedDataPoints"], "6");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("2 bucket counts for 2 explicit bounds"),
        "{message}"
    );
    assert!(message.contains("\"nodata\" has no data"), "{message}");
    assert!(
        message.contains("\"badtemporality\": its sum data is invalid"),
        "{message}"
    );
    let points = sink.points();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].series.metric, "badint");
    assert_eq!(points[0].data, PointData::Gauge(7.0));
    assert_eq!(points[0].series.service, "unknown_service");
}

#[tokio::test]
async fn json_spans_use_hex_ids_and_enum_numbers_or_names() {
    let (ingest, sink) = receiver();
    let response = post_json(
        &ingest,
        Signal::Traces,
        include_str!("fixtures/otlp/traces.json"),
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let partial = partial(&response.body);
    assert_eq!(partial["rejectedSpans"], "3");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("invalid span"),
        "bad hex is reported: {message}"
    );
    assert!(message.contains("all zeroes"), "{message}");
    assert!(message.contains("span id must be 8 bytes"), "{message}");

    let spans = sink.spans();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].trace_id_hex(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(spans[0].span_id_hex(), "eee19b7ec3c1b174");
    assert_eq!(spans[0].kind, SpanKind::Server);
    assert_eq!(spans[0].status, SpanStatus::Ok);
    assert_eq!(spans[0].start_unix_nano, 1_700_000_060_000_000_000);
    assert_eq!(spans[0].duration_nanos(), 1_000_000_000);
    assert_eq!(spans[0].attributes["http.response.status_code"], "200");
    assert_eq!(spans[0].service, "frontend");
    assert_eq!(
        spans[1]
            .parent_span_id
            .map(|p| flowscope_core::spans::hex(&p))
            .as_deref(),
        Some("eee19b7ec3c1b174")
    );
    assert_eq!(spans[1].kind, SpanKind::Client);
    assert_eq!(spans[1].status, SpanStatus::Error);
    assert_eq!(
        sink.entries()[0].partition_key,
        "5b8efff798038103d269b633813fc60c"
    );
}
