//! Local mode observes itself: `GET /metrics` is Prometheus text that Prometheus's own checker
//! (`promtool check metrics`, Debian package `prometheus`) accepts, carries the counters of
//! `/api/pipeline` under Prometheus names, and answers OpenMetrics to a client that asks for it.

mod support;

use std::time::Duration;

use flowscope_cli::local;
use flowscope_core::scrape::parse::{parse, ExpositionFormat, Family, MetricType, ParseLimits};
use support::*;

fn family<'a>(families: &'a [Family], name: &str) -> &'a Family {
    families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name} in /metrics"))
}

fn sample(family: &Family, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    family
        .samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

/// `GET /metrics` with an `Accept` header: (content type, body).
async fn scrape(addr: std::net::SocketAddr, accept: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap();
    (content_type, body.to_string())
}

/// Runs `promtool check metrics` on `text`; a missing promtool fails the test with the fix.
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is needed to check /metrics ({e}): install the Debian package \
                 `prometheus` (scripts/setup.sh does)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused /metrics:\n{}{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_is_prometheus_text_that_promtool_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        // No health-score round during the test: its score point would be counted with the test's.
        &[
            "--max-attributes-per-point",
            "0",
            "--health-score-interval",
            "1h",
        ],
    ))
    .await
    .unwrap();
    send_gauge(&handle, "checkout", "queue.depth", 3.0).await;
    // One point refused for its attribute (limit 0), counted per reason.
    let refused = serde_json::json!({ "resourceMetrics": [{
        "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "checkout" } }] },
        "scopeMetrics": [{ "metrics": [{ "name": "queue.depth", "gauge": { "dataPoints": [{
            "timeUnixNano": now_nanos().to_string(), "asDouble": 1.0,
            "attributes": [{ "key": "k", "value": { "stringValue": "v" } }] }] } }] }] }] });
    let (status, _) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/json",
        refused.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    // Wait until the aggregator has folded the accepted point.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (content_type, text) = loop {
        let (content_type, text) = scrape(handle.http_addr, "*/*").await;
        if text.contains("flowscope_aggregator_points_total{outcome=\"applied\"} 1") {
            break (content_type, text);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the applied point never showed in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    promtool_check(&text);

    let families = parse(
        text.as_bytes(),
        ExpositionFormat::Text,
        &ParseLimits::default(),
    )
    .unwrap()
    .families;
    let points = family(&families, "flowscope_ingest_points_total");
    assert_eq!(points.kind, MetricType::Counter);
    let points_of = |outcome| {
        sample(
            points,
            "flowscope_ingest_points_total",
            &[("signal", "metrics"), ("outcome", outcome)],
        )
    };
    assert_eq!(points_of("accepted"), Some(1.0), "{text}");
    assert_eq!(points_of("rejected"), Some(1.0), "{text}");
    let rejected = family(&families, "flowscope_ingest_rejected_total");
    assert_eq!(
        sample(
            rejected,
            "flowscope_ingest_rejected_total",
            &[("reason", "too_many_attributes")]
        ),
        Some(1.0)
    );
    // The same figure as /api/pipeline.
    let (_, pipeline) = get_json(&handle, "/api/pipeline").await;
    assert_eq!(pipeline["ingest"]["accepted_data_points"], 1);

    let batch = family(&families, "flowscope_aggregator_batch_seconds");
    assert_eq!(batch.kind, MetricType::Histogram);
    let batches = sample(batch, "flowscope_aggregator_batch_seconds_count", &[]).unwrap();
    assert!(batches >= 1.0, "{text}");
    assert_eq!(
        sample(
            batch,
            "flowscope_aggregator_batch_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(batches)
    );
    let writes = family(&families, "flowscope_store_bucket_writes_total");
    assert!(
        sample(
            writes,
            "flowscope_store_bucket_writes_total",
            &[("outcome", "applied")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let lag = family(&families, "flowscope_stream_lag_seconds");
    assert_eq!(lag.kind, MetricType::Gauge);
    assert!(!lag.samples.is_empty(), "one lag per shard");
    for name in [
        "flowscope_store_write_seconds",
        "flowscope_websocket_connections",
        "flowscope_websocket_messages_sent_total",
        "flowscope_alert_evaluations_total",
        "flowscope_scrapes_total",
        "flowscope_probes_total",
    ] {
        family(&families, name);
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_answers_openmetrics_to_prometheus_and_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(dir.path(), &["--token", "s3cret"]))
        .await
        .unwrap();
    let (status, _) = http(handle.http_addr, "GET", "/metrics", "text/plain", b"").await;
    assert_eq!(status, 401, "/metrics needs the credential like /api/*");

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(handle.http_addr)
        .await
        .unwrap();
    // What Prometheus sends.
    let head = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nAccept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let families = parse(
        body.as_bytes(),
        ExpositionFormat::OpenMetrics,
        &ParseLimits::default(),
    )
    .unwrap()
    .families;
    let points = family(&families, "flowscope_ingest_points");
    assert_eq!(points.kind, MetricType::Counter);
    assert!(points
        .samples
        .iter()
        .all(|s| s.name == "flowscope_ingest_points_total"));
    handle.shutdown().await.unwrap();
}
