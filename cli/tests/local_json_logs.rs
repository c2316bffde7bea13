//! `--log-format json` (env `FLOWSCOPE_LOG_FORMAT`): every line on stderr is one JSON object, and a
//! line logged while serving a request carries that request's W3C trace id (the caller's, from its
//! `traceparent` header) and a span id.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next stderr line (parsed: every line must be JSON) matching `pred`, within 10 s.
fn wait_for_line(lines: &mpsc::Receiver<String>, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the expected log line did not come");
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(
            value["timestamp"].is_string() && value["level"].is_string(),
            "{line}"
        );
        if pred(&value) {
            return value;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_requests_trace_and_span_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .args([
            "local",
            "--otlp-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--dashboard-dir",
            "/nonexistent",
        ])
        .env("FLOWSCOPE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,flowscope_core=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _child = Child(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let running = wait_for_line(&lines, |v| {
        v["fields"]["message"] == "flowscope local is running"
    });
    let otlp: std::net::SocketAddr = running["fields"]["otlp_addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // A malformed request: the receiver logs its refusal (debug) inside the request's span.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let path = "/v1/metrics";
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(otlp).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\ntraceparent: {traceparent}\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let refused = tokio::task::spawn_blocking(move || {
        // ("OTLP request refused" with the reason in a `message` field, which the JSON shows as
        // the event's message.)
        wait_for_line(&lines, |v| {
            v["target"] == "flowscope_core::ingest" && v["fields"]["status"] == 400
        })
    })
    .await
    .unwrap();
    let span = &refused["span"];
    assert_eq!(span["name"], "request", "{refused}");
    assert_eq!(span["trace_id"], trace_id, "{refused}");
    assert_eq!(span["parent_span_id"], "00f067aa0ba902b7", "{refused}");
    let span_id = span["span_id"].as_str().unwrap();
    assert!(
        span_id.len() == 16 && span_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{refused}"
    );
    assert_eq!(span["path"], "/v1/metrics");
}
