//! The API key check, as axum middleware shared by the query and ingest functions (and the header
//! check local mode's gateway makes with `--token`): `Authorization: Bearer <key>` or
//! `x-api-key: <key>`. A `?token=` is not read here: a key in a URL ends up in access logs and browser
//! history (only the WebSocket handshake takes one, because browsers cannot set headers there).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{ApiKeys, AuthError, CHALLENGE};
use crate::otlp::Format;

/// `google.rpc.Code.UNAUTHENTICATED`.
const UNAUTHENTICATED: i32 = 16;

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the credential in the request headers. An empty key set accepts nothing.
pub fn check_headers(keys: &ApiKeys, headers: &HeaderMap) -> Result<(), AuthError> {
    keys.check_headers(
        header_text(headers, header::AUTHORIZATION.as_str()),
        header_text(headers, "x-api-key"),
    )
}

/// The 401 of the query API: `{"error": "<reason>"}` and a `WWW-Authenticate: Bearer` challenge.
pub fn unauthorized(error: AuthError) -> Response {
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

/// Middleware of the `/api/*` routes: 401 with the reason unless the headers carry an accepted key.
pub async fn require_api_key(
    State(keys): State<ApiKeys>,
    request: Request,
    next: Next,
) -> Response {
    match check_headers(&keys, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => unauthorized(error),
    }
}

/// Middleware of the OTLP routes: 401 with a `google.rpc.Status` in the request's format (protobuf
/// when it cannot be told), as OTLP/HTTP exporters expect.
pub async fn require_otlp_key(
    State(keys): State<ApiKeys>,
    request: Request,
    next: Next,
) -> Response {
    if check_headers(&keys, request.headers()).is_ok() {
        return next.run(request).await;
    }
    super::otlp::status_refusal(
        header_text(request.headers(), header::CONTENT_TYPE.as_str()),
        Format::Protobuf,
        StatusCode::UNAUTHORIZED,
        UNAUTHENTICATED,
        "a valid API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
    )
}
