//! One hardened HTTP/1.1 server for both local ports (OTLP :4318 and the gateway :8080), on hyper's
//! connection builder with the axum router as the service (axum's `serve-with-hyper` pattern).
//!
//! What it bounds, and how:
//! - **Header-read timeout** (hyper's `header_read_timeout` with a `TokioTimer`): a request head must
//!   arrive whole within the timeout. hyper starts this timer whenever it starts waiting for a request
//!   head, which includes the wait for the next request on a keep-alive connection, so an idle
//!   keep-alive connection is also closed after this timeout (checked in hyper 1.12's
//!   `proto/h1/conn.rs::poll_read_head`, and tested).
//! - **Idle timeout** during a request: the longest a request body may pause between chunks
//!   (tower-http's `TimeoutBody`, reset on every frame), and the longest a response write may wait
//!   on a client that does not read (the socket wrapper below). A handler that is merely slow is not
//!   cut off.
//! - **Connection limit** per port: at the limit the server stops accepting until a slot frees.
//!   New clients wait in the kernel's listen backlog instead of being accepted and reset, so a
//!   well-behaved client is served as soon as a slot frees (a slow-header connection frees its slot
//!   at the header-read timeout at the latest). An upgraded WebSocket keeps its slot until it closes.
//! - **URI and header sizes**: hyper's parser limits are set above ours, so these answers come from
//!   here with a reason in the body (414, 431). Beyond hyper's hard limits — a URI over 65,534 bytes,
//!   a request head over the parser limit or more than [`PARSER_MAX_HEADERS`] header fields — hyper
//!   itself answers 414/431 with an empty body and closes.
//! - **Bodies** (API port): buffered up to a limit; an oversized body is read and discarded up to
//!   [`drain_bound`] so the client actually receives the 413 (with `Connection: close`) instead of a
//!   reset. The OTLP port's handlers do the same with the receiver's own limit.
//! - **405** and **404** answers with an empty body get a reason (the `Allow` header is kept).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use flowscope_core::otlp::response::status_body;
use flowscope_core::otlp::Format;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;
use tracing::Instrument;

/// Most header fields a request may carry before we answer 431.
pub const MAX_HEADER_FIELDS: usize = 100;
/// hyper's own limit on header fields, above ours so that our 431 (with a reason) answers first.
pub const PARSER_MAX_HEADERS: usize = 256;
/// How error bodies are shaped on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error": "..."}`, as the query API answers.
    Api,
    /// `google.rpc.Status` in the request's OTLP format, JSON when the format is unknown.
    Otlp,
}

/// The limits of one port.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    /// Buffer request bodies up to this size and answer 413 beyond it; `None` leaves bodies to the
    /// handlers (the OTLP receiver enforces its own limit).
    pub max_body_bytes: Option<usize>,
    pub errors: ErrorStyle,
}

impl ServeConfig {
    /// hyper's limit on a request head (start line + headers): above ours, so we answer first.
    fn parser_max_head_bytes(&self) -> usize {
        self.max_uri_bytes
            .saturating_add(self.max_header_bytes)
            .saturating_mul(2)
            .max(64 * 1024)
    }
}

pub use flowscope_core::http::body::{close_after, declared_length, drain, drain_bound};

