//! The OTLP/HTTP receiver's routes (`POST /v1/metrics`, `/v1/traces`, `/v1/logs`): a thin adapter over
//! [`Ingest::handle`], which holds the OTLP semantics (decoding, limits, partial success,
//! `Retry-After`). Bodies are read here up to the receiver's own limit; an oversized one is read on
//! and discarded up to [`body::drain_bound`] so that the client receives the 413 (with a
//! `google.rpc.Status`) instead of a reset.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Extension;
use axum::Router;
use http_body_util::BodyExt;

use super::body;
use crate::ingest::{Ingest, IngestRequest, IngestResponse, Signal};
use crate::otlp::response::{code, status_body};
use crate::otlp::Format;
use crate::ports::StreamSink;
use crate::tokens::Principal;

/// The receiver the routes hand requests to.
pub type Receiver = Arc<Ingest<dyn StreamSink>>;

/// `google.rpc.Code.NOT_FOUND`.
const NOT_FOUND: i32 = 5;

/// `POST /v1/metrics`, `/v1/traces`, `/v1/logs`. No fallback: local mode answers unknown paths with
/// its server's reason-carrying 404; the ingest function adds [`not_found`].
pub fn router(ingest: Receiver) -> Router {
    Router::new()
        .route("/v1/metrics", post(metrics))
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        // The receiver enforces its own limit and answers 413 with a google.rpc.Status; axum's
        // default 2 MB cap would answer first, with a plain-text body.
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

async fn metrics(
    State(ingest): State<Receiver>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&ingest, Signal::Metrics, principal, &headers, body).await
}

async fn traces(
    State(ingest): State<Receiver>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&ingest, Signal::Traces, principal, &headers, body).await
}

async fn logs(
    State(ingest): State<Receiver>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&ingest, Signal::Logs, principal, &headers, body).await
}

/// The answer for a path that is no OTLP endpoint: 404 with a `google.rpc.Status`.
pub async fn not_found(headers: HeaderMap, uri: Uri) -> Response {
    let message = format!(
        "no OTLP endpoint at {}: use /v1/metrics, /v1/traces or /v1/logs",
        uri.path()
    );
    status_refusal(
        content_type(&headers).as_deref(),
        Format::Protobuf,
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        &message,
    )
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    header_text(headers, header::CONTENT_TYPE)
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A `google.rpc.Status` refusal in the request's format (`fallback` when it cannot be told).
pub fn status_refusal(
    content_type: Option<&str>,
    fallback: Format,
    status: StatusCode,
    code: i32,
    message: &str,
) -> Response {
    let format = Format::from_content_type(content_type).unwrap_or(fallback);
    into_response(IngestResponse {
        status: status.as_u16(),
        content_type: format.content_type().to_string(),
        body: status_body(format, code, message),
        retry_after_seconds: None,
    })
}

async fn handle(
    ingest: &Receiver,
    signal: Signal,
    principal: Option<Extension<Principal>>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let limit = ingest.limits().max_body_bytes;
    let body: Bytes = match read_body(body, limit, body::declared_length(headers)).await {
        Ok(body) => body,
        Err(ReadError::TooLarge { read }) => {
            // The rest of the body has been read and discarded (up to a bound), so the client
            // receives this answer; the connection closes after it either way.
            let mut response =
                into_response(ingest.body_too_large(content_type(headers).as_deref(), read));
            body::close_after(&mut response);
            return response;
        }
        Err(ReadError::Unreadable(error)) => {
            tracing::debug!(%error, "reading an OTLP request body failed");
            let mut response = status_refusal(
                content_type(headers).as_deref(),
                Format::Json,
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                "the request body could not be read (it ended early or stalled)",
            );
            body::close_after(&mut response);
            return response;
        }
    };
    let request = IngestRequest {
        signal,
        content_type: content_type(headers),
        content_encoding: header_text(headers, header::CONTENT_ENCODING),
        body,
    };
    // Each key counts against its own rate limits: an authenticated request by the key it
    // presented or its token was issued from (so refreshing a token does not reset the buckets),
    // else by the presented credential (or none).
    let key = match principal {
        Some(Extension(p)) if p.subject != Principal::anonymous().subject => {
            crate::key_limits::KeyId::of_subject(&p.subject)
        }
        _ => crate::key_limits::KeyId::from_headers(headers),
    };
    into_response(ingest.handle_keyed(request, Some(&key)).await)
}

enum ReadError {
    /// Over the limit; `read` bytes were seen before giving up.
    TooLarge {
        read: usize,
    },
    Unreadable(axum::Error),
}

/// Reads a body of at most `limit` bytes. An oversized one (by its `Content-Length` or as it
/// arrives) is read on and discarded up to [`body::drain_bound`], so that a keep-alive client gets
/// the 413 instead of a reset.
async fn read_body(body: Body, limit: usize, declared: Option<u64>) -> Result<Bytes, ReadError> {
    let bound = body::drain_bound(limit);
    if let Some(declared) = declared.filter(|n| *n > limit as u64) {
        body::drain(body, bound).await;
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
            body::drain(body, bound).await;
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

/// The receiver's answer as an HTTP response (`Content-Type` and `Retry-After` included).
pub fn into_response(response: IngestResponse) -> Response {
    let mut http = Response::new(Body::from(response.body));
    *http.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = HeaderValue::from_str(&response.content_type) {
        http.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if let Some(seconds) = response.retry_after_seconds {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    http
}
