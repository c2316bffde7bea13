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
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flowscope_core::http::{self as core_http, AlertEvents, ApiState};
use flowscope_core::ingest::Ingest;
use flowscope_core::live::session::{self, ConnectError};
use flowscope_core::live::{ClientMessage, LiveHub, ServerMessage, MAX_MESSAGE_BYTES};
use flowscope_core::ports::{
    ConnectionPusher, ConnectionStore, PushError, StreamSink, Subscription,
};
use flowscope_core::tokens::Authenticator;
use futures::{SinkExt, StreamExt};
use tower_http::services::{ServeDir, ServeFile};

use super::alerting::push_events;
use super::connections::{LocalConnections, Outgoing, Queue, Registration, StopReason};
use super::stats::AggregatorStats;
use super::unix_now;

#[derive(Clone)]
pub struct GatewayState {
    pub connections: Arc<dyn ConnectionStore>,
    pub pusher: Arc<LocalConnections>,
    pub hub: Arc<LiveHub>,
    pub ingest: Arc<Ingest<dyn StreamSink>>,
    pub aggregator_stats: Arc<AggregatorStats>,
    /// `GET /metrics` (Prometheus text).
    pub metrics: Arc<super::metrics::Endpoint>,
    /// The ports behind `/api/*` (the core's router, shared with the query function).
    pub api: ApiState,
    /// Keys (hashed), their scopes and the token verifier; no key = no credential needed.
    pub auth: Arc<Authenticator>,
    pub dashboard_dir: PathBuf,
}

pub fn router(state: GatewayState) -> Router {
    let dashboard = ServeDir::new(&state.dashboard_dir)
        .fallback(ServeFile::new(state.dashboard_dir.join("index.html")));
    let has_dashboard = state.dashboard_dir.join("index.html").exists();
    // The core's `/api/*` routes; an acknowledgement's alert events go to live clients from here.
    let api = core_http::api::router(state.api.clone()).layer(middleware::from_fn_with_state(
        state.clone(),
        push_alert_events,
    ));
    let router = Router::new()
        .route("/api/pipeline", get(pipeline_stats))
        .route("/metrics", get(own_metrics))
        .route("/ws", get(websocket))
        .route(
            "/@connections/{id}",
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .with_state(state.clone())
        .merge(api)
        // Every route above needs the credential when a token is set; the ones below never do.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_credential,
        ))
        .route("/config.json", get(config).with_state(state.clone()))
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
    router
}

/// With a key set: the credential from `Authorization: Bearer` / `x-api-key`, or `?token=` on
/// `/ws` (browsers cannot set headers there) — a key or a signed token — with the scope of the
/// route; otherwise 401/403 with the reason. Without a key: open.
async fn require_credential(
    State(state): State<GatewayState>,
    mut request: Request,
    next: Next,
) -> Response {
    if state.auth.is_open() {
        return next.run(request).await;
    }
    match core_http::auth::authorize_request(&state.auth, &mut request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => core_http::auth::denied(&refusal),
    }
}

/// Pushes the alert events an `/api/*` request caused (an acknowledgement) to every client watching
/// the service, at once.
async fn push_alert_events(
    State(state): State<GatewayState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(AlertEvents(events)) = response.extensions_mut().remove::<AlertEvents>() {
        push_events(state.connections.as_ref(), state.pusher.as_ref(), &events).await;
    }
    response
}

/// Counters of every stage, for operators and the benchmark script.
async fn pipeline_stats(State(state): State<GatewayState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "ingest": state.ingest.stats(),
        "aggregator": state.aggregator_stats.snapshot(),
        "live": live_stats(&state),
    }))
}

/// Local mode's own metrics in the Prometheus/OpenMetrics text format (`metrics.rs`).
/// OpenMetrics when the `Accept` header asks for it (Prometheus does), else Prometheus text 0.0.4.
async fn own_metrics(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    use super::metrics::{to_prometheus_text, wants_openmetrics, OPENMETRICS, PROMETHEUS_TEXT};
    let text = state.metrics.render();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if wants_openmetrics(accept) {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            to_prometheus_text(&text),
        )
            .into_response()
    }
}

