//! `flowscope local --aws` against emulators (DynamoDB Local + kinesis-mock, or LocalStack): OTLP →
//! Kinesis → the aggregator handler (a real KinesisEvent) → DynamoDB → fan-out through
//! aws-sdk-apigatewaymanagement → the local gateway's `@connections` → a WebSocket client.
//! Built only with the `emulator-tests` feature (`scripts/aws-tests.sh`); fails when no emulator
//! endpoint is configured.
#![cfg(feature = "aws")]

mod support;

use std::time::Duration;

use flowscope_cli::local;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use support::{args_with, create_silence, gauge_request, get_json, http, wait_for_loadgen_graph};
use tokio_tungstenite::tungstenite::Message;

fn emulators_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    let configured = set("AWS_ENDPOINT_URL")
        || (set("AWS_ENDPOINT_URL_DYNAMODB") && set("AWS_ENDPOINT_URL_KINESIS"));
    assert!(
        configured,
        "no AWS_ENDPOINT_URL(_DYNAMODB/_KINESIS) is set: scripts/aws-tests.sh starts the emulators"
    );
    configured
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_aws_mode_pushes_updates_through_kinesis_dynamodb_and_connections() {
    if !emulators_configured() {
        eprintln!("SKIPPED: set AWS_ENDPOINT_URL (scripts/aws-tests.sh starts emulators)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("fs-local-{}", rand::random::<u32>());
    let aws_flags = ["--aws", "--aws-prefix", &prefix, "--shards", "1"];
    let handle = local::start(args_with(dir.path(), &aws_flags))
        .await
        .unwrap();

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", handle.http_addr))
        .await
        .unwrap();
    socket
        .send(Message::text(
            r#"{"type":"subscribe","services":["kinesis-svc"]}"#,
        ))
        .await
        .unwrap();
    let (status, _) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/x-protobuf",
        &gauge_request("kinesis-svc", "cpu", 42.0),
    )
    .await;
    assert_eq!(status, 200);

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

    // The load generator's traces through Kinesis and DynamoDB make the five-service graph.
    let loadgen = flowscope_cli::loadgen::LoadgenArgs {
        endpoint: format!("http://{}", handle.otlp_addr),
        rate: 200,
        duration: Some(Duration::from_secs(4)),
        traces_per_second: 20.0,
        quiet: true,
        ..Default::default()
    };
    flowscope_cli::loadgen::run(loadgen).await.unwrap();
    // A deadline, not a speed: against LocalStack (10–40 ms more per call) on a busy 2-core machine,
    // draining the loadgen's spans through Kinesis and DynamoDB took over 30 s.
    wait_for_loadgen_graph(&handle, Duration::from_secs(90)).await;

    // Alert state lives in DynamoDB too: a silence made through the API is still there for a
    // second run on the same tables with an empty data dir.
    let id = create_silence(&handle, "kinesis-svc").await;
    handle.shutdown().await.unwrap();

    let other_dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(other_dir.path(), &aws_flags))
        .await
        .unwrap();
    let (status, silences) = get_json(&handle, "/api/silences").await;
    assert_eq!(status, 200);
    assert!(
        silences.to_string().contains(&id),
        "silence {id} not found in DynamoDB: {silences}"
    );
    handle.shutdown().await.unwrap();
}

/// With `--token`, this gateway's `@connections` needs the credential too; fan-out through
/// aws-sdk-apigatewaymanagement sends it (`x-api-key`), so a subscriber with `?token=` still gets
/// its updates, and a handshake without the token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_aws_mode_with_a_token_still_fans_out_through_connections() {
    if !emulators_configured() {
        eprintln!("SKIPPED: set AWS_ENDPOINT_URL (scripts/aws-tests.sh starts emulators)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("fs-local-{}", rand::random::<u32>());
    let flags = [
        "--aws",
        "--aws-prefix",
        &prefix,
        "--shards",
        "1",
        "--token",
        "aws-path-token",
    ];
    let handle = local::start(args_with(dir.path(), &flags)).await.unwrap();
    let ws = format!("ws://{}/ws", handle.http_addr);
    assert!(
        tokio_tungstenite::connect_async(ws.as_str()).await.is_err(),
        "a handshake without the token is refused"
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws}?token=aws-path-token"))
        .await
        .unwrap();
    socket
        .send(Message::text(
            r#"{"type":"subscribe","services":["token-svc"]}"#,
        ))
        .await
        .unwrap();
    let (status, _) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/x-protobuf",
        &gauge_request("token-svc", "cpu", 7.0),
    )
    .await;
    assert_eq!(status, 200);
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
    .expect("a metrics_update through @connections (with the credential) within 30 s");
    assert_eq!(update["updates"][0]["service"], "token-svc");
    handle.shutdown().await.unwrap();
}
