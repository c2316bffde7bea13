//! Request-body helpers shared by the OTLP handlers and local mode's server: bounded reads, and the
//! read-and-discard of an oversized body so that a keep-alive client receives the 413 instead of a
//! reset.

use axum::http::{header, HeaderMap, HeaderValue, Response};
use http_body_util::BodyExt;

/// Most bytes of an oversized body read and discarded so the client sees the 413.
pub const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// How much of an oversized body to read and discard before answering 413: four times the limit,
/// at most [`MAX_DRAIN_BYTES`].
pub fn drain_bound(limit: usize) -> usize {
    limit.saturating_mul(4).min(MAX_DRAIN_BYTES)
}

/// Reads and discards the rest of a body, up to `bound` bytes. True when the body ended within the
/// bound (the connection is clean and the answer will be read by the client).
pub async fn drain<B>(body: B, bound: usize) -> bool
where
    B: hyper::body::Body,
{
    let mut body = Box::pin(body);
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(bytes::Buf::remaining(data));
                    if read > bound {
                        return false;
                    }
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// `Content-Length` when the request declares one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Asks the server to close the connection once this answer is written.
pub fn close_after<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}
