//! Down means down, end to end (issue 13 item 4): a registered instance's health endpoint is probed
//! every second; when it stops, the shipped `instance-down` rule fires through the alert state
//! machine, the service's health score drops and is stored as a series; when it returns, the alert
//! resolves. Takes two to four minutes: alert rules read whole minutes.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flowscope_cli::local::{self, LocalHandle};
use futures::SinkExt;
use serde_json::{json, Value};
use support::{args_with, connect, get_json, http, next_json, Socket};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const SERVICE: &str = "payments";
const INSTANCE: &str = "p-1";
const RULE: &str = "instance-down";
/// Each phase (probes seen, fire, resolve) waits at most this long.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// A tiny health endpoint: `GET /healthz` → 200 "ok", until its task is aborted.
async fn start_health_endpoint(addr: SocketAddr) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// Reads the socket until `accept` takes a message (or the phase limit passes).
async fn wait_for(
    socket: &mut Socket,
    what: &str,
    mut accept: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no {what} within {PHASE_LIMIT:?}"
        );
        let message = next_json(socket).await;
        if accept(&message) {
            return message;
        }
    }
}

fn is_alert(message: &Value, kind: &str) -> bool {
    message["type"] == "alert"
        && message["rule"] == RULE
        && message["service"] == SERVICE
        && message["kind"] == kind
}

async fn active_alerts(handle: &LocalHandle) -> Vec<Value> {
    let (status, body) = get_json(handle, "/api/alerts").await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_health_endpoint_fires_instance_down_and_its_return_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped rules (compiled in: the test runs outside the repository root).
    let handle = local::start(args_with(
        dir.path(),
        &["--probe-interval", "1s", "--probe-timeout", "1s"],
    ))
    .await
    .unwrap();
    let (health_addr, endpoint) = start_health_endpoint("127.0.0.1:0".parse().unwrap()).await;
    let mut socket = connect(&handle).await;
    socket
        .send(Message::text(
            json!({"type": "subscribe", "services": [SERVICE]}).to_string(),
        ))
        .await
        .unwrap();

    let (status, body) = http(
        handle.http_addr,
        "POST",
        "/api/registry/instances",
        "application/json",
        json!({
            "service": SERVICE, "instance": INSTANCE, "lease_seconds": 3600,
            "health_url": format!("http://{health_addr}/healthz"),
        })
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    // Healthy: probes succeed, and the live health score is 100.
    let healthy = wait_for(&mut socket, "a health score of 100", |m| {
        m["type"] == "health" && m["service"] == SERVICE && m["score"] == 100.0
    })
    .await;
    assert_eq!(healthy["status"], "healthy");
    assert_eq!(healthy["inputs"]["probe_availability"], 1.0);

    // Down: stop the endpoint (connections are refused). The score drops at once...
    endpoint.abort();
    let _ = endpoint.await;
    let dropped = wait_for(&mut socket, "a dropping health score", |m| {
        m["type"] == "health"
            && m["service"] == SERVICE
            && m["score"].as_f64().is_some_and(|s| s < 80.0)
    })
    .await;
    assert_ne!(dropped["status"], "healthy", "{dropped}");
    // ...and the shipped rule fires through the state machine within a minute or two.
    let fired = wait_for(&mut socket, "a firing instance-down alert", |m| {
        is_alert(m, "firing")
    })
    .await;
    let fingerprint = fired["fingerprint"].as_str().unwrap().to_string();
    assert!(fired["value"].as_f64().unwrap() < 100.0, "{fired}");
    let active = active_alerts(&handle).await;
    let listed = active
        .iter()
        .find(|a| a["fingerprint"] == fingerprint.as_str())
        .unwrap_or_else(|| panic!("the firing alert is listed: {active:?}"));
    assert_eq!(listed["labels"]["service.instance.id"], INSTANCE);

    // The probe results and scores are ordinary series of the service.
    let (status, metrics) = get_json(&handle, &format!("/api/services/{SERVICE}/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    let names: Vec<&str> = metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for expected in [
        "flowscope.probe.up",
        "flowscope.probe.duration",
        "flowscope.health.score",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }

    // Back: the same address answers again; the alert resolves.
    let (_, endpoint) = start_health_endpoint(health_addr).await;
    let resolved = wait_for(&mut socket, "a resolved instance-down alert", |m| {
        is_alert(m, "resolved")
    })
    .await;
    assert_eq!(resolved["fingerprint"], fingerprint.as_str());
    assert!(
        !active_alerts(&handle)
            .await
            .iter()
            .any(|a| a["fingerprint"] == fingerprint.as_str() && a["status"] == "firing"),
        "a resolved alert is no longer firing"
    );
    endpoint.abort();
    handle.shutdown().await.unwrap();
}
