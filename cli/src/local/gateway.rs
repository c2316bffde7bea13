//! The local API Gateway (8080): the query API, the WebSocket API with `$connect` / `$default` /
//! `$disconnect` semantics, its `@connections` management endpoint, `config.json` and the dashboard.
//!
//! With `--token`, everything but `/healthz`, `config.json` and the dashboard's static files needs the
//! credential ([`require_credential`]): `Authorization: Bearer` or `x-api-key` on HTTP, `?token=` on
//! the WebSocket handshake. Without it local mode is zero-config and open to whoever reaches the port.
//!
//! Free LocalStack has no WebSocket APIs and SAM has no local WebSocket support, so local mode brings
//! its own gateway that runs the same route logic (`flowscope_core::live::session`) as the Lambdas.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use flowscope_core::api::ApiRouter;
use flowscope_core::auth::{ApiKeys, AuthError, CHALLENGE};
use flowscope_core::ingest::Ingest;
use flowscope_core::live::session::{self, ConnectError};
use flowscope_core::live::{LiveHub, ServerMessage};
use flowscope_core::ports::{
    AlertStore, ConnectionPusher, ConnectionStore, MetricStore, PushError, StreamSink,
};
use futures::{SinkExt, StreamExt};
use tower_http::services::{ServeDir, ServeFile};

use super::alerting::push_events;
use super::connections::{LocalConnections, Outgoing};
use super::stats::AggregatorStats;
use super::unix_now;

#[derive(Clone)]
pub struct GatewayState {
    pub connections: Arc<dyn ConnectionStore>,
    pub pusher: Arc<LocalConnections>,
    pub hub: Arc<LiveHub>,
    pub ingest: Arc<Ingest<dyn StreamSink>>,
    pub aggregator_stats: Arc<AggregatorStats>,
    pub api: Arc<ApiRouter<dyn MetricStore, dyn AlertStore>>,
    /// The `--token` credential (hashed); empty = no credential needed.
    pub keys: ApiKeys,
    pub dashboard_dir: PathBuf,
}

pub fn router(state: GatewayState) -> Router {
    let dashboard = ServeDir::new(&state.dashboard_dir)
        .fallback(ServeFile::new(state.dashboard_dir.join("index.html")));
    let has_dashboard = state.dashboard_dir.join("index.html").exists();
    let router = Router::new()
        .route("/api/pipeline", get(pipeline_stats))
        .route("/api/{*path}", any(api_routes))
        .route("/ws", get(websocket))
        .route(
            "/@connections/{id}",
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        // Every route above needs the credential when a token is set; the ones below never do.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_credential,
        ))
        .route("/config.json", get(config))
        .route("/healthz", get(|| async { "ok" }));
    let router = if has_dashboard {
        router.fallback_service(dashboard)
    } else {
        tracing::warn!(
            dir = %state.dashboard_dir.display(),
            "dashboard not built; run `npm ci && npm run build` in dashboard/ (scripts/run-local.sh does)"
        );
        router.fallback(get(no_dashboard))
    };
    router.with_state(state)
}

/// With a token set: the credential from `Authorization: Bearer` / `x-api-key`, or `?token=` on
/// `/ws` (browsers cannot set headers there); otherwise 401 with the reason. Without a token: open.
async fn require_credential(
    State(state): State<GatewayState>,
    request: Request,
    next: Next,
) -> Response {
    if state.keys.is_empty() {
        return next.run(request).await;
    }
    match check_credential(&state.keys, request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => unauthorized(error),
    }
}

fn check_credential(keys: &ApiKeys, uri: &Uri, headers: &HeaderMap) -> Result<(), AuthError> {
    if uri.path() == "/ws" {
        // The same check `$connect` makes (session::on_connect), before the upgrade is attempted.
        let token = Query::<ConnectParams>::try_from_uri(uri)
            .ok()
            .and_then(|Query(params)| params.token);
        return keys.check_query_token(token.as_deref());
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    keys.check_headers(text(header::AUTHORIZATION.as_str()), text("x-api-key"))
}

/// 401 with `{"error": "<reason>"}` and a `WWW-Authenticate: Bearer` challenge.
fn unauthorized(error: AuthError) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::WWW_AUTHENTICATE, CHALLENGE),
        ],
        error.json_body(),
    )
        .into_response()
}

/// `/api/*`: the alert routes (which also take POST/DELETE) or the read-only query API.
async fn api_routes(
    State(state): State<GatewayState>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (path, query) = (uri.path(), uri.query().unwrap_or(""));
    let routed = state
        .api
        .handle(method.as_str(), path, query, &body, unix_now())
        .await;
    // An acknowledgement is shown to every client watching the service at once.
    push_events(
        state.connections.as_ref(),
        state.pusher.as_ref(),
        &routed.events,
    )
    .await;
    let status =
        StatusCode::from_u16(routed.response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        routed.response.body,
    )
        .into_response();
    if let Some(allow) = routed.allow {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// Counters of every stage, for operators and the benchmark script.
async fn pipeline_stats(State(state): State<GatewayState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "ingest": state.ingest.stats(),
        "aggregator": state.aggregator_stats.snapshot(),
        "live": { "seq": state.hub.current_seq() },
    }))
}

