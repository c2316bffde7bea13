//! Receiver benchmark: decode throughput (protobuf and JSON) and stream bytes/records per million
//! points. Prints numbers; asserts nothing about time. Run: `cargo bench -p flowscope-core --bench ingest`.

/// The allocator the `flowscope` binary ships with, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/sdk_export.rs"]
mod sdk_export;
use flowscope_core::testing::otlp as support;

use std::time::Instant;

use flowscope_core::ingest::Signal;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use sdk_export::sdk_export;
use support::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let requests: Vec<ExportMetricsServiceRequest> = (0..50)
        .map(|i| sdk_export(&format!("service-{}", i % 5), i))
        .collect();
    let points_per_request = sdk_export::POINTS_PER_EXPORT;
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
