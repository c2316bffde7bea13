//! The service registry in local mode (issue 13 items 1 and 4): registration with a lease, heartbeats
//! that keep an instance, lease expiry that removes it, deregistration, instances learned from OTLP
//! resource attributes, the limits, and `registry` events over the WebSocket.

mod support;

use std::time::{Duration, Instant};

use flowscope_cli::local::{self, LocalHandle};
use futures::SinkExt;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::{json, Value};
use support::{args_with, connect, get_json, http, next_json, now_nanos, Socket};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for a condition that should hold within a few seconds.
const DEADLINE: Duration = Duration::from_secs(20);

async fn send(handle: &LocalHandle, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, body) = http(
        handle.http_addr,
        method,
        path,
        "application/json",
        body.to_string().as_bytes(),
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn instances(handle: &LocalHandle, service: &str) -> Vec<Value> {
    let (status, body) = get_json(handle, "/api/registry/instances").await;
    assert_eq!(status, 200, "{body}");
    body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["service"] == service)
        .cloned()
        .collect()
}

/// Reads the socket until a `registry` event with `action` for `instance` arrives.
async fn wait_for_registry_event(socket: &mut Socket, action: &str, instance: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "no `{action}` registry event for {instance} within {DEADLINE:?}"
        );
        let message = next_json(socket).await;
        if message["type"] == "registry"
            && message["action"] == action
            && message["instance"] == instance
        {
            return message;
        }
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// An OTLP export from a resource that names its instance, version, host and SDK.
fn sighting_request(service: &str, instance: &str, version: &str) -> Vec<u8> {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name", service),
                    string_kv("service.instance.id", instance),
                    string_kv("service.version", version),
                    string_kv("host.name", "box-7"),
                    string_kv("telemetry.sdk.language", "python"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now_nanos(),
                            value: Some(number_data_point::Value::AsDouble(3.0)),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_heartbeats_deregistration_otlp_sightings_and_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &[
            "--registry-max-instances",
            "2",
            "--registry-max-lease",
            "10m",
        ],
    ))
    .await
    .unwrap();
    let service = "checkout";
    let mut socket = connect(&handle).await;
    socket
        .send(Message::text(
            json!({"type": "subscribe", "services": [service]}).to_string(),
        ))
        .await
        .unwrap();
    // The subscription is applied before the first event is sent (the gateway answers in order).
    let _ = next_json(&mut socket).await;

    // Register with a 2 s lease: 201 with the merged instance, and a live `registered` event.
    let registration = json!({
        "service": service, "instance": "c-1", "version": "1.4.2",
        "metadata": {"zone": "eu-1"}, "lease_seconds": 2,
        "health_url": "http://127.0.0.1:9/healthz",
    });
    let (status, created) = send(&handle, "POST", "/api/registry/instances", &registration).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], "1.4.2");
    assert_eq!(created["sources"], json!(["registered"]));
    assert_eq!(created["lease"]["ttl_seconds"], 2);
    let event = wait_for_registry_event(&mut socket, "registered", "c-1").await;
    assert_eq!(event["service"], service);
    assert_eq!(event["current"]["metadata"]["zone"], "eu-1");

    // Heartbeats keep it well past its 2 s lease.
    let registered_at = Instant::now();
    while registered_at.elapsed() < Duration::from_secs(5) {
        let (status, body) = send(
            &handle,
            "PUT",
            &format!("/api/registry/instances/{service}/c-1/heartbeat"),
            &Value::Null,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(instances(&handle, service).await.len(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // `GET /api/services` lists it with its version, source and lease (no series needed).
    let (status, body) = get_json(&handle, "/api/services").await;
    assert_eq!(status, 200, "{body}");
    let listed = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .unwrap_or_else(|| panic!("{service} is listed: {body}"))
        .clone();
    assert_eq!(listed["versions"], json!(["1.4.2"]));
    assert_eq!(listed["sources"], json!(["registered"]));
    assert_eq!(listed["instances"][0]["lease"]["ttl_seconds"], 2);

    // Without heartbeats the lease runs out: an `expired` event, gone from the listing, and a late
    // heartbeat is refused (register again).
    let event = wait_for_registry_event(&mut socket, "expired", "c-1").await;
    assert_eq!(event["source"], "registered");
    assert!(event["current"].is_null(), "{event}");
    assert!(instances(&handle, service).await.is_empty());
    let (status, _) = send(
        &handle,
        "PUT",
        &format!("/api/registry/instances/{service}/c-1/heartbeat"),
        &Value::Null,
    )
    .await;
    assert_eq!(status, 404);

    // Deregistration removes at once and says so.
    let (status, _) = send(
        &handle,
        "POST",
        "/api/registry/instances",
        &json!({"service": service, "instance": "c-2"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = send(
        &handle,
        "DELETE",
        &format!("/api/registry/instances/{service}/c-2"),
        &Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for_registry_event(&mut socket, "deregistered", "c-2").await;
    assert!(instances(&handle, service).await.is_empty());
    let (status, _) = send(
        &handle,
        "DELETE",
        &format!("/api/registry/instances/{service}/c-2"),
        &Value::Null,
    )
    .await;
    assert_eq!(status, 404);

    // Limits: at most 2 registered instances here, leases up to 10 minutes, 4 KiB of metadata.
    for instance in ["l-1", "l-2"] {
        let (status, body) = send(
            &handle,
            "POST",
            "/api/registry/instances",
            &json!({"service": "limits", "instance": instance, "lease_seconds": 600}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = send(
        &handle,
        "POST",
        "/api/registry/instances",
        &json!({"service": "limits", "instance": "l-3"}),
    )
    .await;
    assert_eq!(status, 507, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("--registry-max-instances"));
    // Re-registering one that is there is not a new instance.
    let (status, _) = send(
        &handle,
        "POST",
        "/api/registry/instances",
        &json!({"service": "limits", "instance": "l-1", "lease_seconds": 600}),
    )
    .await;
    assert_eq!(status, 201);
    for refused in [
        json!({"service": "limits", "instance": "l-1", "lease_seconds": 601}),
        json!({"service": "limits", "instance": "l-1", "metadata": {"k": "x".repeat(4096)}}),
        json!({"service": "limits", "instance": "l-1", "health_url": "file:///etc/passwd"}),
    ] {
        let (status, body) = send(&handle, "POST", "/api/registry/instances", &refused).await;
        assert_eq!(status, 400, "{refused} → {body}");
    }

    // OTLP resource attributes make an instance known too, with version, host and SDK.
    let (status, _) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/x-protobuf",
        &sighting_request(service, "c-9", "2.0.0"),
    )
    .await;
    assert_eq!(status, 200);
    let event = wait_for_registry_event(&mut socket, "discovered", "c-9").await;
    assert_eq!(event["source"], "otlp");
    let seen = instances(&handle, service).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["version"], "2.0.0");
    assert_eq!(seen[0]["host"], "box-7");
    assert_eq!(seen[0]["sources"], json!(["otlp"]));
    assert_eq!(seen[0]["metadata"]["telemetry.sdk.language"], "python");
    assert!(seen[0]["lease"].is_null());

    handle.shutdown().await.unwrap();
}

/// Issue 13 item 5a: an instance registered with a `metrics_url` is scraped (job = its service,
/// instance = its instance id), its counter's series shows up in the query API, and the registry
/// lists it with the source `scraped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_registered_with_a_metrics_url_are_scraped() {
    // A tiny exporter: one counter in the Prometheus text format.
    let exporter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter_addr = exporter.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/custom/metrics",
        axum::routing::get(|| async {
            (
                [("content-type", "text/plain; version=0.0.4")],
                "# HELP orders_placed_total Orders.\n# TYPE orders_placed_total counter\norders_placed_total{region=\"eu\"} 42\n",
            )
        }),
    );
    let server = tokio::spawn(async move { axum::serve(exporter, app).await });

    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(dir.path(), &["--registry-scrape-interval", "1s"]))
        .await
        .unwrap();
    let registration = json!({
        "service": "orders", "instance": "o-1", "lease_seconds": 600,
        "metrics_url": format!("http://{exporter_addr}/custom/metrics"),
    });
    let (status, created) = send(&handle, "POST", "/api/registry/instances", &registration).await;
    assert_eq!(status, 201, "{created}");

    // The counter's series, labelled as the registration names it.
    let deadline = Instant::now() + DEADLINE;
    let series = loop {
        let (status, body) = get_json(&handle, "/api/services/orders/metrics").await;
        let found = body["metrics"].as_array().and_then(|metrics| {
            metrics
                .iter()
                .find(|m| m["name"] == "orders_placed_total")
                .cloned()
        });
        if let Some(metric) = found {
            break metric["series"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no scraped counter within {DEADLINE:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0]["attributes"]["region"], "eu", "{series:?}");

    // The registry lists the instance as scraped too (and still registered).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let listed = instances(&handle, "orders").await;
        let sources = listed
            .iter()
            .find(|i| i["instance"] == "o-1")
            .map(|i| i["sources"].clone())
            .unwrap_or(Value::Null);
        let has = |s: &str| sources.as_array().is_some_and(|a| a.contains(&json!(s)));
        if has("scraped") && has("registered") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance not listed as scraped within {DEADLINE:?}: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, services) = get_json(&handle, "/api/services").await;
    assert_eq!(status, 200, "{services}");
    let orders = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "orders")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        orders["sources"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("scraped"))),
        "{orders}"
    );
    assert_eq!(orders["instances"][0]["instance"], "o-1", "{orders}");

    handle.shutdown().await.unwrap();
    server.abort();
}