/// Public, so it carries endpoints and mode only — never a credential. `auth` tells the dashboard
/// whether to ask for the token before its first request.
async fn config(State(state): State<GatewayState>) -> Json<serde_json::Value> {
    // URLs are left to the page (same origin) so the dashboard works behind any host name or port.
    Json(serde_json::json!({
        "apiBaseUrl": "",
        "mode": "local",
        "auth": if state.auth.is_open() { "none" } else { "token" },
        // The dashboard trades the key for a short-lived token at `POST /api/token` when true.
        "tokens": state.auth.issuer().is_some(),
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
    match session::on_connect_with(
        state.connections.as_ref(),
        &state.auth,
        &connection_id,
        params.token.as_deref(),
        unix_now(),
    )
    .await
    {
        Ok(()) => {}
        Err(ConnectError::Unauthorized(refusal)) => return core_http::auth::denied(&refusal),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
    // Client messages are tiny subscriptions: a frame or message past the limit closes with 1009.
    let max_inbound = state.pusher.limits().max_inbound_bytes;
    upgrade
        // The library's default read buffer is 128 KiB per connection, allocated and zeroed on
        // every read: 1.4 GB and most of the CPU with 10,000 dashboards. Client messages are tiny
        // subscriptions; a larger one grows the buffer as it arrives.
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .max_message_size(max_inbound)
        .max_frame_size(max_inbound)
        // Sends wait for the socket, so the library's buffer holds about one message.
        .max_write_buffer_size(4 * MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve_connection(state, socket, connection_id, peer))
}

/// The live section of `/api/pipeline`: sequence, connections, send queues and replay buffer.
fn live_stats(state: &GatewayState) -> serde_json::Value {
    let connections = state.pusher.stats();
    let replay = state.hub.replay_stats();
    serde_json::json!({
        "seq": state.hub.current_seq(),
        "connections": connections.connections,
        "queued_bytes": connections.queued_bytes,
        "queued_bytes_peak": connections.queued_bytes_peak,
        "send_queue_limit_bytes": connections.send_queue_limit_bytes,
        "closed_behind": connections.closed_behind,
        "resyncs": connections.resyncs,
        "replay_batches": replay.batches,
        "replay_bytes": replay.bytes,
    })
}

/// Close code for a client that fell behind: "try again later". The dashboard reconnects and
/// subscribes afresh (no `last_seq`), so it gets a snapshot.
pub const CLOSE_FELL_BEHIND: u16 = 1013;
/// Close code for a client message over the limit: "message too big".
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Initial read buffer of one WebSocket connection (see `websocket`).
const WS_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Queued messages one flush to the socket may carry. The library writes its buffer out whenever it
/// passes 128 KiB, so a batch never holds more than that plus one message (≤ `MAX_MESSAGE_BYTES`)
/// unsent, under the `max_write_buffer_size` set at the upgrade.
const WRITE_BATCH_MESSAGES: usize = 8;
/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type WsSink = futures::stream::SplitSink<WebSocket, Message>;

/// Why a connection's loop ended.
enum Ended {
    /// The client left or the socket failed: nothing more to send.
    Gone,
    Stopped(StopReason),
    TooBig,
}

/// Sends one text, giving up at once if the connection is told to stop meanwhile (a client that
/// does not read would otherwise hold its writer here forever).
async fn send_text(
    sink: &mut WsSink,
    queue: &Queue,
    text: impl Into<Utf8Bytes>,
) -> Result<(), Ended> {
    tokio::select! {
        sent = sink.send(Message::Text(text.into())) => sent.map_err(|_| Ended::Gone),
        reason = queue.stopped() => Err(Ended::Stopped(reason)),
    }
}

/// Buffers one text for the next write; like [`send_text`], gives up if told to stop meanwhile.
async fn feed_text(sink: &mut WsSink, queue: &Queue, text: Utf8Bytes) -> Result<(), Ended> {
    tokio::select! {
        sent = sink.feed(Message::Text(text)) => sent.map_err(|_| Ended::Gone),
        reason = queue.stopped() => Err(Ended::Stopped(reason)),
    }
}

/// Writes what [`feed_text`] buffered.
async fn flush_sink(sink: &mut WsSink, queue: &Queue) -> Result<(), Ended> {
    tokio::select! {
        sent = sink.flush() => sent.map_err(|_| Ended::Gone),
        reason = queue.stopped() => Err(Ended::Stopped(reason)),
    }
}

/// A read error caused by a message or frame over `max_message_size`/`max_frame_size`.
fn is_too_big(error: &axum::Error) -> bool {
    // axum wraps tungstenite's `Error::Capacity(MessageTooLong)` ("Space limit exceeded: Message
    // too long: …"); the close-code test in cli/tests/local_ws_bounds.rs guards this wording.
    error.to_string().contains("Message too long")
}

async fn serve_connection(
    state: GatewayState,
    socket: WebSocket,
    connection_id: String,
    peer: SocketAddr,
) {
    let Registration { mut inbox, queue } =
        state.pusher.register(&connection_id, peer.ip().to_string());
    let (mut sink, mut incoming) = socket.split();
    let Err(ended) = serve_messages(
        &state,
        &connection_id,
        &mut sink,
        &mut incoming,
        &mut inbox,
        &queue,
    )
    .await;
    // The queue's messages go now, not when the close handshake ends.
    state.pusher.unregister(&connection_id, &queue);
    drop(inbox);
    let close = |code: u16, reason: String| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    match ended {
        Ended::Gone => {}
        Ended::Stopped(StopReason::Deleted) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(None))).await;
        }
        Ended::Stopped(StopReason::FellBehind) => {
            let reason = format!(
                "fell more than {} bytes behind; reconnect and subscribe again",
                state.pusher.limits().send_queue_bytes
            );
            let message = close(CLOSE_FELL_BEHIND, reason);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(message)).await;
        }
        Ended::TooBig => {
            let reason = format!(
                "message exceeds {} bytes",
                state.pusher.limits().max_inbound_bytes
            );
            let message = close(CLOSE_TOO_BIG, reason);
            if let Ok(Ok(())) = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(message)).await {
                // The rest of the oversized message cannot be read past (the library stops at its
                // header), and closing with unread input makes the kernel reset the connection,
                // which can destroy the close frame in flight: give the client a moment to read it.
                tokio::time::sleep(CLOSE_TIMEOUT).await;
            }
        }
    }
    // `$disconnect`
    if let Err(e) = session::on_disconnect(state.connections.as_ref(), &connection_id).await {
        tracing::warn!(%connection_id, error = %e, "disconnect cleanup failed");
    }
}

