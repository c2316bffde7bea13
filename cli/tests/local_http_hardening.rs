//! Both local ports under hostile HTTP clients (issue 10 items 5, 6 and 9): slow headers, idle
//! keep-alive connections, stalled bodies, a connection cap, oversized bodies on keep-alive
//! connections, and 405/414/431 answers with a reason in the body.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use flowscope_cli::local::{self, LocalHandle};
use serde_json::Value;
use support::{args_with, connect, gauge_request, get_json, send_gauge, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One HTTP/1.1 answer as a raw client sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The head, lower-cased.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn closes(&self) -> bool {
        self.head.contains("connection: close")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A raw keep-alive HTTP/1.1 connection (no client library between the test and the server).
struct Conn {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.unwrap(),
            buffer: Vec::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        // A server that answers early and closes makes these writes fail: the answer (or its
        // absence) is what the test checks.
        if self.stream.write_all(head.as_bytes()).await.is_ok() {
            let _ = self.stream.write_all(body).await;
        }
    }

    /// The next answer, or `None` when the server closed the connection (or reset it) first.
    async fn answer(&mut self) -> Option<Answer> {
        let split = loop {
            if let Some(split) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break split;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..split]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while self.buffer.len() < split + 4 + length {
            if !self.fill().await {
                return None;
            }
        }
        let body = self.buffer[split + 4..split + 4 + length].to_vec();
        self.buffer.drain(..split + 4 + length);
        Some(Answer { status, head, body })
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => false,
            Err(_) => panic!("no answer and no close within {WAIT:?}"),
        }
    }

    /// Waits until the server closes the connection, failing after `within`.
    async fn wait_closed(&mut self, within: Duration) {
        let mut chunk = [0u8; 1024];
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the server kept the connection open past {within:?}"),
            }
        }
    }
}

