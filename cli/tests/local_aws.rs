//! `flowscope local --aws` against emulators (DynamoDB Local + kinesis-mock, or LocalStack): OTLP →
//! Kinesis → the aggregator handler (a real KinesisEvent) → DynamoDB → fan-out through
//! aws-sdk-apigatewaymanagement → the local gateway's `@connections` → a WebSocket client.
//! Skipped (with a message) when no emulator endpoint is configured, unless
//! `FLOWSCOPE_REQUIRE_EMULATORS=1`, as in `scripts/aws-tests.sh`.
#![cfg(feature = "aws")]

use std::time::Duration;

use clap::Parser;
use flowscope_cli::local::{self, LocalArgs};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    local: LocalArgs,
}

fn emulators_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    let configured = set("AWS_ENDPOINT_URL")
        || (set("AWS_ENDPOINT_URL_DYNAMODB") && set("AWS_ENDPOINT_URL_KINESIS"));
    if !configured && std::env::var("FLOWSCOPE_REQUIRE_EMULATORS").as_deref() == Ok("1") {
        panic!("FLOWSCOPE_REQUIRE_EMULATORS=1 but no AWS_ENDPOINT_URL(_DYNAMODB/_KINESIS) is set");
    }
    configured
}

fn gauge_request(service: &str, value: f64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "cpu".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsDouble(value)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = String::new();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    response.push_str(&String::from_utf8_lossy(&buf));
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_aws_mode_pushes_updates_through_kinesis_dynamodb_and_connections() {
    if !emulators_configured() {
        eprintln!("SKIPPED: set AWS_ENDPOINT_URL (scripts/aws-tests.sh starts emulators)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("fs-local-{}", rand::random::<u32>());
    let args = Wrapper::parse_from([
        "test",
        "--aws",
        "--aws-prefix",
        &prefix,
        "--shards",
        "1",
        "--otlp-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--dashboard-dir",
        "/nonexistent",
    ])
    .local;
    let handle = local::start(args).await.unwrap();

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", handle.http_addr))
        .await
        .unwrap();
    socket
        .send(Message::text(
            r#"{"type":"subscribe","services":["kinesis-svc"]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        post(
            handle.otlp_addr,
            "/v1/metrics",
            &gauge_request("kinesis-svc", 42.0)
        )
        .await,
        200
    );

    let update = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else {
                panic!("socket closed")
            };
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            if message["type"] == "metrics_update" {
                return message;
            }
        }
    })
    .await
    .expect("a metrics_update through Kinesis, DynamoDB and @connections within 30 s");
    let first = &update["updates"][0];
    assert_eq!(first["service"], "kinesis-svc");
    assert_eq!(first["max"].as_f64(), Some(42.0));
    handle.shutdown().await.unwrap();
}
