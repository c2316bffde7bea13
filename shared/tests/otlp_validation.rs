//! Invalid data points are rejected one by one and reported through `partial_success`; the valid
//! points of the same request still reach the stream.

use flowscope_core::testing::otlp as support;

use flowscope_core::model::PointData;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, AggregationTemporality, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    Sum, Summary, SummaryDataPoint,
};
use prost::Message;
use support::*;

const DELTA: i32 = AggregationTemporality::Delta as i32;

fn valid_gauge(value: f64) -> Metric {
    metric(
        "ok",
        "1",
        metric::Data::Gauge(Gauge {
            data_points: vec![number_point(
                vec![],
                T0,
                number_data_point::Value::AsDouble(value),
            )],
        }),
    )
}

fn histogram_point(bounds: Vec<f64>, counts: Vec<u64>) -> HistogramDataPoint {
    HistogramDataPoint {
        time_unix_nano: T0,
        count: counts.iter().sum(),
        bucket_counts: counts,
        explicit_bounds: bounds,
        ..Default::default()
    }
}

fn histogram(points: Vec<HistogramDataPoint>) -> Metric {
    metric(
        "latency",
        "ms",
        metric::Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: DELTA,
        }),
    )
}

/// Sends `bad` (each rejected) next to one valid gauge; returns the partial success and checks the
/// valid point reached the stream.
async fn rejected_next_to_a_valid_point(bad: Vec<Metric>) -> ExportMetricsPartialSuccess {
    let mut metrics = bad;
    metrics.push(valid_gauge(42.0));
    let req = metrics_request(vec![string_kv("service.name", "api")], metrics);
    let (ingest, sink) = receiver();
    let response = post_metrics_proto(&ingest, &req).await;
    assert_eq!(response.status, 200);
    let points = sink.points();
    assert_eq!(
        points.len(),
        1,
        "only the valid point is written: {points:?}"
    );
    assert_eq!(points[0].data, PointData::Gauge(42.0));
    assert_eq!(ingest.stats().accepted_data_points, 1);
    ExportMetricsServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
        .expect("partial_success present when points were rejected")
}

#[tokio::test]
async fn histogram_with_the_wrong_number_of_buckets_is_rejected() {
    let partial = rejected_next_to_a_valid_point(vec![histogram(vec![histogram_point(
        vec![1.0, 2.0],
        vec![1, 1],
    )])])
    .await;
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial
            .error_message
            .contains("2 bucket counts for 2 explicit bounds (want 3)"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("\"latency\""),
        "names the metric: {}",
        partial.error_message
    );
}

#[tokio::test]
async fn metric_without_data_is_rejected() {
    let no_data = Metric {
        name: "empty".into(),
        data: None,
        ..Default::default()
    };
    let partial = rejected_next_to_a_valid_point(vec![no_data]).await;
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("\"empty\" has no data"),
        "{}",
        partial.error_message
    );
}

#[tokio::test]
async fn every_kind_of_invalid_point_is_counted() {
    let no_value = NumberDataPoint {
        time_unix_nano: T0,
        value: None,
        ..Default::default()
    };
    let no_time = number_point(vec![], 0, number_data_point::Value::AsDouble(1.0));
    let nan = number_point(vec![], T0, number_data_point::Value::AsDouble(f64::NAN));
    let bad = vec![
        metric(
            "gauges",
            "1",
            metric::Data::Gauge(Gauge {
                data_points: vec![no_value, no_time, nan],
            }),
        ),
        metric(
            "unspecified",
            "1",
            metric::Data::Sum(Sum {
                data_points: vec![number_point(vec![], T0, number_data_point::Value::AsInt(1))],
                aggregation_temporality: 0,
                is_monotonic: true,
            }),
        ),
        histogram(vec![
            histogram_point(vec![2.0, 1.0], vec![1, 1, 1]), // unsorted bounds
            HistogramDataPoint {
                count: 99,
                ..histogram_point(vec![1.0], vec![1, 1])
            }, // count mismatch
            HistogramDataPoint {
                sum: Some(f64::INFINITY),
                ..histogram_point(vec![1.0], vec![1, 1])
            },
            HistogramDataPoint {
                min: Some(5.0),
                max: Some(1.0),
                ..histogram_point(vec![], vec![2])
            },
        ]),
        metric(
            "exp",
            "1",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![
                    ExponentialHistogramDataPoint {
                        time_unix_nano: T0,
                        scale: 21,
                        ..Default::default()
                    },
                    ExponentialHistogramDataPoint {
                        time_unix_nano: T0,
                        count: 5,
                        positive: Some(Buckets {
                            offset: 0,
                            bucket_counts: vec![1, 1],
                        }),
                        ..Default::default()
                    },
                    ExponentialHistogramDataPoint {
                        time_unix_nano: T0,
                        count: 1,
                        positive: Some(Buckets {
                            offset: i32::MAX,
                            bucket_counts: vec![0, 1],
                        }),
                        ..Default::default()
                    },
                ],
                aggregation_temporality: DELTA,
            }),
        ),
        metric(
            "summary",
            "1",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: T0,
                    count: 1,
                    sum: 1.0,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 1.5,
                        value: 1.0,
                    }],
                    ..Default::default()
                }],
            }),
        ),
    ];
    let partial = rejected_next_to_a_valid_point(bad).await;
    assert_eq!(partial.rejected_data_points, 12);
    // The first reasons are listed; the count stays exact.
    for reason in [
        "has no value",
        "time_unix_nano is missing",
        "not finite",
        "unspecified",
    ] {
        assert!(
            partial.error_message.contains(reason),
            "{reason}: {}",
            partial.error_message
        );
    }
    assert!(
        partial.error_message.starts_with("rejected 12 data points"),
        "{}",
        partial.error_message
    );
}

#[tokio::test]
async fn points_flagged_no_recorded_value_are_accepted_but_carry_nothing() {
    let marker = NumberDataPoint {
        time_unix_nano: T0,
        flags: 1,
        value: None,
        ..Default::default()
    };
    let req = metrics_request(
        vec![string_kv("service.name", "api")],
        vec![
            metric(
                "stale",
                "1",
                metric::Data::Gauge(Gauge {
                    data_points: vec![marker],
                }),
            ),
            valid_gauge(1.0),
        ],
    );
    let (ingest, sink) = receiver();
    let response = post_metrics_proto(&ingest, &req).await;
    let decoded = ExportMetricsServiceResponse::decode(&response.body[..]).unwrap();
    assert_eq!(decoded.partial_success, None);
    assert_eq!(sink.points().len(), 1);
    assert_eq!(ingest.stats().accepted_data_points, 2);
}

#[tokio::test]
async fn a_point_too_large_for_a_stream_record_is_rejected_not_sent() {
    // 100 distinct attribute values of 4000 bytes: within the per-point attribute limits, over
    // 256 KiB together.
    let blobs = (0..100)
        .map(|i| string_kv(&format!("blob{i}"), &format!("{i:03}{}", "x".repeat(3997))))
        .collect();
    let huge = number_point(blobs, T0, number_data_point::Value::AsDouble(1.0));
    let partial = rejected_next_to_a_valid_point(vec![metric(
        "huge",
        "1",
        metric::Data::Gauge(Gauge {
            data_points: vec![huge],
        }),
    )])
    .await;
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial
            .error_message
            .contains("larger than a stream record"),
        "{}",
        partial.error_message
    );
}