/// The connection's loop: queued pushes out, client messages in, replies streamed part by part.
async fn serve_messages(
    state: &GatewayState,
    connection_id: &str,
    sink: &mut WsSink,
    incoming: &mut futures::stream::SplitStream<WebSocket>,
    inbox: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    queue: &Queue,
) -> Result<std::convert::Infallible, Ended> {
    let hello = ServerMessage::Hello {
        connection_id: connection_id.to_string(),
        seq: state.hub.current_seq(),
    };
    send_text(sink, queue, hello.to_json()).await?;
    // The `seq` of the last resume reply: queued updates up to it are already in that reply.
    let mut resumed_at: Option<u64> = None;
    // This connection's subscription, for a resync after its queue overflowed.
    let mut subscription: Option<Subscription> = None;
    loop {
        tokio::select! {
            reason = queue.stopped() => return Err(Ended::Stopped(reason)),
            () = queue.resync_owed() => {
                // The queue overflowed: drop what is queued and send the current state instead.
                queue.start_resync();
                while let Ok(message) = inbox.try_recv() {
                    state.pusher.dequeued(queue, &message);
                }
                if let Some(subscription) = &subscription {
                    if let Some(snapshot) = state.hub.resume(None, subscription) {
                        if let ServerMessage::Snapshot { seq, .. } = &snapshot {
                            resumed_at = Some(*seq);
                        }
                        for text in snapshot.into_parts(MAX_MESSAGE_BYTES).texts {
                            send_text(sink, queue, text).await?;
                        }
                    }
                }
            }
            outgoing = inbox.recv() => {
                let Some(message) = outgoing else { return Err(Ended::Gone) };
                // What is queued now goes out in one write (a flush's update and trace messages,
                // or a backlog), not one write per message.
                let mut next = Some(message);
                let mut fed = 0;
                while let Some(message) = next.take() {
                    state.pusher.dequeued(queue, &message);
                    let covered = message.is_update
                        && matches!((message.seq, resumed_at), (Some(seq), Some(at)) if seq <= at);
                    if !covered {
                        super::metrics::events().ws_sent(message.text.len());
                        feed_text(sink, queue, message.text).await?;
                        fed += 1;
                    }
                    if fed < WRITE_BATCH_MESSAGES {
                        next = inbox.try_recv().ok();
                    }
                }
                if fed > 0 {
                    flush_sink(sink, queue).await?;
                }
            }
            received = incoming.next() => match received {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(ClientMessage::Subscribe { services, metrics, .. }) = serde_json::from_str(text.as_str()) {
                        subscription = Some(Subscription { services, metrics });
                    }
                    let reply = session::on_message(
                        state.connections.as_ref(), state.hub.as_ref(), connection_id, text.as_str(), unix_now(),
                    ).await;
                    let reply = match reply {
                        Ok(reply) => reply,
                        Err(e) => Some(ServerMessage::Error { message: e.to_string() }),
                    };
                    let Some(reply) = reply else { continue };
                    if let ServerMessage::Snapshot { seq, .. } | ServerMessage::MetricsUpdate { seq, .. } = &reply {
                        resumed_at = Some(*seq);
                    }
                    // Straight to the socket, part by part at the client's pace: a snapshot is not
                    // held in the send queue, whose bound is for pushes.
                    for text in reply.into_parts(MAX_MESSAGE_BYTES).texts {
                        send_text(sink, queue, text).await?;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let error = ServerMessage::Error { message: "binary messages are not supported; send JSON text".into() };
                    send_text(sink, queue, error.to_json()).await?;
                }
                Some(Ok(_)) => {} // ping/pong are answered by the library
                Some(Err(e)) if is_too_big(&e) => return Err(Ended::TooBig),
                Some(Err(_)) | None => return Err(Ended::Gone),
            },
        }
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
