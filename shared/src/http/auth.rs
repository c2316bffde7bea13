//! The API key check, as axum middleware shared by the query and ingest functions (and the header
//! check local mode's gateway makes with `--token`): `Authorization: Bearer <key>` or
//! `x-api-key: <key>`. A `?token=` is not read here: a key in a URL ends up in access logs and browser
//! history (only the WebSocket handshake takes one, because browsers cannot set headers there).

use axum::extract::{Request, State};
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{ApiKeys, AuthError, CHALLENGE};
use crate::otlp::Format;
use crate::tokens::{required_scope, Authenticator, Denied};

/// `google.rpc.Code.UNAUTHENTICATED`.
const UNAUTHENTICATED: i32 = 16;
/// `google.rpc.Code.PERMISSION_DENIED`.
const PERMISSION_DENIED: i32 = 7;

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

/// The refusal of a scope check as the query API answers it: 401 (`WWW-Authenticate` with
/// `error="invalid_token"` for a bad or expired token) or 403 (`error="insufficient_scope"`), with
/// `{"error": "<reason>"}`.
pub fn denied(denied: &Denied) -> Response {
    let status = StatusCode::from_u16(denied.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let challenge =
        HeaderValue::from_str(&denied.challenge()).unwrap_or(HeaderValue::from_static(CHALLENGE));
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::WWW_AUTHENTICATE, challenge),
        ],
        denied.json_body(),
    )
        .into_response()
}

/// The credential of a request: `Authorization: Bearer` / `x-api-key`, or on a WebSocket
/// handshake (`/ws`) `?token=` only, as `$connect` reads it.
pub fn presented_credential(uri: &Uri, headers: &HeaderMap) -> (Option<String>, AuthError) {
    if uri.path() == "/ws" {
        let token = uri.query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "token")
                .map(|(_, value)| value.into_owned())
        });
        return (token, AuthError::MissingQueryToken);
    }
    let key = ApiKeys::key_from_headers(
        header_text(headers, header::AUTHORIZATION.as_str()),
        header_text(headers, "x-api-key"),
    );
    (key.map(str::to_string), AuthError::MissingHeader)
}

/// Authenticates a request and checks the scope its route needs ([`required_scope`]); the
/// [`Principal`] goes into the request's extensions for the handlers (`POST /api/token`).
pub fn authorize_request(auth: &Authenticator, request: &mut Request) -> Result<(), Denied> {
    let needed = required_scope(request.method().as_str(), request.uri().path());
    let (credential, missing) = presented_credential(request.uri(), request.headers());
    let principal = auth.authorize(credential.as_deref(), missing, needed)?;
    request.extensions_mut().insert(principal);
    Ok(())
}

/// Middleware of the `/api/*` routes with scopes: 401/403 with the reason unless the credential
/// (key or token) carries the scope of the route.
pub async fn require_scope(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authorize_request(&auth, &mut request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => denied(&refusal),
    }
}

/// Middleware of the OTLP routes with scopes: the `ingest` scope, refused with a `google.rpc.Status`
/// (401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`).
pub async fn require_ingest_scope(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let refusal = match authorize_request(&auth, &mut request) {
        Ok(()) => return next.run(request).await,
        Err(refusal) => refusal,
    };
    let (status, code) = match refusal {
        Denied::Forbidden { .. } => (StatusCode::FORBIDDEN, PERMISSION_DENIED),
        _ => (StatusCode::UNAUTHORIZED, UNAUTHENTICATED),
    };
    let message = match &refusal {
        Denied::Unauthenticated(_) => {
            "a valid API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
                .to_string()
        }
        other => other.to_string(),
    };
    super::otlp::status_refusal(
        header_text(request.headers(), header::CONTENT_TYPE.as_str()),
        Format::Protobuf,
        status,
        code,
        &message,
    )
}
