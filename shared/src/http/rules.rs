//! `GET` and `PUT /api/alert-rules` (issue 13 item 6): the rules in force with their version, and
//! their replacement through the API, so rules change on AWS without a redeploy.
//!
//! `PUT` takes the rule file as its body (YAML or JSON, as `infra/alert-rules.yaml`), needs an admin
//! key ([`RuleWriters`]), validates it (400 with `body:line:column: …`; nothing changes), and stores
//! it as the next version. `If-Match: "<version>"` (the `ETag` of a `GET`) makes the write
//! conditional: another version in force answers 412, so two writers cannot clobber each other.
//! Every evaluator loads the new version at its next run.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::api::{ApiError, ApiResult, ApiState, ErrorBody};
use crate::alerts::api::AlertRules;
use crate::alerts::ReplaceError;
use crate::auth::ApiKeys;

/// Who may replace the alert rules.
#[derive(Debug, Clone)]
pub enum RuleWriters {
    /// Anyone who reaches the API (local mode without any token).
    Anyone,
    /// A request whose credential (`Authorization: Bearer` / `x-api-key`) is one of these keys.
    Keys(ApiKeys),
    /// Nobody (no admin key configured): 403.
    Nobody,
}

impl RuleWriters {
    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let forbidden = |reason: &str| ApiError::new(StatusCode::FORBIDDEN, reason);
        match self {
            RuleWriters::Anyone => Ok(()),
            RuleWriters::Nobody => Err(forbidden(
                "replacing the alert rules needs an admin key, and none is configured \
                 (ADMIN_KEY_HASHES on AWS, --admin-token locally)",
            )),
            RuleWriters::Keys(keys) => super::auth::check_headers(keys, headers)
                .map_err(|_| forbidden("replacing the alert rules needs an admin key")),
        }
    }
}

fn etag(version: u64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `If-Match: "3"` (also `3` or `W/"3"`) → 3; `*` → none (any version).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<u64>().map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("If-Match must be a rules version such as \"3\" (the ETag of GET /api/alert-rules), got {text:?}"),
        )
    })
}

impl From<ReplaceError> for ApiError {
    fn from(error: ReplaceError) -> Self {
        let status = match &error {
            ReplaceError::Invalid(_) => StatusCode::BAD_REQUEST,
            ReplaceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ReplaceError::Conflict { .. } => StatusCode::PRECONDITION_FAILED,
            ReplaceError::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ReplaceError::Store(crate::ports::StoreError::Throttled(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ReplaceError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

fn with_etag(rules: AlertRules) -> Response {
    let tag = etag(rules.version);
    ([(header::ETAG, tag)], Json(rules)).into_response()
}

#[utoipa::path(
    get,
    path = "/api/alert-rules",
    summary = "The alert rules in force and their version (sink URLs omitted)",
    responses((status = 200, description = "Rules and notification settings; the `ETag` header is the version", body = AlertRules))
)]
pub async fn alert_rules(State(state): State<ApiState>) -> Response {
    with_etag(state.alert_api().rules().await)
}

#[utoipa::path(
    put,
    path = "/api/alert-rules",
    summary = "Replace the alert rules (admin key)",
    params(("If-Match" = Option<String>, Header, description = "The version being replaced (`\"3\"`, the ETag of GET); another version in force answers 412")),
    request_body(content = String, content_type = "application/yaml", description = "The rule file (YAML or JSON), as `infra/alert-rules.yaml`"),
    responses(
        (status = 200, description = "Stored and in force; the `ETag` header is the new version", body = AlertRules),
        (status = 400, description = "Invalid rules (`body:line:column: reason`) or If-Match; the running rules stay", body = ErrorBody),
        (status = 403, description = "The credential is not an admin key, or none is configured", body = ErrorBody),
        (status = 405, description = "This deployment keeps no rules store", body = ErrorBody),
        (status = 412, description = "Another version is in force (If-Match)", body = ErrorBody),
        (status = 413, description = "The body is over 256 KiB", body = ErrorBody),
    )
)]
pub async fn replace_alert_rules(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<crate::tokens::Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if state.alert_api().source().store().is_none() {
        return Err(ReplaceError::Unsupported.into());
    }
    // A token with the `admin` scope (checked by the scope middleware) was issued from an admin key.
    let admin_token = principal.is_some_and(|axum::Extension(p)| {
        p.is_token() && p.scopes.contains(crate::tokens::Scope::Admin)
    });
    if !admin_token {
        state.rule_writers().check(&headers)?;
    }
    let expected = if_match(&headers)?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the rules body is not UTF-8: {e}"),
        )
    })?;
    state
        .alert_api()
        .source()
        .replace(text, expected, state.now())
        .await?;
    Ok(with_etag(state.alert_api().rules().await))
}
