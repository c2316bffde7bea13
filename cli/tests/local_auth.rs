//! Local mode's credential (`--token`): `config.json` never carries it; the query API, `@connections`
//! and the WebSocket refuse a missing or wrong one with 401 and a reason; without `--token` local
//! mode stays open (zero-config).

mod support;

use flowscope_cli::local::{self, LocalHandle};
use futures::SinkExt;
use serde_json::Value;
use support::{args, args_with, next_json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

const TOKEN: &str = "s3cret-local-token";

struct Answer {
    status: u16,
    /// Lowercased header names and their values.
    headers: Vec<(String, String)>,
    body: Value,
    raw_body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

/// One HTTP/1.1 request with extra header lines (`"Name: value"`); the answer is read to the end.
async fn request(handle: &LocalHandle, method: &str, path: &str, extra: &[&str]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(handle.http_addr)
        .await
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n",
        handle.http_addr
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(support::WAIT, stream.read_to_end(&mut response))
        .await
        .expect("an answer within the wait")
        .unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status: status.parse().unwrap(),
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        raw_body: body.to_string(),
    }
}

async fn start_with_token(dir: &std::path::Path) -> LocalHandle {
    local::start(args_with(dir, &["--token", TOKEN]))
        .await
        .unwrap()
}

fn assert_refused(answer: &Answer, reason_starts: &str) {
    assert_eq!(answer.status, 401, "{}", answer.raw_body);
    assert!(
        answer.error().starts_with(reason_starts),
        "reason {:?} should start with {reason_starts:?}",
        answer.error()
    );
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "a Bearer challenge: {:?}",
        answer.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_json_carries_endpoints_and_mode_but_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start_with_token(dir.path()).await;
    let config = request(&handle, "GET", "/config.json", &[]).await;
    assert_eq!(config.status, 200);
    assert!(
        !config.raw_body.contains(TOKEN),
        "config.json is public: {}",
        config.raw_body
    );
    assert!(config.body.get("token").is_none(), "{}", config.body);
    assert_eq!(config.body["mode"], "local");
    assert_eq!(
        config.body["auth"], "token",
        "the dashboard must ask for it"
    );
    // The health check and the dashboard's files stay public.
    assert_eq!(request(&handle, "GET", "/healthz", &[]).await.status, 200);
    assert_eq!(request(&handle, "GET", "/", &[]).await.status, 200);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_needs_the_token_and_says_why_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start_with_token(dir.path()).await;

    let missing = request(&handle, "GET", "/api/services", &[]).await;
    assert_refused(&missing, "missing credential: ");
    let wrong = request(
        &handle,
        "GET",
        "/api/services",
        &["Authorization: Bearer not-the-token"],
    )
    .await;
    assert_refused(&wrong, "invalid credential");
    let other_scheme = request(
        &handle,
        "GET",
        "/api/services",
        &["Authorization: Basic czNjcmV0"],
    )
    .await;
    assert_refused(&other_scheme, "missing credential: ");
    // The token in the query string is not a credential on HTTP (it would end up in logs).
    let in_query = request(&handle, "GET", &format!("/api/services?token={TOKEN}"), &[]).await;
    assert_refused(&in_query, "missing credential: ");

    let bearer = format!("Authorization: Bearer {TOKEN}");
    let right = request(&handle, "GET", "/api/services", &[&bearer]).await;
    assert_eq!(right.status, 200, "{}", right.raw_body);
    assert!(right.body["services"].is_array(), "{}", right.body);
    let api_key = format!("x-api-key: {TOKEN}");
    assert_eq!(
        request(&handle, "GET", "/api/services", &[&api_key])
            .await
            .status,
        200
    );

    // Every /api route, the pipeline counters and the alert routes included.
    for (method, path) in [
        ("GET", "/api/pipeline"),
        ("GET", "/api/alerts"),
        ("POST", "/api/silences"),
        ("GET", "/api/graph?from=0&to=60"),
    ] {
        assert_refused(
            &request(&handle, method, path, &[]).await,
            "missing credential: ",
        );
    }
    assert_eq!(
        request(&handle, "GET", "/api/pipeline", &[&bearer])
            .await
            .status,
        200
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_management_endpoint_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start_with_token(dir.path()).await;
    for method in ["POST", "GET", "DELETE"] {
        assert_refused(
            &request(&handle, method, "/@connections/abc", &[]).await,
            "missing credential: ",
        );
    }
    // With the credential the request reaches the endpoint: an unknown connection is gone.
    let api_key = format!("x-api-key: {TOKEN}");
    let gone = request(&handle, "GET", "/@connections/abc", &[&api_key]).await;
    assert_eq!(gone.status, 410, "{}", gone.raw_body);
    handle.shutdown().await.unwrap();
}

/// The handshake's HTTP refusal: status and the body's `error`.
async fn refused_handshake(url: String) -> (u16, Option<String>, String) {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body: Value = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (
                response.status().as_u16(),
                challenge,
                body["error"].as_str().unwrap_or_default().to_string(),
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the WebSocket was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_handshake_needs_the_token_in_the_query_string() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start_with_token(dir.path()).await;
    let base = format!("ws://{}/ws", handle.http_addr);

    let (status, challenge, reason) = refused_handshake(base.clone()).await;
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    assert!(
        reason.starts_with("missing credential: connect with ?token="),
        "{reason}"
    );
    let (status, _, reason) = refused_handshake(format!("{base}?token=wrong")).await;
    assert_eq!((status, reason.as_str()), (401, "invalid credential"));

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{base}?token={TOKEN}"))
        .await
        .expect("the right token is accepted");
    assert_eq!(next_json(&mut socket).await["type"], "hello");
    socket
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_local_mode_needs_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    let services = request(&handle, "GET", "/api/services", &[]).await;
    assert_eq!(services.status, 200, "{}", services.raw_body);
    let config = request(&handle, "GET", "/config.json", &[]).await;
    assert_eq!(config.body["auth"], "none");
    assert!(config.body.get("token").is_none(), "{}", config.body);
    let mut socket = support::connect(&handle).await;
    socket
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_empty_token_is_refused_at_start_rather_than_meaning_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let error = match local::start(args_with(dir.path(), &["--token", " "])).await {
        Err(error) => format!("{error:#}"),
        Ok(handle) => {
            handle.shutdown().await.unwrap();
            panic!("an empty --token must not start an open server");
        }
    };
    assert!(error.contains("--token"), "{error}");
}
