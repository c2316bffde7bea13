//! Requests through the core's axum router (`tower::ServiceExt::oneshot`), as a server would send
//! them: no network.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Extensions, HeaderMap, Request};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// One answer: status, headers and the body as JSON (`Null` when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    /// What the handler attached for the server (e.g. the alert events of an acknowledgement).
    pub extensions: Extensions,
}

/// `method uri` with `body` (JSON when not empty) through `router`.
pub async fn call(router: &Router, method: &str, uri: &str, body: &str) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::from(body.to_string()))
        .expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let extensions = response.extensions().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        extensions,
    }
}

/// `path?query` (no `?` when `query` is empty).
pub fn uri(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}
