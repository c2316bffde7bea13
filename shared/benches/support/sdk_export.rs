//! What one SDK export of a busy service looks like, shared by the ingest and aggregate benchmarks.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point, AggregationTemporality,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, Sum,
};

use super::support::{metric, metrics_request, number_point, string_kv, T0};

/// Data points in one [`sdk_export`].
pub const POINTS_PER_EXPORT: u64 = 200;

pub const COMBOS: usize = 10;

/// What one SDK export of a busy service looks like: 20 instruments × 10 attribute sets.
pub fn sdk_export(service: &str, tick: u64) -> ExportMetricsServiceRequest {
    let time = T0 + tick * 10_000_000_000;
    let attrs = |i: usize| {
        vec![
            string_kv("http.route", &format!("/api/v1/resource/{i}")),
            string_kv(
                "http.request.method",
                if i.is_multiple_of(2) { "GET" } else { "POST" },
            ),
            string_kv("http.response.status_code", "200"),
        ]
    };
    let mut metrics: Vec<Metric> = Vec::new();
    for m in 0..8 {
        metrics.push(metric(
            &format!("requests.{m}"),
            "1",
            metric::Data::Sum(Sum {
                data_points: (0..COMBOS)
                    .map(|i| NumberDataPoint {
                        start_time_unix_nano: T0,
                        ..number_point(
                            attrs(i),
                            time,
                            number_data_point::Value::AsInt((tick * 7 + i as u64) as i64),
                        )
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
        ));
    }
    for m in 0..6 {
        metrics.push(metric(
            &format!("duration.{m}"),
            "ms",
            metric::Data::Histogram(Histogram {
                data_points: (0..COMBOS)
                    .map(|i| HistogramDataPoint {
                        attributes: attrs(i),
                        start_time_unix_nano: T0,
                        time_unix_nano: time,
                        count: 16 * (tick + 1),
                        sum: Some(1234.5),
                        bucket_counts: vec![tick + 1; 16],
                        explicit_bounds: vec![
                            0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                            2500.0, 5000.0, 7500.0, 10000.0,
                        ],
                        min: Some(0.5),
                        max: Some(9000.0),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ));
    }
    for m in 0..4 {
        metrics.push(metric(
            &format!("level.{m}"),
            "1",
            metric::Data::Gauge(Gauge {
                data_points: (0..COMBOS)
                    .map(|i| {
                        number_point(
                            attrs(i),
                            time,
                            number_data_point::Value::AsDouble(i as f64 * 1.5),
                        )
                    })
                    .collect(),
            }),
        ));
    }
    for m in 0..2 {
        metrics.push(metric(
            &format!("size.{m}"),
            "By",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: (0..COMBOS)
                    .map(|i| ExponentialHistogramDataPoint {
                        attributes: attrs(i),
                        time_unix_nano: time,
                        count: 40,
                        scale: 3,
                        positive: Some(Buckets {
                            offset: 10,
                            bucket_counts: vec![1; 40],
                        }),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Delta as i32,
            }),
        ));
    }
    let mut req = metrics_request(
        vec![
            string_kv("service.name", service),
            string_kv(
                "service.instance.id",
                "8f7c1f0e-0c7a-4c55-9a4e-3c3f0d5f2b1a",
            ),
            string_kv("host.name", "ip-10-0-1-23"),
            string_kv("telemetry.sdk.language", "python"),
            string_kv("telemetry.sdk.version", "1.27.0"),
        ],
        metrics,
    );
    req.resource_metrics[0].scope_metrics[0]
        .scope
        .as_mut()
        .unwrap()
        .name = "opentelemetry.instrumentation.flask".into();
    req
}
