//! WebSocket latency benchmark of a running `flowscope local` (issue 11's two WebSocket rows). Prints
//! `key: value` lines; asserts nothing. `scripts/bench.sh` (`BENCH_ONLY=ws`) starts local mode and runs:
//!
//!   cargo bench -p flowscope-cli --bench ws -- latency OTLP_ADDR HTTP_ADDR [probes]
//!   cargo bench -p flowscope-cli --bench ws -- clients OTLP_ADDR HTTP_ADDR [clients] [seconds]
//!
//! Timestamps (all on this machine's one clock, unix µs): `accepted` is when the OTLP POST's 200 was
//! read by the sender; `visible` is when the query API first showed the point (polled every ~1 ms);
//! `flushed` is the server's `flushed_at_us` stamp in the `metrics_update` frame (when the flush that
//! carried the point started); `received` is when the subscriber read that frame.
//!
//! - `latency`: one subscriber; probes (one gauge point each, its own series) every ~170 ms, so they
//!   land at every phase of the 1 s batch window. Per probe, OTLP accepted → frame at the client
//!   excluding the batch window = (visible − accepted) + (received − flushed): the aggregation and
//!   delivery parts, without the time the update waited in the live hub for the next flush. Also
//!   prints the raw accepted → received (which includes that wait, ≤ 1 s).
//! - `clients`: N subscribers of one service, one update per second each (a point every 250 ms; the
//!   server flushes once a second); per frame, delivery lag = received − flushed. With
//!   `WS_BENCH_SERVER_PID` set (same machine), also the server's CPU time while measured, per frame
//!   delivered: steadier than the lag on a busy machine.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::{SinkExt, StreamExt};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const LATENCY_SERVICE: &str = "wsbench-latency";
const FANOUT_SERVICE: &str = "wsbench-fanout";
const PROBE_METRIC: &str = "wsbench.probe";
/// Connections being set up at once in `clients`.
const CONNECTS_IN_FLIGHT: usize = 256;
/// Bounds every wait, so a broken server ends the run rather than hanging it.
const WAIT: Duration = Duration::from_secs(30);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn string_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One gauge point of `service`'s probe metric, in the series `probe=<probe>`.
fn probe_request(service: &str, probe: &str, value: f64) -> Vec<u8> {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![string_value("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: PROBE_METRIC.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![string_value("probe", probe)],
                            time_unix_nano: now_us() * 1000,
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

/// One HTTP/1.1 request on its own connection; the status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the server answers within the wait")
        .expect("the server is reachable");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let status = String::from_utf8_lossy(&response[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let mut body = response[split + 4..].to_vec();
    if String::from_utf8_lossy(&response[..split])
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[(line_end + 4 + size).min(data.len())..];
    }
    out
}

async fn post_point(otlp: SocketAddr, service: &str, probe: &str, value: f64) {
    let (status, body) = http(
        otlp,
        "POST",
        "/v1/metrics",
        &probe_request(service, probe, value),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// Subscribes to `service` and reads past the hello and the subscription's snapshot.
async fn subscribe(http: SocketAddr, service: &str) -> Socket {
    // A small read buffer, as a browser's: the library's 128 KiB default per connection would make
    // 10,000 clients cost this process 1.3 GB.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{http}/ws"),
        Some(config),
        false,
    )
    .await
    .expect("WebSocket handshake");
    socket
        .send(Message::text(
            serde_json::json!({"type": "subscribe", "services": [service]}).to_string(),
        ))
        .await
        .expect("subscribe");
    let deadline = Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a snapshot within the wait");
        if let Some(Ok(Message::Text(text))) = next {
            if text.as_str().starts_with(r#"{"type":"snapshot""#) {
                return socket;
            }
        }
    }
}

/// The `flushed_at_us` stamp of a `metrics_update` frame, read without parsing the whole frame.
fn flushed_at_us(text: &str) -> Option<u64> {
    if !text.starts_with(r#"{"type":"metrics_update""#) {
        return None;
    }
    let start = text.find(r#""flushed_at_us":"#)? + r#""flushed_at_us":"#.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// User + system CPU ticks of process `pid` so far (`/proc/PID/stat`), when readable.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn summary(name: &str, mut values_us: Vec<u64>) {
    values_us.sort_unstable();
    println!(
        "{name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        percentile(&values_us, 50.0),
        percentile(&values_us, 99.0),
        percentile(&values_us, 100.0),
        values_us.len()
    );
}

/// Polls the query API until the probe metric of `service` has counted `count` points.
async fn wait_visible(http_addr: SocketAddr, service: &str, count: u64) -> u64 {
    let now_s = now_us() / 1_000_000;
    let path = format!(
        "/api/services/{service}/metrics/{PROBE_METRIC}?resolution=1m&from={}&to={}",
        now_s - 600,
        now_s + 120
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http(http_addr, "GET", &path, b"").await;
        if status == 200 {
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let seen: u64 = body["buckets"]
                .as_array()
                .map(|b| b.iter().filter_map(|b| b["count"].as_u64()).sum())
                .unwrap_or(0);
            if seen >= count {
                return now_us();
            }
        }
        assert!(
            Instant::now() < deadline,
            "probe {count} never became visible"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn latency(otlp: SocketAddr, http_addr: SocketAddr, probes: u64) {
    let mut socket = subscribe(http_addr, LATENCY_SERVICE).await;
    // probe → (received, flushed), filled by the reader.
    let seen: Arc<Mutex<std::collections::HashMap<String, (u64, u64)>>> = Arc::default();
    let reader_seen = seen.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let received = now_us();
            let Message::Text(text) = message else {
                continue;
            };
            let Some(flushed) = flushed_at_us(text.as_str()) else {
                continue;
            };
            let message: serde_json::Value =
                serde_json::from_str(text.as_str()).unwrap_or_default();
            let mut seen = reader_seen.lock().unwrap();
            for update in message["updates"].as_array().into_iter().flatten() {
                if let Some(probe) = update["attributes"]["probe"].as_str() {
                    seen.entry(probe.to_string()).or_insert((received, flushed));
                }
            }
        }
    });
    let run = format!("{}", now_us());
    let mut accepted_at = Vec::new();
    for i in 1..=probes {
        let probe = format!("{run}-{i}");
        post_point(otlp, LATENCY_SERVICE, &probe, i as f64).await;
        let accepted = now_us();
        let visible = wait_visible(http_addr, LATENCY_SERVICE, i).await;
        accepted_at.push((probe, accepted, visible));
        // An interval that is no divisor of the 1 s flush, so probes fall at every phase of it.
        tokio::time::sleep(Duration::from_millis(170)).await;
    }
    let deadline = Instant::now() + WAIT;
    while seen.lock().unwrap().len() < accepted_at.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.abort();
    let seen = seen.lock().unwrap();
    let (mut excluding_window, mut raw, mut aggregation, mut delivery) =
        (vec![], vec![], vec![], vec![]);
    for (probe, accepted, visible) in &accepted_at {
        let Some((received, flushed)) = seen.get(probe) else {
            continue;
        };
        let to_visible = visible.saturating_sub(*accepted);
        let flush_to_client = received.saturating_sub(*flushed);
        aggregation.push(to_visible);
        delivery.push(flush_to_client);
        excluding_window.push(to_visible + flush_to_client);
        raw.push(received.saturating_sub(*accepted));
    }
    println!(
        "probes: {} sent, {} received over the WebSocket",
        accepted_at.len(),
        raw.len()
    );
    summary(
        "accepted to frame excluding the batch window",
        excluding_window,
    );
    summary("accepted to visible in the query API", aggregation);
    summary("flush to frame at the client", delivery);
    summary("accepted to frame including the batch window", raw);
}

async fn clients(otlp: SocketAddr, http_addr: SocketAddr, count: usize, seconds: u64) {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let lags: Arc<Mutex<Vec<u64>>> = Arc::default();
    let frames_per_client: Arc<Mutex<Vec<u64>>> = Arc::default();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..count {
        let (gate, lags, frames_per_client, connected) = (
            gate.clone(),
            lags.clone(),
            frames_per_client.clone(),
            connected.clone(),
        );
        let (measuring, mut stop) = (measuring.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate open");
            let mut socket = subscribe(http_addr, FANOUT_SERVICE).await;
            drop(permit);
            connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (mut mine, mut frames) = (Vec::new(), 0u64);
            // Waited on once, not re-registered with the channel on every frame: 10,000 clients
            // doing that per frame contend on the channel's lock and inflate the lag measured.
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    () = &mut stopped => break,
                    next = socket.next() => {
                        let Some(Ok(Message::Text(text))) = next else {
                            if matches!(next, None | Some(Err(_))) { break } else { continue }
                        };
                        let received = now_us();
                        if let Some(flushed) = flushed_at_us(text.as_str()) {
                            if measuring.load(std::sync::atomic::Ordering::Relaxed) {
                                mine.push(received.saturating_sub(flushed));
                                frames += 1;
                            }
                        }
                    }
                }
            }
            lags.lock().unwrap().extend(mine);
            frames_per_client.lock().unwrap().push(frames);
        });
    }
    // The driver: a point every 250 ms, so every 1 s flush carries an update for every client.
    let driver_stop = stop_rx.clone();
    let driver = tokio::spawn(async move {
        let mut i = 0u64;
        while !*driver_stop.borrow() {
            i += 1;
            post_point(otlp, FANOUT_SERVICE, "fanout", i as f64).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while connected.load(std::sync::atomic::Ordering::Relaxed) < count && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected_in = started.elapsed();
    let held = connected.load(std::sync::atomic::Ordering::Relaxed);
    // Let the first flush after everyone connected pass, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server_pid = std::env::var("WS_BENCH_SERVER_PID").ok();
    let cpu_before = server_pid.as_deref().and_then(cpu_ticks);
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    let cpu_after = server_pid.as_deref().and_then(cpu_ticks);
    stop_tx.send(true).expect("clients listening");
    let _ = driver.await;
    while tasks.join_next().await.is_some() {}
    let frames = frames_per_client.lock().unwrap().clone();
    let (min_frames, max_frames) = (
        frames.iter().copied().min().unwrap_or(0),
        frames.iter().copied().max().unwrap_or(0),
    );
    println!(
        "clients: {held} of {count} connected and subscribed in {:.1} s; {}..{} frames each over {seconds} s",
        connected_in.as_secs_f64(),
        min_frames,
        max_frames
    );
    let lags = std::mem::take(&mut *lags.lock().unwrap());
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        // USER_HZ is 100 on Linux: a tick is 10 ms.
        let cpu_ms = (after - before) * 10;
        let delivered: u64 = frames.iter().sum();
        println!(
            "server CPU while measured: {cpu_ms} ms, {:.1} µs per frame delivered",
            cpu_ms as f64 * 1000.0 / delivered.max(1) as f64
        );
    }
    summary("flush to frame at each client", lags);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let addr = |i: usize| -> SocketAddr {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .expect("usage: ws latency|clients OTLP_ADDR HTTP_ADDR [n] [seconds]")
    };
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match args.first().map(String::as_str) {
        Some("latency") => runtime.block_on(latency(addr(1), addr(2), number(3, 60))),
        Some("clients") => runtime.block_on(clients(
            addr(1),
            addr(2),
            number(3, 10_000) as usize,
            number(4, 10),
        )),
        // `cargo bench` without arguments (e.g. the whole workspace's benches): nothing to run.
        _ => eprintln!("ws bench: pass `latency` or `clients` with the local mode addresses"),
    }
}
