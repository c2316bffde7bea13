//! Every OTLP metric type, resources and spans normalized into the domain model, end to end through
//! the receiver and the stream record codec.

use flowscope_core::testing::otlp as support;

use std::collections::BTreeMap;

use flowscope_core::ingest::Signal;
use flowscope_core::model::{MetricKind, MetricPoint, PointData, Temporality};
use flowscope_core::spans::{SpanKind, SpanStatus};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, AggregationTemporality, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use support::*;

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn ingest_metrics(
    req: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
) -> Vec<MetricPoint> {
    let (ingest, sink) = receiver();
    let response = post_metrics_proto(&ingest, req).await;
    assert_eq!(response.status, 200);
    assert_eq!(ingest.stats().rejected_data_points, 0);
    sink.points()
}

#[tokio::test]
async fn gauges_keep_value_unit_time_and_flattened_attributes() {
    let req = metrics_request(
        vec![string_kv("service.name", "api")],
        vec![metric(
            "queue.depth",
            "{item}",
            metric::Data::Gauge(Gauge {
                data_points: vec![
                    number_point(
                        vec![
                            string_kv("queue", "emails"),
                            kv("shard", any_value::Value::IntValue(-3)),
                            kv("ratio", any_value::Value::DoubleValue(0.25)),
                            kv("primary", any_value::Value::BoolValue(true)),
                            kv(
                                "tags",
                                any_value::Value::ArrayValue(ArrayValue {
                                    values: vec![
                                        AnyValue {
                                            value: Some(any_value::Value::StringValue("a".into())),
                                        },
                                        AnyValue {
                                            value: Some(any_value::Value::IntValue(2)),
                                        },
                                    ],
                                }),
                            ),
                            kv(
                                "owner",
                                any_value::Value::KvlistValue(KeyValueList {
                                    values: vec![string_kv("team", "core")],
                                }),
                            ),
                            kv("raw", any_value::Value::BytesValue(vec![1, 2, 3])),
                        ],
                        T0,
                        number_data_point::Value::AsInt(7),
                    ),
                    number_point(vec![], T0 + 1, number_data_point::Value::AsDouble(-2.5)),
                ],
            }),
        )],
    );
    let points = ingest_metrics(&req).await;
    assert_eq!(points.len(), 2);
    let p = &points[0];
    assert_eq!(p.series.service, "api");
    assert_eq!(p.series.metric, "queue.depth");
    assert_eq!(p.unit, "{item}");
    assert_eq!(p.time_unix_nano, T0);
    assert_eq!(p.data, PointData::Gauge(7.0));
    assert_eq!(
        p.series.attributes,
        attrs(&[
            ("queue", "emails"),
            ("shard", "-3"),
            ("ratio", "0.25"),
            ("primary", "true"),
            ("tags", r#"["a",2]"#),
            ("owner", r#"{"team":"core"}"#),
            ("raw", "AQID"),
        ])
    );
    assert_eq!(points[1].data, PointData::Gauge(-2.5));
    assert!(points[1].series.attributes.is_empty());
}

#[tokio::test]
async fn sums_keep_monotonicity_and_temporality_without_converting_cumulative() {
    let start = T0 - 60_000_000_000;
    let cumulative_point = |time, value| NumberDataPoint {
        start_time_unix_nano: start,
        ..number_point(vec![], time, number_data_point::Value::AsInt(value))
    };
    use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;
    let req = metrics_request(
        vec![string_kv("service.name", "api")],
        vec![
            metric(
                "http.requests",
                "1",
                metric::Data::Sum(Sum {
                    data_points: vec![cumulative_point(T0, 10), cumulative_point(T0 + 10, 15)],
                    aggregation_temporality: CUMULATIVE,
                    is_monotonic: true,
                }),
            ),
            metric(
                "connections",
                "1",
                metric::Data::Sum(Sum {
                    data_points: vec![number_point(
                        vec![],
                        T0,
                        number_data_point::Value::AsDouble(-4.0),
                    )],
                    aggregation_temporality: DELTA,
                    is_monotonic: false,
                }),
            ),
        ],
    );
    let points = ingest_metrics(&req).await;
    let cumulative = Temporality::Cumulative {
        start_time_unix_nano: start,
    };
    assert_eq!(
        points[0].data,
        PointData::Sum {
            value: 10.0,
            monotonic: true,
            temporality: cumulative
        }
    );
    // Still the running total: the aggregator, not ingest, turns cumulative into deltas.
    assert_eq!(
        points[1].data,
        PointData::Sum {
            value: 15.0,
            monotonic: true,
            temporality: cumulative
        }
    );
    assert_eq!(points[0].data.kind(), MetricKind::Counter);
    assert_eq!(
        points[2].data,
        PointData::Sum {
            value: -4.0,
            monotonic: false,
            temporality: Temporality::Delta
        }
    );
    assert_eq!(points[2].data.kind(), MetricKind::UpDownCounter);
}

#[tokio::test]
async fn histograms_keep_their_shape() {
    let req = metrics_request(
        vec![string_kv("service.name", "api")],
        vec![
            metric(
                "http.server.duration",
                "ms",
                metric::Data::Histogram(Histogram {
                    data_points: vec![
                        HistogramDataPoint {
                            start_time_unix_nano: T0 - 5,
                            time_unix_nano: T0,
                            count: 6,
                            sum: Some(120.5),
                            bucket_counts: vec![1, 2, 3],
                            explicit_bounds: vec![10.0, 100.0],
                            min: Some(1.0),
                            max: Some(300.0),
                            ..Default::default()
                        },
                        // No buckets at all is legal OTLP: one bucket spanning everything.
                        HistogramDataPoint {
                            time_unix_nano: T0,
                            count: 4,
                            sum: None,
                            ..Default::default()
                        },
                    ],
                    aggregation_temporality: CUMULATIVE,
                }),
            ),
            metric(
                "payload.size",
                "By",
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        time_unix_nano: T0,
                        count: 7,
                        sum: Some(-3.0),
                        scale: 3,
                        zero_count: 1,
                        positive: Some(Buckets {
                            offset: -2,
                            bucket_counts: vec![1, 0, 2],
                        }),
                        negative: Some(Buckets {
                            offset: 5,
                            bucket_counts: vec![3],
                        }),
                        min: Some(-9.0),
                        max: Some(4.0),
                        ..Default::default()
                    }],
                    aggregation_temporality: DELTA,
                }),
            ),
        ],
    );
    let points = ingest_metrics(&req).await;
    assert_eq!(
        points[0].data,
        PointData::Histogram {
            temporality: Temporality::Cumulative {
                start_time_unix_nano: T0 - 5
            },
            count: 6,
            sum: Some(120.5),
            min: Some(1.0),
            max: Some(300.0),
            bounds: vec![10.0, 100.0],
            bucket_counts: vec![1, 2, 3],
        }
    );
    assert_eq!(
        points[1].data,
        PointData::Histogram {
            temporality: Temporality::Cumulative {
                start_time_unix_nano: 0
            },
            count: 4,
            sum: None,
            min: None,
            max: None,
            bounds: vec![],
            bucket_counts: vec![4],
        }
    );
    assert_eq!(
        points[2].data,
        PointData::ExponentialHistogram {
            temporality: Temporality::Delta,
            count: 7,
            sum: Some(-3.0),
            min: Some(-9.0),
            max: Some(4.0),
            scale: 3,
            zero_count: 1,
            positive_offset: -2,
            positive_counts: vec![1, 0, 2],
            negative_offset: 5,
            negative_counts: vec![3],
        }
    );
    assert_eq!(points[2].unit, "By");
}

