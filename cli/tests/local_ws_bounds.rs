//! WebSocket bounds in local mode (issue 10): server messages stay under 128 KB (a large snapshot
//! arrives in numbered parts), an oversized client message is closed with 1009, and a subscriber
//! that never reads is closed at its send-queue bound, whose bytes are then released.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use flowscope_cli::local::{self, LocalHandle};
use futures::{SinkExt, StreamExt};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::Value;
use support::{args, args_with, connect, get_json, http, next_json, now_nanos, Socket, WAIT};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

fn string_value(value: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value.into())),
    })
}

/// One gauge point for each of `series` distinct `instance` attributes of `service`/`metric`.
fn many_series_request(service: &str, metric: &str, series: usize, value: f64) -> Vec<u8> {
    let time = now_nanos();
    let points = (0..series)
        .map(|i| NumberDataPoint {
            attributes: vec![KeyValue {
                key: "instance".into(),
                value: string_value(&format!("instance-{i:05}")),
                ..Default::default()
            }],
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: string_value(service),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: metric.into(),
                    unit: "%".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
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

async fn send_series(handle: &LocalHandle, service: &str, metric: &str, series: usize, value: f64) {
    let request = many_series_request(service, metric, series, value);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http(
            handle.otlp_addr,
            "POST",
            "/v1/metrics",
            "application/x-protobuf",
            &request,
        )
        .await;
        // 503: the aggregator is behind (`--max-aggregator-lag`); come back as a client would.
        if status == 503 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        return;
    }
}

/// Subscribes to everything and reads one whole snapshot: its parts' texts and the series ids.
async fn read_snapshot(socket: &mut Socket) -> (Vec<String>, BTreeSet<String>) {
    socket
        .send(Message::text(r#"{"type":"subscribe"}"#))
        .await
        .unwrap();
    let mut texts = Vec::new();
    let mut series = BTreeSet::new();
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message within the wait")
            .expect("socket open")
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        if value["type"] != "snapshot" {
            continue;
        }
        assert_eq!(value["part"], texts.len() + 1, "parts arrive in order");
        for update in value["updates"].as_array().unwrap() {
            series.insert(update["series_id"].as_str().unwrap().to_string());
        }
        texts.push(text.to_string());
        if value["part"] == value["parts"] {
            return (texts, series);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_snapshot_arrives_in_parts_under_128_kb_and_reassembles_every_series() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    // 2,250 series, spread over services and metrics and sent 250 points at a time so no
    // per-request, per-service or per-metric limit is what this test measures.
    let mut expected = 0;
    for service in ["checkout", "billing", "search"] {
        for metric in ["cpu", "memory", "disk"] {
            send_series(&handle, service, metric, 250, 1.0).await;
            expected += 250;
        }
    }

    let mut socket = connect(&handle).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let (texts, series) = loop {
        let (texts, series) = read_snapshot(&mut socket).await;
        if series.len() >= expected {
            break (texts, series);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshot has {} of {expected} series",
            series.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(series.len(), expected, "every series once");
    let largest = texts.iter().map(String::len).max().unwrap_or(0);
    eprintln!(
        "snapshot of {expected} series: {} parts, {} bytes in all, largest part {largest} bytes",
        texts.len(),
        texts.iter().map(String::len).sum::<usize>()
    );
    assert!(texts.len() > 1, "{expected} series do not fit one message");
    for (i, text) in texts.iter().enumerate() {
        assert!(
            text.len() <= 128 * 1024,
            "part {} has {} bytes",
            i + 1,
            text.len()
        );
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_message_over_the_limit_is_closed_with_1009_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    let socket = connect(&handle).await;
    let (mut sink, mut stream) = socket.split();
    let huge = format!(
        r#"{{"type":"subscribe","services":["{}"]}}"#,
        "a".repeat(10 * 1024 * 1024)
    );
    // The server stops reading at the frame header, so this send may never finish: read meanwhile.
    let sender = tokio::spawn(async move {
        let _ = sink.send(Message::text(huge)).await;
        sink
    });
    let close = loop {
        let message = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a close frame within the wait")
            .expect("a close frame before the end of the stream")
            .expect("a close frame, not a connection reset");
        if let Message::Close(frame) = message {
            break frame.expect("the close frame carries a code");
        }
    };
    assert_eq!(close.code, CloseCode::Size);
    assert!(
        close.reason.contains("65536"),
        "reason names the limit: {:?}",
        close.reason
    );
    sender.abort();

    // The server goes on serving others.
    let mut other = connect(&handle).await;
    other
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut other).await["type"], "pong");
    handle.shutdown().await.unwrap();
}

async fn live_stats(handle: &LocalHandle) -> Value {
    let (status, stats) = get_json(handle, "/api/pipeline").await;
    assert_eq!(status, 200);
    stats["live"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_closed_at_the_send_queue_bound_and_its_bytes_released() {
    let limit: u64 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &["--ws-send-queue-bytes", &limit.to_string()],
    ))
    .await
    .unwrap();
    assert_eq!(live_stats(&handle).await["send_queue_limit_bytes"], limit);

    // A client with a tiny receive window, so the kernel holds little for it: it subscribes, then
    // never reads again.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(handle.http_addr).await.unwrap();
    let (mut slow, _) =
        tokio_tungstenite::client_async(format!("ws://{}/ws", handle.http_addr), stream)
            .await
            .unwrap();
    slow.send(Message::text(r#"{"type":"subscribe"}"#))
        .await
        .unwrap();

    // A client that reads keeps receiving throughout.
    let mut good = connect(&handle).await;
    good.send(Message::text(r#"{"type":"subscribe"}"#))
        .await
        .unwrap();
    let (received_tx, mut received_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = good.next().await {
            if let Message::Text(text) = message {
                let _ = received_tx.send(serde_json::from_str(text.as_str()).unwrap());
            }
        }
    });

    // Flushes of ~1,000 changed series (a few hundred KB each) until the slow client is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut value = 0.0;
    loop {
        value += 1.0;
        send_series(&handle, "flood", "cpu", 1000, value).await;
        let live = live_stats(&handle).await;
        assert!(
            live["queued_bytes_peak"].as_u64().unwrap() <= limit,
            "one client's queue went past the bound: {live}"
        );
        if live["closed_behind"].as_u64().unwrap() >= 1 {
            eprintln!("slow client closed after {value} flood requests: {live}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow client was never closed: {live}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Its queue is released: only the reading client is left, and what is queued drains to nothing.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let live = live_stats(&handle).await;
        assert!(
            live["queued_bytes_peak"].as_u64().unwrap() <= limit,
            "{live}"
        );
        if live["connections"] == 1 && live["queued_bytes"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed client's queue was not released: {live}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The reading client still gets the newest data after the slow one is gone (as an update, or
    // in a snapshot when a large flush overflowed its own queue).
    let newest = value + 1.0;
    send_series(&handle, "flood", "cpu", 10, newest).await;
    let received = tokio::time::timeout(WAIT, async {
        while let Some(message) = received_rx.recv().await {
            let has_newest = message["updates"]
                .as_array()
                .is_some_and(|updates| updates.iter().any(|u| u["max"].as_f64() == Some(newest)));
            if has_newest {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(received, Ok(true)),
        "the reading client still receives data (reader ended: {}): {}",
        reader.is_finished(),
        get_json(&handle, "/api/pipeline").await.1
    );

    // The slow client finds its connection closed once it reads again.
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = slow.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow client's connection was not closed");
    reader.abort();
    handle.shutdown().await.unwrap();
}

/// Issue 11: the hub keeps the newest buckets of at most `--live-snapshot-max-series` series for
/// snapshots, so its memory does not grow with every series seen within the hour. The series updated
/// least recently leave the snapshot first; their history stays in the store and the query API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_holds_at_most_its_bounded_series_the_newest_and_history_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &["--live-snapshot-max-series", "100"],
    ))
    .await
    .unwrap();
    // A subscriber sees the old series' flush go out: from then on they are less recent than
    // anything published later (recency is counted in flushes).
    let mut watcher = connect(&handle).await;
    watcher
        .send(Message::text(r#"{"type":"subscribe"}"#))
        .await
        .unwrap();
    send_series(&handle, "checkout", "old", 300, 1.0).await;
    loop {
        let message = next_json(&mut watcher).await;
        let carries_old = message["type"] == "metrics_update"
            && message["updates"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u["metric"] == "old"));
        if carries_old {
            break;
        }
    }
    send_series(&handle, "checkout", "new", 50, 2.0).await;

    let mut socket = connect(&handle).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let (new, old) = loop {
        let (texts, series) = read_snapshot(&mut socket).await;
        assert!(series.len() <= 100, "{} series in a snapshot", series.len());
        let mut of_metric: std::collections::HashMap<String, BTreeSet<String>> = Default::default();
        for text in &texts {
            let value: Value = serde_json::from_str(text).unwrap();
            for update in value["updates"].as_array().unwrap() {
                of_metric
                    .entry(update["metric"].as_str().unwrap().to_string())
                    .or_default()
                    .insert(update["series_id"].as_str().unwrap().to_string());
            }
        }
        let count = |metric: &str| of_metric.get(metric).map_or(0, BTreeSet::len);
        if count("new") == 50 {
            break (count("new"), count("old"));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshot has {} of the 50 newest series ({} series: {:?})",
            count("new"),
            series.len(),
            of_metric
                .iter()
                .map(|(m, s)| (m, s.len()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(new, 50);
    assert!(
        old <= 50,
        "the least recently updated series left first: {old} old ones held"
    );
    // Out of the snapshot is not out of the store: the old metric's history is whole.
    let (_, history) = get_json(&handle, "/api/services/checkout/metrics/old").await;
    let points: u64 = history["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["count"].as_u64())
        .sum();
    assert_eq!(points, 300);
    handle.shutdown().await.unwrap();
}
