//! Short-lived tokens and scopes in local mode (issue 16 item 3): with `--token-secret`, a key buys
//! a signed token at `POST /api/token` that opens the query API and the WebSocket like the key; an
//! expired token is refused with 401 and an `invalid_token` challenge, a credential without the
//! route's scope with 403; `--ingest-token` puts the OTLP port behind the `ingest` scope.

mod support;

use std::time::Duration;

use flowscope_cli::local::{self, LocalHandle};
use serde_json::Value;
use support::{args_with, gauge_request, next_json, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;

const READ_KEY: &str = "reader-key-1";
const ADMIN_KEY: &str = "admin-key-1";
const INGEST_KEY: &str = "ingest-key-1";
const SECRET: &str = "a-local-token-secret-of-32-bytes-or-more";

struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    fn error(&self) -> String {
        self.body["error"].as_str().unwrap_or_default().to_string()
    }
}

/// One HTTP/1.1 request with an optional bearer credential and body.
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(credential) = bearer {
        head.push_str(&format!("Authorization: Bearer {credential}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(support::WAIT, stream.read_to_end(&mut response))
        .await
        .expect("an answer within the wait")
        .unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_slice(&response[split + 4..]).unwrap_or(Value::Null);
    Answer { status, head, body }
}

async fn api(handle: &LocalHandle, method: &str, path: &str, bearer: Option<&str>) -> Answer {
    call(
        handle.http_addr,
        method,
        path,
        bearer,
        "application/json",
        b"",
    )
    .await
}

async fn token_for(handle: &LocalHandle, key: &str, body: &str) -> Value {
    let answer = call(
        handle.http_addr,
        "POST",
        "/api/token",
        Some(key),
        "application/json",
        body.as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

async fn start(dir: &std::path::Path, extra: &[&str]) -> LocalHandle {
    let mut flags = vec![
        "--token",
        READ_KEY,
        "--admin-token",
        ADMIN_KEY,
        "--ingest-token",
        INGEST_KEY,
        "--token-secret",
        SECRET,
    ];
    flags.extend_from_slice(extra);
    local::start(args_with(dir, &flags)).await.unwrap()
}

/// The handshake's HTTP refusal: status, challenge and the body's `error`.
async fn refused_handshake(url: String) -> (u16, String, String) {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body: Value = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            let reason = body["error"].as_str().unwrap_or_default().to_string();
            (response.status().as_u16(), challenge, reason)
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the WebSocket was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_key_opens_the_api_and_the_websocket_with_the_keys_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), &[]).await;

    let issued = token_for(&handle, READ_KEY, "").await;
    let token = issued["access_token"].as_str().unwrap().to_string();
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(
        issued["expires_in"], 900,
        "the default lifetime is 15 minutes"
    );
    assert_eq!(issued["scope"], "ingest read");
    assert_eq!(issued["tenant"], "default");

    // The token reads the API like the key.
    let services = api(&handle, "GET", "/api/services", Some(&token)).await;
    assert_eq!(services.status, 200, "{}", services.body);

    // And opens the WebSocket.
    let url = format!("ws://{}/ws?token={token}", handle.http_addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the token is accepted on the handshake");
    assert_eq!(next_json(&mut socket).await["type"], "hello");
    drop(socket);

    // Wrong scope: a read key's token may not create a silence → 403 with the reason.
    let silence = br#"{"matchers":[{"name":"service","value":"checkout","op":"="}],"duration":"2h","created_by":"ann","comment":"deploy"}"#;
    let forbidden = call(
        handle.http_addr,
        "POST",
        "/api/silences",
        Some(&token),
        "application/json",
        silence,
    )
    .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert!(
        forbidden.error().contains("needs the `admin` scope"),
        "{}",
        forbidden.body
    );
    assert!(forbidden
        .header("www-authenticate")
        .is_some_and(|c| c.contains("insufficient_scope")));
    // The read key itself is refused the same way; the admin key's token may.
    let by_key = call(
        handle.http_addr,
        "POST",
        "/api/silences",
        Some(READ_KEY),
        "application/json",
        silence,
    )
    .await;
    assert_eq!(by_key.status, 403, "{}", by_key.body);
    let admin = token_for(&handle, ADMIN_KEY, "").await;
    let admin_token = admin["access_token"].as_str().unwrap();
    let created = call(
        handle.http_addr,
        "POST",
        "/api/silences",
        Some(admin_token),
        "application/json",
        silence,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);

    // A token never widens its key: the read key cannot ask for `admin`.
    let widened = call(
        handle.http_addr,
        "POST",
        "/api/token",
        Some(READ_KEY),
        "application/json",
        br#"{"scope":"admin"}"#,
    )
    .await;
    assert_eq!(widened.status, 403, "{}", widened.body);

    // An ingest-only token reads nothing; the WebSocket refuses it with 403 too.
    let ingest = token_for(&handle, INGEST_KEY, "").await;
    let ingest_token = ingest["access_token"].as_str().unwrap();
    assert_eq!(ingest["scope"], "ingest");
    let read = api(&handle, "GET", "/api/services", Some(ingest_token)).await;
    assert_eq!(read.status, 403, "{}", read.body);
    let (status, challenge, reason) =
        refused_handshake(format!("ws://{}/ws?token={ingest_token}", handle.http_addr)).await;
    assert_eq!(status, 403, "{reason}");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    // The OTLP port needs the `ingest` scope: none → 401, a read-only token → 403, the ingest
    // token → accepted.
    let request = gauge_request("checkout", "latency_ms", 1.0);
    let otlp = |bearer: Option<String>| {
        let request = request.clone();
        let addr = handle.otlp_addr;
        async move {
            call(
                addr,
                "POST",
                "/v1/metrics",
                bearer.as_deref(),
                "application/x-protobuf",
                &request,
            )
            .await
            .status
        }
    };
    assert_eq!(otlp(None).await, 401);
    let read_only = token_for(&handle, READ_KEY, r#"{"scope":"read"}"#).await;
    let read_only = read_only["access_token"].as_str().unwrap().to_string();
    assert_eq!(otlp(Some(read_only)).await, 403);
    assert_eq!(otlp(Some(ingest_token.to_string())).await, 200);

    // A token cannot buy a token at /api/token (a key is needed), but refreshes at /refresh.
    let from_token = call(
        handle.http_addr,
        "POST",
        "/api/token",
        Some(&token),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(from_token.status, 400, "{}", from_token.body);
    let refreshed = call(
        handle.http_addr,
        "POST",
        "/api/token/refresh",
        Some(&token),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.body["scope"], "ingest read");

    // A token signed with another secret is refused with 401 and an invalid_token challenge.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let bad = api(&handle, "GET", "/api/services", Some(&forged)).await;
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(bad
        .header("www-authenticate")
        .is_some_and(|c| c.contains("error=\"invalid_token\"")));
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_with_401_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), &["--token-ttl", "1s"]).await;
    let issued = token_for(&handle, READ_KEY, "").await;
    assert_eq!(issued["expires_in"], 1);
    let token = issued["access_token"].as_str().unwrap().to_string();
    let refused = std::sync::Arc::new(std::sync::Mutex::new(None));
    wait_until(Duration::from_secs(10), "the token to expire", || {
        let (handle, token, refused) = (&handle, token.clone(), refused.clone());
        async move {
            let answer = api(handle, "GET", "/api/services", Some(&token)).await;
            let seen = format!("{} {}", answer.status, answer.body);
            let expired = answer.status == 401;
            if expired {
                *refused.lock().unwrap() = Some(answer);
            }
            (expired, seen)
        }
    })
    .await;
    let answer = refused.lock().unwrap().take().unwrap();
    assert!(
        answer.error().starts_with("token expired at "),
        "{}",
        answer.body
    );
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("token expired"),
        "{challenge}"
    );
    // The WebSocket refuses it too, and so does refresh; the key still buys a new one.
    let (status, _, reason) =
        refused_handshake(format!("ws://{}/ws?token={token}", handle.http_addr)).await;
    assert_eq!(status, 401);
    assert!(reason.starts_with("token expired"), "{reason}");
    let refresh = call(
        handle.http_addr,
        "POST",
        "/api/token/refresh",
        Some(&token),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(refresh.status, 401, "{}", refresh.body);
    token_for(&handle, READ_KEY, "").await;
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_local_mode_stays_open_and_tokens_are_off() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(dir.path(), &[])).await.unwrap();
    assert_eq!(api(&handle, "GET", "/api/services", None).await.status, 200);
    let token = api(&handle, "POST", "/api/token", None).await;
    assert_eq!(token.status, 404, "{}", token.body);
    handle.shutdown().await.unwrap();
    // A token secret without a key to issue from, or a short one, is refused at start.
    assert!(
        local::start(args_with(dir.path(), &["--token-secret", SECRET]))
            .await
            .is_err()
    );
    assert!(local::start(args_with(
        dir.path(),
        &["--token", READ_KEY, "--token-secret", "short"]
    ))
    .await
    .is_err());
}