async fn start(dir: &tempfile::TempDir, flags: &[&str]) -> LocalHandle {
    local::start(args_with(dir.path(), flags)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_closed_at_the_header_timeout_while_good_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(&dir, &["--header-read-timeout", "1s"]).await;
    let (otlp, http) = (handle.otlp_addr, handle.http_addr);
    let started = Instant::now();
    // 200 connections (100 per port), each sending its request head one byte per second.
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..200 {
        let addr = if i % 2 == 0 { otlp } else { http };
        slow.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
            let mut chunk = [0u8; 256];
            for byte in head.iter() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return Instant::now();
                }
                // One byte per second, unless the server closes the connection meanwhile.
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Instant::now(),
                    Ok(Ok(_)) => {} // hyper answers nothing before closing; keep reading
                    Err(_) => {}
                }
            }
            panic!("the whole slow head was sent: the server never closed the connection");
        });
    }
    // Meanwhile a well-behaved client on a new connection is served on both ports.
    send_gauge(&handle, "checkout", "cpu", 1.0).await;
    let (status, _) = get_json(&handle, "/api/services").await;
    assert_eq!(status, 200);
    let (mut closed, mut slowest) = (0, Duration::ZERO);
    while let Some(joined) = slow.join_next().await {
        let at = joined.unwrap();
        slowest = slowest.max(at - started);
        // 1 s timeout plus a generous margin for a loaded 2-core machine.
        assert!(
            at - started < Duration::from_secs(10),
            "a slow-header connection stayed open {:?}",
            at - started
        );
        closed += 1;
    }
    assert_eq!(closed, 200);
    eprintln!("200 slow-header connections closed; the last after {slowest:?}");
    send_gauge(&handle, "checkout", "cpu", 2.0).await;
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_and_a_stalled_body_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        &dir,
        &["--header-read-timeout", "1s", "--idle-timeout", "1s"],
    )
    .await;
    // Keep-alive: a second request on the same connection works, then silence closes it.
    let mut conn = Conn::open(handle.http_addr).await;
    for _ in 0..2 {
        conn.send("GET", "/healthz", &[], b"").await;
        let answer = conn
            .answer()
            .await
            .expect("an answer on the kept-alive connection");
        assert_eq!(answer.status, 200);
        assert!(!answer.closes());
    }
    conn.wait_closed(Duration::from_secs(10)).await;

    // A body that stops halfway: the receiver answers 400 with a reason and closes.
    let mut conn = Conn::open(handle.otlp_addr).await;
    conn.stream
        .write_all(
            b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"resourceMetrics\"",
        )
        .await
        .unwrap();
    let answer = conn.answer().await.expect("an answer to the stalled body");
    assert_eq!(answer.status, 400);
    assert!(answer.closes());
    let message = answer.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("stalled"), "{message}");
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_responses_is_cut_off_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        &dir,
        &["--idle-timeout", "1s", "--header-read-timeout", "60s"],
    )
    .await;
    // Pipeline far more answers than the socket buffers hold, and read none of them for a while.
    const REQUESTS: usize = 20_000;
    let stream = TcpStream::connect(handle.http_addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let request = b"GET /api/alert-rules HTTP/1.1\r\nHost: x\r\n\r\n";
        for _ in 0..REQUESTS {
            if writer.write_all(request).await.is_err() {
                break;
            }
        }
        writer
    });
    // The hostile client's behaviour: not reading for three idle timeouts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Now read what is there: the server must have given up (EOF or reset) well before answering
    // every request, and well before the 60 s header-read timeout could have closed it.
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the server kept writing to a client that did not read"),
        }
    }
    let answers = received
        .windows(12)
        .filter(|w| w == b"HTTP/1.1 200")
        .count();
    assert!(answers < REQUESTS, "all {answers} answers were written");
    eprintln!("a non-reading client received {answers} of {REQUESTS} pipelined answers before the server closed");
    drop(writing);
    // Other clients are unaffected.
    let (status, _) = get_json(&handle, "/api/alert-rules").await;
    assert_eq!(status, 200);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_new_clients_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        &dir,
        &["--max-connections", "4", "--header-read-timeout", "60s"],
    )
    .await;
    // Four kept-alive connections hold every slot of the API port.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = Conn::open(handle.http_addr).await;
        conn.send("GET", "/healthz", &[], b"").await;
        assert_eq!(conn.answer().await.unwrap().status, 200);
        held.push(conn);
    }
    let mut waiting = Conn::open(handle.http_addr).await;
    waiting.send("GET", "/healthz", &[], b"").await;
    let mut chunk = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.stream.read(&mut chunk))
            .await
            .is_err(),
        "a fifth connection was served while four held every slot"
    );
    // The OTLP port has its own slots.
    send_gauge(&handle, "checkout", "cpu", 1.0).await;
    drop(held.pop());
    let answer = waiting.answer().await.expect("served once a slot freed");
    assert_eq!(answer.status, 200);
    drop(held);
    handle.shutdown().await.unwrap();
}

/// Sends `bodies` oversized requests, reusing the connection while the server keeps it open, and
/// returns every answer; a request that gets no answer at all fails the test.
async fn oversized_requests(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
    requests: usize,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut conn = Conn::open(addr).await;
    for i in 0..requests {
        conn.send("POST", path, &[("Content-Type", content_type.into())], body)
            .await;
        let answer = conn
            .answer()
            .await
            .unwrap_or_else(|| panic!("request {i}: connection closed without an answer"));
        let closes = answer.closes();
        answers.push(answer);
        if closes {
            conn = Conn::open(addr).await;
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_on_a_keep_alive_connection_gets_its_413() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB on the OTLP port (the API port's default is 1 MiB too); 3 MiB bodies are read and
    // discarded (the bound is 4x the limit), so each client reads its 413.
    let handle = start(&dir, &["--max-body-bytes", "1048576"]).await;
    // A good request first: the connection is kept alive.
    let mut conn = Conn::open(handle.otlp_addr).await;
    conn.send(
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf".into())],
        &gauge_request("checkout", "cpu", 1.0),
    )
    .await;
    let answer = conn.answer().await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(!answer.closes());

    let oversized = vec![b' '; 3 * 1024 * 1024];
    let answers = oversized_requests(
        handle.otlp_addr,
        "/v1/metrics",
        "application/json",
        &oversized,
        20,
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, 413);
        let status = answer.json();
        assert!(
            status["message"].as_str().unwrap().contains("1048576"),
            "{status}"
        );
    }
    // The API port: alert routes take bodies; its limit answers 413 with a JSON reason.
    let answers = oversized_requests(
        handle.http_addr,
        "/api/silences",
        "application/json",
        &oversized,
        20,
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, 413);
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains("1048576"), "{error}");
    }
    // The same connection as before still works for a good request.
    conn.send(
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf".into())],
        &gauge_request("checkout", "cpu", 2.0),
    )
    .await;
    assert_eq!(conn.answer().await.unwrap().status, 200);
    handle.shutdown().await.unwrap();
}

