//! Receiver benchmark: decode throughput (protobuf and JSON) and stream bytes/records per million
//! points. Prints numbers; asserts nothing about time. Run: `cargo bench -p flowscope-core --bench ingest`.

#[path = "../tests/fixtures/otlp/support.rs"]
mod support;

use std::time::Instant;

use flowscope_core::ingest::Signal;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point, AggregationTemporality,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, Sum,
};
use prost::Message;
use support::*;

const COMBOS: usize = 10;

/// What one SDK export of a busy service looks like: 20 instruments × 10 attribute sets.
fn sdk_export(service: &str, tick: u64) -> ExportMetricsServiceRequest {
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let requests: Vec<ExportMetricsServiceRequest> = (0..50)
        .map(|i| sdk_export(&format!("service-{}", i % 5), i))
        .collect();
    let points_per_request = 200u64;
    let proto: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let proto_gz: Vec<Vec<u8>> = proto.iter().map(|b| gzip(b)).collect();
    let json: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();

    println!(
        "request size per point: protobuf {:.1} B, protobuf+gzip {:.1} B, JSON {:.1} B",
        avg(&proto) / points_per_request as f64,
        avg(&proto_gz) / points_per_request as f64,
        avg(&json) / points_per_request as f64
    );

    for (label, bodies, content_type, encoding) in [
        ("protobuf", &proto, PROTOBUF, None),
        ("protobuf+gzip", &proto_gz, PROTOBUF, Some("gzip")),
        ("JSON", &json, JSON, None),
    ] {
        let (ingest, sink) = receiver();
        let rounds = 10;
        let started = Instant::now();
        for _ in 0..rounds {
            for body in bodies.iter() {
                let response = ingest
                    .handle(request(
                        Signal::Metrics,
                        content_type,
                        encoding,
                        body.clone(),
                    ))
                    .await;
                assert_eq!(response.status, 200);
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stats = ingest.stats();
        let points = stats.accepted_data_points as f64;
        println!(
            "{label:>14}: {:>9.0} points/s ({:.1} µs/request); stream: {:.1} B/point, {:.0} records and {:.0} put_all calls per 1M points",
            points / elapsed,
            elapsed * 1e6 / (rounds * bodies.len()) as f64,
            stats.stream_bytes as f64 / points,
            stats.stream_records as f64 * 1e6 / points,
            sink.calls() as f64 * 1e6 / points,
        );
    }
}

fn avg(bodies: &[Vec<u8>]) -> f64 {
    bodies.iter().map(Vec::len).sum::<usize>() as f64 / bodies.len() as f64
}
