//! The OTLP/HTTP port (4318): a thin axum adapter over the core receiver.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use flowscope_core::ingest::{Ingest, IngestRequest, IngestResponse, Signal};
use flowscope_core::ports::StreamSink;
use http_body_util::BodyExt;
use tower_http::cors::CorsLayer;

use super::serve;

type Receiver = Arc<Ingest<dyn StreamSink>>;

pub fn router(ingest: Receiver) -> Router {
    Router::new()
        .route("/v1/metrics", post(metrics))
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        // The receiver enforces its own limit and answers 413 with a google.rpc.Status; axum's
        // default 2 MB cap would answer first, with a plain-text body.
        .layer(DefaultBodyLimit::disable())
        // Browser SDKs export with CORS.
        .layer(CorsLayer::permissive())
        .with_state(ingest)
}

async fn metrics(State(ingest): State<Receiver>, headers: HeaderMap, body: Body) -> Response {
    handle(&ingest, Signal::Metrics, &headers, body).await
}

async fn traces(State(ingest): State<Receiver>, headers: HeaderMap, body: Body) -> Response {
    handle(&ingest, Signal::Traces, &headers, body).await
}

async fn logs(State(ingest): State<Receiver>, headers: HeaderMap, body: Body) -> Response {
    handle(&ingest, Signal::Logs, &headers, body).await
}

async fn handle(ingest: &Receiver, signal: Signal, headers: &HeaderMap, body: Body) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let limit = ingest.limits().max_body_bytes;
    let body: Bytes = match read_body(body, limit, serve::declared_length(headers)).await {
        Ok(body) => body,
        Err(ReadError::TooLarge { read }) => {
            // The rest of the body has been read and discarded (up to a bound), so the client
            // receives this answer; the connection closes after it either way.
            let mut response =
                into_response(ingest.body_too_large(text(header::CONTENT_TYPE).as_deref(), read));
            serve::close_after(&mut response);
            return response;
        }
        Err(ReadError::Unreadable(error)) => {
            tracing::debug!(%error, "reading an OTLP request body failed");
            let mut response = serve::error_response(
                serve::ErrorStyle::Otlp,
                text(header::CONTENT_TYPE).as_deref(),
                StatusCode::BAD_REQUEST,
                "the request body could not be read (it ended early or stalled)",
            );
            serve::close_after(&mut response);
            return response;
        }
    };
    let request = IngestRequest {
        signal,
        content_type: text(header::CONTENT_TYPE),
        content_encoding: text(header::CONTENT_ENCODING),
        body,
    };
    into_response(ingest.handle(request).await)
}

enum ReadError {
    /// Over the limit; `read` bytes were seen before giving up.
    TooLarge {
        read: usize,
    },
    Unreadable(axum::Error),
}

/// Reads a body of at most `limit` bytes. An oversized one (by its `Content-Length` or as it
/// arrives) is read on and discarded up to [`serve::drain_bound`], so that a keep-alive client gets
/// the 413 instead of a reset.
async fn read_body(body: Body, limit: usize, declared: Option<u64>) -> Result<Bytes, ReadError> {
    let bound = serve::drain_bound(limit);
    if let Some(declared) = declared.filter(|n| *n > limit as u64) {
        serve::drain(body, bound).await;
        return Err(ReadError::TooLarge {
            read: usize::try_from(declared).unwrap_or(usize::MAX),
        });
    }
    let mut body = body;
    // The first data frame is kept as it is: a body that arrives in one frame is never copied.
    let mut first: Option<Bytes> = None;
    // Sized by the declared length (at most the limit), so a large body is not copied on each growth.
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Unreadable)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buffer.len();
        let read = held.saturating_add(data.len());
        if read > limit {
            serve::drain(body, bound).await;
            return Err(ReadError::TooLarge { read });
        }
        match first.take() {
            None if buffer.is_empty() => first = Some(data),
            earlier => {
                if buffer.is_empty() {
                    let expected = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
                    buffer.reserve(expected.clamp(read, limit));
                }
                if let Some(earlier) = earlier {
                    buffer.extend_from_slice(&earlier);
                }
                buffer.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buffer.freeze()))
}

fn into_response(response: IngestResponse) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if let Ok(value) = HeaderValue::from_str(&response.content_type) {
        builder = builder.header(header::CONTENT_TYPE, value);
    }
    if let Some(seconds) = response.retry_after_seconds {
        builder = builder.header(header::RETRY_AFTER, seconds.to_string());
    }
    builder
        .body(Body::from(response.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
