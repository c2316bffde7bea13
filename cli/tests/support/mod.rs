//! Helpers shared by the local-mode integration tests: local-mode flags, an OTLP gauge request, a
//! minimal HTTP/1.1 client (so the tests need no HTTP client crate) and a WebSocket client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flowscope_cli::local::{LocalArgs, LocalHandle};
use futures::StreamExt;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn gauge_request(service: &str, metric: &str, value: f64) -> Vec<u8> {
    metrics_request(
        service,
        vec![Metric {
            name: metric.into(),
            unit: "%".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: now_nanos(),
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        }],
    )
}

/// An OTLP protobuf export of `metrics` from one resource whose `service.name` is `service`.
pub fn metrics_request(service: &str, metrics: Vec<Metric>) -> Vec<u8> {
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
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// A `flowscope local` process of a built binary, killed when dropped.
pub struct LocalProcess {
    pub child: Child,
    pub otlp: SocketAddr,
    pub http: SocketAddr,
    /// A data directory that lives as long as the process, when the test does not keep its own.
    pub dir: Option<tempfile::TempDir>,
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalProcess {
    /// Spawns `command` (a `flowscope local` listening on `127.0.0.1:0` for both servers) and waits
    /// for its start-up line, which names both addresses.
    pub fn spawn(mut command: Command, dir: Option<tempfile::TempDir>) -> LocalProcess {
        let mut child = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `… otlp_addr=127.0.0.1:N http_addr=127.0.0.1:M …`
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (otlp, http) = loop {
            let line = lines
                .next()
                .expect("flowscope local exited before it was running")
                .unwrap();
            if line.contains("flowscope local is running") {
                break (address(&line, "otlp_addr="), address(&line, "http_addr="));
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        LocalProcess {
            child,
            otlp,
            http,
            dir,
        }
    }

    /// SIGKILL (`Child::kill` on Unix), then reap.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// `(current, peak)` resident set size in bytes, from `/proc/<pid>/status`.
    pub fn rss(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap()
                .parse::<u64>()
                .unwrap()
                * 1024
        };
        (kib("VmRSS:"), kib("VmHWM:"))
    }
}

fn address(line: &str, name: &str) -> SocketAddr {
    let start = line.find(name).unwrap() + name.len();
    line[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_matches(|c: char| !c.is_ascii_digit() && c != '.' && c != ':')
        .parse()
        .unwrap()
}

/// Minimal HTTP/1.1 client over a TcpStream, so the test needs no HTTP client crate.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let response = http_full(addr, method, path, content_type, body).await;
    (response.status, response.body)
}

/// An HTTP response read off the wire: status, header lines (names lowercased) and the de-chunked body.
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of header `name` (lowercase), trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_string())
        })
    }
}

/// One request on a fresh connection (`Connection: close`), the whole response read.
pub async fn http_full(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    HttpResponse { status, head, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for one message or one response.
pub const WAIT: Duration = Duration::from_secs(10);

/// Local mode on ephemeral ports with its data in `data_dir`.
pub fn args(data_dir: &std::path::Path) -> LocalArgs {
    args_with(data_dir, &[])
}

/// [`args`] plus more command-line flags.
pub fn args_with(data_dir: &std::path::Path, extra: &[&str]) -> LocalArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        local: LocalArgs,
    }
    let mut argv = vec![
        "test",
        "--otlp-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--dashboard-dir",
        "/nonexistent",
    ];
    argv.extend_from_slice(extra);
    Wrapper::parse_from(argv).local
}

pub async fn send_gauge(handle: &LocalHandle, service: &str, metric: &str, value: f64) {
    let (status, _) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/x-protobuf",
        &gauge_request(service, metric, value),
    )
    .await;
    assert_eq!(status, 200);
}

pub async fn get_json(handle: &LocalHandle, path: &str) -> (u16, Value) {
    let (status, body) = http(handle.http_addr, "GET", path, "application/json", b"").await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Polls `/api/graph` until the load generator's edges (api → auth, cache, database, queue) are all
/// there, and returns that graph; fails with the last graph seen once `within` has passed.
pub async fn wait_for_loadgen_graph(handle: &LocalHandle, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (_, graph) = get_json(handle, "/api/graph").await;
        let has_edge = |target: &str| {
            graph["edges"].as_array().is_some_and(|edges| {
                edges
                    .iter()
                    .any(|e| e["source"] == "api" && e["target"] == target)
            })
        };
        if ["auth", "cache", "database", "queue"]
            .iter()
            .all(|target| has_edge(target))
        {
            return graph;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "graph incomplete after {within:?}: {graph}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates a silence of `service`'s alerts through the API and returns its id.
pub async fn create_silence(handle: &LocalHandle, service: &str) -> String {
    let silence = serde_json::json!({
        "matchers": [{ "name": "service", "value": service, "op": "=" }],
        "duration": "2h",
        "created_by": "ann",
        "comment": "deploy",
    });
    let (status, created) = http(
        handle.http_addr,
        "POST",
        "/api/silences",
        "application/json",
        silence.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&created));
    let created: Value = serde_json::from_slice(&created).unwrap();
    created["silence"]["id"].as_str().unwrap().to_string()
}

/// A WebSocket to local mode's gateway, past its `hello`.
pub async fn connect(handle: &LocalHandle) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", handle.http_addr))
        .await
        .unwrap();
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["type"], "hello");
    socket
}

/// The next text message as JSON, within [`WAIT`].
pub async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message within the wait")
            .expect("socket open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// Polls `check` every 200 ms until it returns true or `within` passes (then fails with `what`).
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (done, state) = check().await;
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}; last seen {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
