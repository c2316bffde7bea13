//! A scripted Kinesis `PutRecords` endpoint on 127.0.0.1: it fails the records a script picks with
//! the error codes real Kinesis uses (per-record throttling, internal failures), which emulators
//! never produce, and records every call so tests can see what was retried.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use flowscope_core::aws::{config, KinesisStream, RetryPolicy};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Decides the fate of record `index` of call `call` (both 0-based): `Some(code)` fails it.
type Script = dyn Fn(usize, usize, &[u8]) -> Option<&'static str> + Send + Sync;

pub struct FakeKinesis {
    url: String,
    calls: Arc<Mutex<Vec<Vec<Vec<u8>>>>>,
    server: JoinHandle<()>,
}

impl FakeKinesis {
    pub async fn start(
        script: impl Fn(usize, usize, &[u8]) -> Option<&'static str> + Send + Sync + 'static,
    ) -> FakeKinesis {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let calls: Arc<Mutex<Vec<Vec<Vec<u8>>>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let server_calls = calls.clone();
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, server_calls.clone(), script.clone()));
            }
        });
        FakeKinesis { url, calls, server }
    }

    /// The data of every record of every PutRecords call, in call order.
    pub fn calls(&self) -> Vec<Vec<Vec<u8>>> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// A [`KinesisStream`] whose client talks to this endpoint.
    pub async fn stream(&self, retry: RetryPolicy) -> KinesisStream {
        let sdk = config::load_for_emulators().await;
        let client_config = aws_sdk_kinesis::config::Builder::from(&sdk)
            .endpoint_url(&self.url)
            .build();
        KinesisStream::from_client(aws_sdk_kinesis::Client::from_conf(client_config), "fake")
            .with_retry(retry)
    }
}

impl Drop for FakeKinesis {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
async fn serve(mut socket: TcpStream, calls: Arc<Mutex<Vec<Vec<Vec<u8>>>>>, script: Arc<Script>) {
    let mut buffer = Vec::new();
    loop {
        let Some(head_end) = read_until_head_end(&mut socket, &mut buffer).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body_start = head_end + 4;
        while buffer.len() < body_start + length {
            let mut chunk = [0u8; 16 * 1024];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buffer[body_start..body_start + length]).unwrap_or(Value::Null);
        buffer.drain(..body_start + length);
        let answer = if head.contains("kinesis_20131202.putrecords") {
            put_records(&body, &calls, script.as_ref())
        } else {
            (400, json!({"__type": "UnknownOperationException"}))
        };
        let text = answer.1.to_string();
        let response = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{text}",
            answer.0,
            text.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn read_until_head_end(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end);
        }
        let mut chunk = [0u8; 16 * 1024];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn put_records(body: &Value, calls: &Mutex<Vec<Vec<Vec<u8>>>>, script: &Script) -> (u16, Value) {
    let data: Vec<Vec<u8>> = body["Records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|r| {
                    BASE64
                        .decode(r["Data"].as_str().unwrap_or(""))
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let call = {
        let mut calls = calls.lock().expect("calls lock");
        calls.push(data.clone());
        calls.len() - 1
    };
    let mut failed = 0;
    let results: Vec<Value> = data
        .iter()
        .enumerate()
        .map(|(index, record)| match script(call, index, record) {
            Some(code) => {
                failed += 1;
                json!({"ErrorCode": code, "ErrorMessage": format!("scripted {code}")})
            }
            None => json!({
                "SequenceNumber": format!("{}", 49_000_000_000_u64 + (call * 1000 + index) as u64),
                "ShardId": "shardId-000000000000"
            }),
        })
        .collect();
    (
        200,
        json!({"FailedRecordCount": failed, "Records": results}),
    )
}