#[tokio::test]
async fn summaries_become_count_and_sum_plus_one_gauge_per_quantile() {
    let req = metrics_request(
        vec![string_kv("service.name", "legacy")],
        vec![metric(
            "rpc.latency",
            "s",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes: vec![string_kv("method", "Get")],
                    time_unix_nano: T0,
                    count: 100,
                    sum: 12.5,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 0.1,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 0.9,
                        },
                    ],
                    ..Default::default()
                }],
            }),
        )],
    );
    let (ingest, sink) = receiver();
    assert_eq!(post_metrics_proto(&ingest, &req).await.status, 200);
    assert_eq!(
        ingest.stats().accepted_data_points,
        1,
        "one OTLP data point"
    );
    let points = sink.points();
    let by_quantile: BTreeMap<Option<String>, PointData> = points
        .iter()
        .map(|p| (p.series.attributes.get("quantile").cloned(), p.data.clone()))
        .collect();
    assert_eq!(points.len(), 3);
    assert_eq!(
        by_quantile[&None],
        PointData::Summary {
            count: 100,
            sum: 12.5
        }
    );
    assert_eq!(by_quantile[&Some("0.5".to_string())], PointData::Gauge(0.1));
    assert_eq!(
        by_quantile[&Some("0.99".to_string())],
        PointData::Gauge(0.9)
    );
    for p in &points {
        assert_eq!(p.series.metric, "rpc.latency");
        assert_eq!(p.series.attributes["method"], "Get");
        assert_eq!(p.time_unix_nano, T0);
        assert_eq!(p.unit, "s");
    }
}

