//! Local mode end to end, in-process: OTLP in → query API and WebSocket out, resume after reconnect,
//! and data surviving a restart.

mod support;

use std::time::Duration;

use flowscope_cli::local;
use futures::SinkExt;
use serde_json::Value;
use support::{
    args, connect, create_silence, get_json, http, next_json, send_gauge, wait_for_loadgen_graph,
    Socket, WAIT,
};
use tokio_tungstenite::tungstenite::Message;

/// Reads messages until one of `kind` carries an update for `metric` whose max equals `value`.
async fn wait_for_update(socket: &mut Socket, kind: &str, metric: &str, value: f64) -> Value {
    loop {
        let message = next_json(socket).await;
        if message["type"] == kind
            && message["updates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["metric"] == metric && u["max"].as_f64() == Some(value))
        {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscribe_update_and_resume_from_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();

    let mut socket = connect(&handle).await;
    socket
        .send(Message::text(
            r#"{"type":"subscribe","services":["checkout"]}"#,
        ))
        .await
        .unwrap();
    let snapshot = next_json(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot");

    send_gauge(&handle, "checkout", "cpu", 41.0).await;
    send_gauge(&handle, "other", "cpu", 99.0).await;
    let update = wait_for_update(&mut socket, "metrics_update", "cpu", 41.0).await;
    let seq = update["seq"].as_u64().unwrap();
    assert!(
        update["updates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["service"] == "checkout"),
        "only the subscribed service is pushed: {update}"
    );

    // Disconnect, miss an update, reconnect with the last sequence number: the gap is replayed.
    // A second client stays subscribed: when the update reaches it, its flush is in the replay
    // buffer (a flush keeps its batch for replay before delivering it).
    let mut observer = connect(&handle).await;
    observer
        .send(Message::text(
            r#"{"type":"subscribe","services":["checkout"]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut observer).await["type"], "snapshot");
    socket.close(None).await.unwrap();
    send_gauge(&handle, "checkout", "cpu", 77.0).await;
    wait_for_update(&mut observer, "metrics_update", "cpu", 77.0).await;
    let mut socket = connect(&handle).await;
    socket
        .send(Message::text(format!(
            r#"{{"type":"subscribe","services":["checkout"],"last_seq":{seq}}}"#
        )))
        .await
        .unwrap();
    let catch_up = wait_for_update(&mut socket, "metrics_update", "cpu", 77.0).await;
    assert!(catch_up["seq"].as_u64().unwrap() > seq);

    // A sequence number the server never issued (it restarted) gets a snapshot instead.
    socket
        .send(Message::text(
            r#"{"type":"subscribe","services":["checkout"],"last_seq":999999}"#,
        ))
        .await
        .unwrap();
    let snapshot = wait_for_update(&mut socket, "snapshot", "cpu", 77.0).await;
    assert_eq!(snapshot["type"], "snapshot");

    socket
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    socket.send(Message::text("not json")).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "error");
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_serves_series_and_history_and_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    for value in [10.0, 30.0, 20.0] {
        send_gauge(&handle, "billing", "process.cpu.utilization", value).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let history = loop {
        let (status, history) = get_json(
            &handle,
            "/api/services/billing/metrics/process.cpu.utilization",
        )
        .await;
        if status == 200
            && history["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["count"].as_u64().unwrap())
                .sum::<u64>()
                == 3
        {
            break history;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history did not reach 3 points: {history}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(history["kind"], "gauge");
    let (_, services) = get_json(&handle, "/api/services").await;
    assert!(services["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "billing"));
    let (status, missing) = get_json(&handle, "/api/services/nope/metrics").await;
    assert_eq!(status, 404, "{missing}");
    let (status, bad) = get_json(&handle, "/api/services/billing/metrics/x?resolution=2m").await;
    assert_eq!(status, 400, "{bad}");
    handle.shutdown().await.unwrap();

    let handle = local::start(args(dir.path())).await.unwrap();
    let (status, again) = get_json(
        &handle,
        "/api/services/billing/metrics/process.cpu.utilization",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        again["buckets"], history["buckets"],
        "restart keeps every bucket"
    );
    // The three points may straddle a minute boundary, so fold whatever buckets hold them.
    let buckets = again["buckets"].as_array().unwrap();
    let field = |name: &'static str| buckets.iter().filter_map(move |b| b[name].as_f64());
    assert_eq!(field("min").fold(f64::INFINITY, f64::min), 10.0);
    assert_eq!(field("max").fold(f64::NEG_INFINITY, f64::max), 30.0);
    assert_eq!(field("sum").sum::<f64>(), 60.0);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_otlp_body_is_refused_with_413_and_a_status_without_being_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut local_args = args(dir.path());
    local_args.max_body_bytes = 1024;
    let handle = local::start(local_args).await.unwrap();
    let body = vec![0u8; 64 * 1024];
    let (status, reply) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/json",
        &body,
    )
    .await;
    assert_eq!(status, 413);
    let status_json: Value = serde_json::from_slice(&reply).unwrap();
    assert!(
        status_json["message"].as_str().unwrap().contains("1024"),
        "{status_json}"
    );
    // A small valid request on the same server still goes through.
    send_gauge(&handle, "small", "cpu", 1.0).await;
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_management_endpoint_posts_and_answers_410_for_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", handle.http_addr))
        .await
        .unwrap();
    let hello = next_json(&mut socket).await;
    let id = hello["connection_id"].as_str().unwrap().to_string();

    let (status, _) = http(
        handle.http_addr,
        "POST",
        &format!("/@connections/{id}"),
        "application/json",
        br#"{"hi":1}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(next_json(&mut socket).await["hi"], 1);
    let (status, info) = http(
        handle.http_addr,
        "GET",
        &format!("/@connections/{id}"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&info).contains("connectedAt"));
    let (status, _) = http(
        handle.http_addr,
        "DELETE",
        &format!("/@connections/{id}"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = http(
        handle.http_addr,
        "POST",
        &format!("/@connections/{id}"),
        "application/json",
        b"{}",
    )
    .await;
    assert_eq!(status, 410);
    let (status, _) = http(
        handle.http_addr,
        "GET",
        "/@connections/unknown",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(status, 410);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_routes_serve_rules_and_silences_and_query_routes_are_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    let (status, rules) = get_json(&handle, "/api/alert-rules").await;
    assert_eq!(status, 200);
    assert!(rules.to_string().contains("high-latency"), "{rules}");

    let id = create_silence(&handle, "checkout").await;
    let (_, listed) = get_json(&handle, "/api/silences").await;
    assert!(listed.to_string().contains(&id));
    let (status, _) = http(
        handle.http_addr,
        "DELETE",
        &format!("/api/silences/{id}"),
        "application/json",
        b"",
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");
    let (status, active) = get_json(&handle, "/api/alerts").await;
    assert_eq!(status, 200, "{active}");

    let (status, _) = http(
        handle.http_addr,
        "POST",
        "/api/services",
        "application/json",
        b"{}",
    )
    .await;
    assert_eq!(status, 405);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_traces_build_the_five_service_graph_and_stream_trace_events() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    let mut socket = connect(&handle).await;
    socket
        .send(Message::text(r#"{"type":"subscribe","services":[]}"#))
        .await
        .unwrap();

    let loadgen = flowscope_cli::loadgen::LoadgenArgs {
        endpoint: format!("http://{}", handle.otlp_addr),
        rate: 500,
        duration: Some(Duration::from_secs(4)),
        traces_per_second: 20.0,
        quiet: true,
        ..Default::default()
    };
    let summary = flowscope_cli::loadgen::run(loadgen).await.unwrap();
    assert!(summary.spans_sent > 0);

    let graph = wait_for_loadgen_graph(&handle, WAIT).await;
    let mut nodes: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["api", "auth", "cache", "database", "queue"]);

    // Live: at least one `trace` event with hops arrives for the subscriber.
    let trace = tokio::time::timeout(WAIT, async {
        loop {
            let message = next_json(&mut socket).await;
            if message["type"] == "trace" {
                return message;
            }
        }
    })
    .await
    .expect("a trace event");
    let first = &trace["traces"][0];
    assert!(first["trace_id"].as_str().unwrap().len() == 32, "{trace}");

    // A kept trace is readable with its critical path.
    let (_, recent) = get_json(&handle, "/api/services/api/traces?limit=1").await;
    let trace_id = recent["traces"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, tree) = get_json(&handle, &format!("/api/traces/{trace_id}")).await;
    assert_eq!(status, 200);
    assert!(tree.to_string().contains("critical"), "{tree}");
    handle.shutdown().await.unwrap();
}

/// RFC 3986 percent-encoding of one path segment: everything but the unreserved characters.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_plus_slash_percent_spaces_and_non_ascii_are_read_back() {
    const SERVICE: &str = "a+b/c 100% café";
    const METRIC: &str = "http.server/dur+ation 50% ü";
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    send_gauge(&handle, SERVICE, METRIC, 7.0).await;
    let path = format!(
        "/api/services/{}/metrics/{}",
        path_segment(SERVICE),
        path_segment(METRIC)
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let history = loop {
        let (status, history) = get_json(&handle, &path).await;
        if status == 200 && !history["buckets"].as_array().unwrap().is_empty() {
            break history;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} did not show the point: {status} {history}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(history["service"], SERVICE);
    assert_eq!(history["metric"], METRIC);
    assert_eq!(history["buckets"][0]["max"], 7.0);

    let (status, services) = get_json(&handle, "/api/services").await;
    assert_eq!(status, 200);
    assert_eq!(services["services"][0]["name"], SERVICE);
    // `+` may arrive unescaped in a path: it is a plus, not a space.
    let (status, metrics) = get_json(
        &handle,
        "/api/services/a+b%2Fc%20100%25%20caf%C3%A9/metrics",
    )
    .await;
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(metrics["metrics"][0]["name"], METRIC);
    handle.shutdown().await.unwrap();
}
