//! `POST /api/token` and `POST /api/token/refresh` (issue 16 item 3): short-lived signed tokens
//! ([`crate::tokens`]) for a long-lived key, so the dashboard and WebSocket clients hold a credential
//! that expires in minutes. The scope middleware ([`super::auth::require_scope`]) has already
//! authenticated the request and put its [`Principal`] in the extensions.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::api::{ApiError, ApiResult, ApiState, ErrorBody};
use crate::tokens::{IssueError, IssuedToken, Principal, Scopes};

/// The body of `POST /api/token` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Scopes the token should carry, space-separated (`read`, `ingest`, `admin`); default: all of
    /// the key's. More than the key has is refused with 403.
    pub scope: Option<String>,
}

impl From<IssueError> for ApiError {
    fn from(error: IssueError) -> Self {
        let status = match &error {
            IssueError::Disabled => StatusCode::NOT_FOUND,
            IssueError::ScopeNotHeld { .. } => StatusCode::FORBIDDEN,
            IssueError::NoScope | IssueError::KeyRequired => StatusCode::BAD_REQUEST,
            IssueError::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

fn requested_scopes(body: &Bytes) -> Result<Option<Scopes>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: TokenRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid token request: {e}"),
        )
    })?;
    request
        .scope
        .map(|text| Scopes::parse(&text))
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

fn issue(
    state: &ApiState,
    principal: Option<Extension<Principal>>,
    requested: Option<Scopes>,
    from_key_only: bool,
) -> ApiResult<Json<IssuedToken>> {
    let (Some(auth), Some(Extension(principal))) = (state.authenticator(), principal) else {
        return Err(IssueError::Disabled.into());
    };
    if from_key_only && principal.is_token() {
        return Err(IssueError::KeyRequired.into());
    }
    Ok(Json(auth.issue_for(&principal, requested)?))
}

#[utoipa::path(
    post,
    path = "/api/token",
    summary = "A short-lived token for the key in the request",
    description = "Authenticated with a long-lived key (`Authorization: Bearer <key>` or `x-api-key`). The token (HS256 JWT) carries `sub` (the key id), `scope`, `tenant`, `iat` and `exp`; use it as `Authorization: Bearer <token>` or `?token=` on the WebSocket.",
    request_body(content = Option<TokenRequest>, description = "Optional: the scopes wanted"),
    responses(
        (status = 200, description = "The token", body = IssuedToken),
        (status = 400, description = "A malformed body, an unknown scope, or a token instead of a key", body = ErrorBody),
        (status = 401, description = "No or a wrong key", body = ErrorBody),
        (status = 403, description = "A scope the key does not have", body = ErrorBody),
        (status = 404, description = "Tokens are off (no token secret configured)", body = ErrorBody),
    )
)]
pub async fn issue_token(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> ApiResult<Json<IssuedToken>> {
    let requested = requested_scopes(&body)?;
    issue(&state, principal, requested, true)
}

#[utoipa::path(
    post,
    path = "/api/token/refresh",
    summary = "A new token for a valid, unexpired token (or a key)",
    description = "The new token carries the scopes of the credential presented and a fresh expiry.",
    responses(
        (status = 200, description = "The new token", body = IssuedToken),
        (status = 401, description = "An expired or invalid token (`WWW-Authenticate: Bearer error=\"invalid_token\"`)", body = ErrorBody),
        (status = 404, description = "Tokens are off (no token secret configured)", body = ErrorBody),
    )
)]
pub async fn refresh_token(
    State(state): State<ApiState>,
    principal: Option<Extension<Principal>>,
) -> ApiResult<Json<IssuedToken>> {
    issue(&state, principal, None, false)
}