/// Serves `router` on `listener` until `stopped` turns true, then stops accepting, lets requests in
/// flight finish and returns once every connection has closed (upgraded WebSockets excepted).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    let head_limit = config.parser_max_head_bytes();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(PARSER_MAX_HEADERS)
        .max_header_size(head_limit)
        .max_buf_size(head_limit.max(8192 + 4096 * 100));
    // Every connection task holds a sender; all dropped = every connection closed.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit?,
            _ = stopping(&mut stopped) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping(&mut stopped) => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(GuardedStream::new(stream, permit, config.idle_timeout));
        let app = App {
            router: router.clone(),
            config: config.clone(),
            peer,
        };
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let app = app.clone();
            // Log lines of this request carry its trace and span ids (crate::logs).
            let span = crate::logs::request_span(
                request.method().as_str(),
                request.uri().path(),
                request.headers(),
            );
            async move { Ok::<_, Infallible>(app.handle(request).instrument(span).await) }
        });
        let connection = builder.serve_connection(io, service).with_upgrades();
        let mut stop = stopped.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                _ = stopping(&mut stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// Resolves once local mode stops (or its stop signal is gone).
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

#[derive(Clone)]
struct App {
    router: Router,
    config: Arc<ServeConfig>,
    peer: SocketAddr,
}

impl App {
    async fn handle(self, request: Request<Incoming>) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let error = |status: StatusCode, message: String| {
            error_response(
                self.config.errors,
                content_type.as_deref(),
                status,
                &message,
            )
        };
        let uri_bytes = parts.uri.to_string().len();
        if uri_bytes > self.config.max_uri_bytes {
            let mut response = error(
                StatusCode::URI_TOO_LONG,
                format!(
                    "the request URI is {uri_bytes} bytes; at most {} bytes are accepted",
                    self.config.max_uri_bytes
                ),
            );
            close_after(&mut response);
            return response;
        }
        let header_fields = parts.headers.len();
        let header_bytes: usize = parts
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_fields > MAX_HEADER_FIELDS || header_bytes > self.config.max_header_bytes {
            let mut response = error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "the request headers are {header_bytes} bytes in {header_fields} fields; at most {} bytes and {MAX_HEADER_FIELDS} fields are accepted",
                    self.config.max_header_bytes
                ),
            );
            close_after(&mut response);
            return response;
        }
        parts.extensions.insert(ConnectInfo(self.peer));
        let body = TimeoutBody::new(self.config.idle_timeout, body);
        let body = match self.config.max_body_bytes {
            None => Body::new(body),
            Some(limit) => match buffer_body(body, limit, declared_length(&parts.headers)).await {
                Ok(bytes) => Body::from(bytes),
                Err(BodyError::TooLarge) => {
                    let mut response = error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the request body is larger than {limit} bytes"),
                    );
                    close_after(&mut response);
                    return response;
                }
                Err(BodyError::Unreadable) => {
                    let mut response = error(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read (ended early or stalled)".into(),
                    );
                    close_after(&mut response);
                    return response;
                }
            },
        };
        let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
        let response = match self.router.oneshot(Request::from_parts(parts, body)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        if (status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND)
            && response.body().size_hint().exact() == Some(0)
        {
            let message = if status == StatusCode::NOT_FOUND {
                format!("no route for {path}")
            } else {
                let allow = response
                    .headers()
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                format!("{method} is not allowed on {path}; allowed: {allow}")
            };
            let mut answer = error(status, message);
            for (name, value) in response.headers() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    answer.headers_mut().insert(name.clone(), value.clone());
                }
            }
            return answer;
        }
        response
    }
}

enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads a whole body of at most `limit` bytes; an oversized one is drained (see [`drain`]).
async fn buffer_body<B>(body: B, limit: usize, declared: Option<u64>) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
{
    if declared.is_some_and(|n| n > limit as u64) {
        drain(body, drain_bound(limit)).await;
        return Err(BodyError::TooLarge);
    }
    let mut body = Box::pin(body);
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        if let Some(data) = frame.data_ref() {
            if buffer.len().saturating_add(data.len()) > limit {
                drain(body, drain_bound(limit)).await;
                return Err(BodyError::TooLarge);
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(buffer.freeze())
}

/// An error answer shaped for the port.
pub fn error_response(
    style: ErrorStyle,
    content_type: Option<&str>,
    status: StatusCode,
    message: &str,
) -> Response<Body> {
    let (content_type, body) = match style {
        ErrorStyle::Api => (
            "application/json",
            serde_json::json!({ "error": message })
                .to_string()
                .into_bytes(),
        ),
        ErrorStyle::Otlp => {
            let format = Format::from_content_type(content_type).unwrap_or(Format::Json);
            (
                format.content_type(),
                status_body(format, grpc_code(status), message),
            )
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `google.rpc.Code` for an HTTP status, as the OTLP/HTTP mapping pairs them.
fn grpc_code(status: StatusCode) -> i32 {
    use flowscope_core::otlp::response::code;
    match status {
        StatusCode::METHOD_NOT_ALLOWED => 12, // UNIMPLEMENTED
        StatusCode::PAYLOAD_TOO_LARGE => code::RESOURCE_EXHAUSTED,
        s if s.is_server_error() => code::INTERNAL,
        _ => code::INVALID_ARGUMENT,
    }
}

/// A TCP stream that holds its connection slot until it is dropped (also after a WebSocket upgrade)
/// and fails a write that has waited `idle` for a client that does not read.
struct GuardedStream {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    write_stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl GuardedStream {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit, idle: Duration) -> Self {
        GuardedStream {
            inner,
            _slot: slot,
            idle,
            write_stall: None,
        }
    }

    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(result) => {
                self.write_stall = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let idle = self.idle;
                let stall = self
                    .write_stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read the response within the idle timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

use std::future::Future as _;

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