/// One request on a fresh connection.
async fn once(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)]) -> Answer {
    let mut conn = Conn::open(addr).await;
    conn.send(method, path, headers, b"").await;
    conn.answer().await.expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_uri_and_header_refusals_carry_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(&dir, &[]).await;
    let (otlp, http) = (handle.otlp_addr, handle.http_addr);

    // 405 on both ports: the Allow header and a reason.
    let answer = once(otlp, "GET", "/v1/metrics", &[]).await;
    assert_eq!(answer.status, 405);
    assert!(answer.head.contains("allow: post"), "{}", answer.head);
    let message = answer.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("GET is not allowed"), "{message}");
    let answer = once(otlp, "POST", "/v1/nothing", &[]).await;
    assert_eq!(answer.status, 404);
    let message = answer.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("/v1/nothing"), "{message}");
    for (method, path) in [
        ("POST", "/api/pipeline"),
        ("PUT", "/config.json"),
        ("DELETE", "/api/services"),
    ] {
        let answer = once(http, method, path, &[]).await;
        assert_eq!(answer.status, 405, "{method} {path}");
        assert!(answer.head.contains("allow: "), "{}", answer.head);
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(method), "{error}");
    }

    // 414: a URI over 8 KiB.
    let long = format!("/api/services?x={}", "a".repeat(10 * 1024));
    let answer = once(http, "GET", &long, &[]).await;
    assert_eq!(answer.status, 414);
    assert!(answer.json()["error"].as_str().unwrap().contains("8192"));
    let long = format!("/v1/metrics?x={}", "a".repeat(10 * 1024));
    let answer = once(
        otlp,
        "POST",
        &long,
        &[("Content-Type", "application/json".into())],
    )
    .await;
    assert_eq!(answer.status, 414);
    assert!(answer.json()["message"].as_str().unwrap().contains("8192"));

    // 431: headers over 16 KiB, or more than 100 fields.
    let big = [("X-Big", "b".repeat(20 * 1024))];
    let answer = once(http, "GET", "/api/services", &big).await;
    assert_eq!(answer.status, 431);
    assert!(answer.json()["error"].as_str().unwrap().contains("16384"));
    let answer = once(otlp, "POST", "/v1/metrics", &big).await;
    assert_eq!(answer.status, 431);
    assert!(answer.json()["message"].as_str().unwrap().contains("16384"));
    let names: Vec<String> = (0..150).map(|i| format!("X-H{i}")).collect();
    let many: Vec<(&str, String)> = names.iter().map(|n| (n.as_str(), "1".into())).collect();
    let answer = once(http, "GET", "/api/services", &many).await;
    assert_eq!(answer.status, 431);
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("100 fields"));

    // Checked ranges (issue 10 item 4) reach the client as 400 with the parameter named.
    let (status, body) = get_json(
        &handle,
        "/api/services/x/metrics/y?from=-9223372036854775808",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("`from`"), "{body}");

    // WebSocket upgrades still work through the hardened server.
    let _socket = connect(&handle).await;
    handle.shutdown().await.unwrap();
}
