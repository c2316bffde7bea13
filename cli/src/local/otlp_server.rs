//! The OTLP/HTTP port (4318): a thin axum adapter over the core receiver.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use flowscope_core::ingest::{Ingest, IngestRequest, IngestResponse, Signal};
use flowscope_core::ports::StreamSink;
use tower_http::cors::CorsLayer;

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
    // Read one byte past the limit: enough to know the body is too large without buffering it all.
    let read_limit = ingest.limits().max_body_bytes.saturating_add(1);
    let body: Bytes = match axum::body::to_bytes(body, read_limit).await {
        Ok(body) => body,
        Err(error) if is_length_limit(&error) => {
            return into_response(
                ingest.body_too_large(text(header::CONTENT_TYPE).as_deref(), read_limit),
            )
        }
        Err(error) => {
            tracing::debug!(%error, "reading an OTLP request body failed");
            return (
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
                .into_response();
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

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
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