/// Public, so it carries endpoints and mode only — never a credential. `auth` tells the dashboard
/// whether to ask for the token before its first request.
async fn config(State(state): State<GatewayState>) -> Json<serde_json::Value> {
    // URLs are left to the page (same origin) so the dashboard works behind any host name or port.
    Json(serde_json::json!({
        "apiBaseUrl": "",
        "mode": "local",
        "auth": if state.keys.is_empty() { "none" } else { "token" },
    }))
}

async fn no_dashboard() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Flowscope</title><h1>Flowscope is running</h1>\
         <p>The dashboard is not built. Run <code>scripts/run-local.sh</code> (or <code>npm ci &amp;&amp; \
         npm run build</code> in <code>dashboard/</code>) and reload.</p>\
         <p>API: <a href=\"/api/services\">/api/services</a></p>",
    )
}

#[derive(serde::Deserialize)]
struct ConnectParams {
    token: Option<String>,
}

/// `$connect`: authenticate before upgrading, so a refused client sees 401 on the handshake.
async fn websocket(
    State(state): State<GatewayState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(params): Query<ConnectParams>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let connection_id = new_connection_id();
    match session::on_connect(
        state.connections.as_ref(),
        &state.keys,
        &connection_id,
        params.token.as_deref(),
        unix_now(),
    )
    .await
    {
        Ok(()) => {}
        Err(ConnectError::Unauthorized(error)) => return unauthorized(error),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
    // API Gateway's limit: 128 KB per message.
    upgrade
        .max_message_size(128 * 1024)
        .on_upgrade(move |socket| serve_connection(state, socket, connection_id, peer))
}

async fn serve_connection(
    state: GatewayState,
    socket: WebSocket,
    connection_id: String,
    peer: SocketAddr,
) {
    let mut outbox = state.pusher.register(&connection_id, peer.ip().to_string());
    let (mut sink, mut incoming) = socket.split();
    let hello = ServerMessage::Hello {
        connection_id: connection_id.clone(),
        seq: state.hub.current_seq(),
    };
    if sink
        .send(Message::Text(hello.to_json().into()))
        .await
        .is_ok()
    {
        loop {
            tokio::select! {
                outgoing = outbox.recv() => match outgoing {
                    Some(Outgoing::Text(text)) => {
                        if sink.send(Message::Text(text.into())).await.is_err() { break; }
                    }
                    Some(Outgoing::Close) | None => { let _ = sink.send(Message::Close(None)).await; break; }
                },
                incoming = incoming.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let reply = session::on_message(
                            state.connections.as_ref(), state.hub.as_ref(), &connection_id, text.as_str(), unix_now(),
                        ).await;
                        let reply = match reply {
                            Ok(reply) => reply,
                            Err(e) => Some(ServerMessage::Error { message: e.to_string() }),
                        };
                        if let Some(reply) = reply {
                            // Through the same outbox as pushes, so replies and updates stay in order.
                            if state.pusher.post(&connection_id, Bytes::from(reply.to_json())).await.is_err() { break; }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let error = ServerMessage::Error { message: "binary messages are not supported; send JSON text".into() };
                        if sink.send(Message::Text(error.to_json().into())).await.is_err() { break; }
                    }
                    Some(Ok(_)) => {} // ping/pong are answered by the library
                    Some(Err(_)) | None => break,
                },
            }
        }
    }
    // `$disconnect`
    state.pusher.unregister(&connection_id);
    if let Err(e) = session::on_disconnect(state.connections.as_ref(), &connection_id).await {
        tracing::warn!(%connection_id, error = %e, "disconnect cleanup failed");
    }
}

/// `POST /@connections/{id}`: PostToConnection.
async fn post_to_connection(
    State(state): State<GatewayState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > 128 * 1024 {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(serde_json::json!({"message": "message exceeds 128 KB"})),
        )
            .into_response();
    }
    match state.pusher.post(&id, body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(PushError::Gone) => gone(),
        Err(PushError::Failed(reason)) => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({ "message": reason })),
        )
            .into_response(),
    }
}

/// `GET /@connections/{id}`: GetConnection.
async fn get_connection(State(state): State<GatewayState>, Path(id): Path<String>) -> Response {
    match state.pusher.info(&id) {
        Some(info) => Json(info).into_response(),
        None => gone(),
    }
}

/// `DELETE /@connections/{id}`: DeleteConnection.
async fn delete_connection(State(state): State<GatewayState>, Path(id): Path<String>) -> Response {
    if state.pusher.close(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        gone()
    }
}

/// API Gateway's answer for an unknown connection; the SDK maps it to `GoneException`.
fn gone() -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-errortype", "GoneException")],
        Json(serde_json::json!({ "message": "Gone" })),
    )
        .into_response()
}

/// Connection ids shaped like API Gateway's (12 random bytes, base64 → 16 characters).
fn new_connection_id() -> String {
    use base64::Engine;
    let bytes: [u8; 12] = rand::random();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}