#[tokio::test]
async fn a_resource_without_service_name_is_unknown_service() {
    let gauge = |resource| {
        metrics_request(
            resource,
            simple_request("x").resource_metrics[0].scope_metrics[0]
                .metrics
                .clone(),
        )
    };
    let points = ingest_metrics(&gauge(vec![string_kv("host.name", "h1")])).await;
    assert_eq!(points[0].series.service, "unknown_service");
    let points = ingest_metrics(&gauge(vec![string_kv("process.executable.name", "java")])).await;
    assert_eq!(points[0].series.service, "unknown_service:java");
    let points = ingest_metrics(&gauge(vec![string_kv("service.name", "")])).await;
    assert_eq!(points[0].series.service, "unknown_service");

    // No resource at all.
    let mut req = simple_request("x");
    req.resource_metrics[0].resource = None;
    assert_eq!(
        ingest_metrics(&req).await[0].series.service,
        "unknown_service"
    );
}

#[tokio::test]
async fn source_identifies_the_instance_while_the_series_merges_across_instances() {
    let instance = |id: &str, reorder: bool| {
        let mut resource = vec![
            string_kv("service.name", "api"),
            string_kv("service.instance.id", id),
            string_kv("host.name", "h"),
        ];
        if reorder {
            resource.reverse();
        }
        let mut req = simple_request("api");
        req.resource_metrics[0].resource = Some(Resource {
            attributes: resource,
            ..Default::default()
        });
        req
    };
    let a = ingest_metrics(&instance("a", false)).await.remove(0);
    let a_reordered = ingest_metrics(&instance("a", true)).await.remove(0);
    let b = ingest_metrics(&instance("b", false)).await.remove(0);
    assert_eq!(
        a.source, a_reordered.source,
        "attribute order does not matter"
    );
    assert_ne!(a.source, b.source, "two instances are two sources");
    assert_eq!(a.series.id(), b.series.id(), "but one series");

    let mut other_scope = instance("a", false);
    other_scope.resource_metrics[0].scope_metrics[0]
        .scope
        .as_mut()
        .unwrap()
        .version = "2.0".into();
    let c = ingest_metrics(&other_scope).await.remove(0);
    assert_ne!(
        a.source, c.source,
        "the scope version is part of the source"
    );
}

fn otlp_span(trace_id: Vec<u8>, span_id: Vec<u8>, name: &str) -> Span {
    Span {
        trace_id,
        span_id,
        name: name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 2_000_000,
        attributes: vec![kv(
            "http.response.status_code",
            any_value::Value::IntValue(503),
        )],
        status: Some(Status {
            code: status::StatusCode::Error as i32,
            message: "boom".into(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn spans_are_normalized_and_invalid_ids_are_rejected() {
    let trace = vec![0xab; 16];
    let mut child = otlp_span(trace.clone(), vec![2; 8], "SELECT");
    child.parent_span_id = vec![1; 8];
    child.kind = span::SpanKind::Client as i32;
    child.status = None;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    otlp_span(trace.clone(), vec![1; 8], "GET /cart"),
                    child,
                    otlp_span(vec![0; 16], vec![3; 8], "all-zero trace id"),
                    otlp_span(vec![1; 15], vec![4; 8], "short trace id"),
                    otlp_span(trace.clone(), vec![5; 7], "short span id"),
                    otlp_span(trace.clone(), vec![0; 8], "all-zero span id"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (ingest, sink) = receiver();
    let response = ingest
        .handle(request(Signal::Traces, PROTOBUF, None, req.encode_to_vec()))
        .await;
    assert_eq!(response.status, 200);
    let partial = ExportTraceServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 4);
    assert!(
        partial.error_message.contains("trace id must be 16 bytes"),
        "{}",
        partial.error_message
    );

    let entries = sink.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].partition_key, "ab".repeat(16));
    let spans = sink.spans();
    assert_eq!(spans.len(), 2);
    let root = &spans[0];
    assert_eq!(root.service, "checkout");
    assert_eq!(root.name, "GET /cart");
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.status, SpanStatus::Error);
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.duration_nanos(), 2_000_000);
    assert_eq!(root.attributes["http.response.status_code"], "503");
    assert_eq!(spans[1].parent_span_id, Some([1; 8]));
    assert_eq!(spans[1].kind, SpanKind::Client);
    assert_eq!(spans[1].status, SpanStatus::Unset);
}
