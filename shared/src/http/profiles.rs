//! The profiling routes (issue 14; contract in `docs/profiles.md`):
//! - `POST /ingest` (the Pyroscope push API) on the OTLP port ([`ingest_router`]);
//! - `GET /api/profiles/{services,types,timeline,flamegraph,top,diff,pprof,snapshot}` and
//!   `POST /api/profiles/snapshot` on the API router, documented in `docs/openapi.json`.
//!
//! `from`/`to` (and `base_from`/`base_to`) are unix seconds like the other range routes; a value
//! above 253402300799 (the largest seconds value) is read as unix milliseconds. Responses give
//! times in unix milliseconds.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{ApiError, ApiQuery, ApiState, ErrorBody};
use super::body;
use crate::profiles::push::PushParams;
use crate::profiles::view::{
    DiffGraph, FlameGraph, Snapshot, Timeline, TopFunctions, DEFAULT_MAX_NODES, MAX_MAX_NODES,
};
use crate::profiles::ProfileType;
use crate::profiling::service::{ProfileService, ProfileServiceError, Selection};
use crate::query::MAX_TIMESTAMP;

/// The default range of a read: the last hour.
const DEFAULT_RANGE_SECS: i64 = 3600;
/// Default and largest `limit` of `top`.
const DEFAULT_TOP: usize = 50;
const MAX_TOP: usize = 1000;

impl From<ProfileServiceError> for ApiError {
    fn from(error: ProfileServiceError) -> Self {
        ApiError::new(
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error.to_string(),
        )
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn json_error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

/// `POST /ingest` with the push service as state. No CORS or auth here: the caller layers them.
pub fn ingest_router(service: Arc<ProfileService>) -> Router {
    Router::new()
        .route("/ingest", post(ingest))
        .route("/v1development/profiles", post(otlp_profiles))
        .layer(DefaultBodyLimit::disable())
        .with_state(service)
}

async fn ingest(
    State(service): State<Arc<ProfileService>>,
    Query(params): Query<PushParams>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = service.limits().max_body_bytes;
    let too_large = || {
        let mut response = json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the profile body is larger than {limit} bytes"),
        );
        body::close_after(&mut response);
        response
    };
    if body::declared_length(&headers).is_some_and(|n| n > limit as u64) {
        body::drain(body, body::drain_bound(limit)).await;
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                return too_large();
            }
            return json_error(
                StatusCode::BAD_REQUEST,
                "the request body could not be read (it ended early or stalled)".into(),
            );
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match service.ingest(&params, content_type, bytes, now()).await {
        Ok(report) if report.refused.is_empty() => StatusCode::OK.into_response(),
        Ok(report) => refused_response(&report.refused, report.kept),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /v1development/profiles`: OTLP profiles (protobuf or JSON, gzip or identity) under the
/// profile push limits, answered like the other OTLP signals: 200 with an
/// `ExportProfilesServiceResponse` (its `partial_success` naming what was left out and why), 400 /
/// 413 / 415 with a `google.rpc.Status`.
async fn otlp_profiles(
    State(service): State<Arc<ProfileService>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use crate::otlp::response::{code, status_body};
    use crate::otlp::{decompress, Format, OtlpError};
    use opentelemetry_proto::tonic::collector::profiles::v1development::{
        ExportProfilesPartialSuccess, ExportProfilesServiceRequest, ExportProfilesServiceResponse,
    };
    use prost::Message;
    use sha2::{Digest, Sha256};

    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = header(header::CONTENT_TYPE);
    let refuse = |format: Format, status: StatusCode, code: i32, message: &str| -> Response {
        let mut response = (status, status_body(format, code, message)).into_response();
        if let Ok(value) = HeaderValue::from_str(format.content_type()) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    };
    let format = match Format::from_content_type(content_type) {
        Ok(format) => format,
        Err(e) => {
            return refuse(
                Format::Protobuf,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                &e.to_string(),
            )
        }
    };
    let limits = service.limits();
    let limit = limits.max_body_bytes;
    let too_large = || {
        let mut response = refuse(
            format,
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_ARGUMENT,
            &format!("the profiles body is larger than {limit} bytes"),
        );
        body::close_after(&mut response);
        response
    };
    if body::declared_length(&headers).is_some_and(|n| n > limit as u64) {
        body::drain(body, body::drain_bound(limit)).await;
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                return too_large();
            }
            return refuse(
                format,
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                "the request body could not be read (it ended early or stalled)",
            );
        }
    };
    let raw = match decompress(
        header(header::CONTENT_ENCODING),
        &bytes,
        limits.max_decompressed_bytes,
    ) {
        Ok(raw) => raw,
        Err(e @ OtlpError::DecompressedTooLarge { .. }) => {
            return refuse(
                format,
                StatusCode::PAYLOAD_TOO_LARGE,
                code::INVALID_ARGUMENT,
                &e.to_string(),
            )
        }
        Err(e @ OtlpError::UnsupportedContentEncoding(_)) => {
            return refuse(
                format,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                &e.to_string(),
            )
        }
        Err(e) => {
            return refuse(
                format,
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                &e.to_string(),
            )
        }
    };
    let request = match format {
        Format::Protobuf => ExportProfilesServiceRequest::decode(&raw[..])
            .map_err(|e| format!("not an ExportProfilesServiceRequest: {e}")),
        Format::Json => serde_json::from_slice::<ExportProfilesServiceRequest>(&raw)
            .map_err(|e| format!("not an ExportProfilesServiceRequest: {e}")),
    };
    let request = match request {
        Ok(request) => request,
        Err(message) => {
            return refuse(
                format,
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                &message,
            )
        }
    };
    let hash = Sha256::digest(&raw[..]);
    let read = match crate::profiles::otlp::read(&request, &hash, &limits, now()) {
        Ok(read) => read,
        Err(e) => {
            return refuse(
                format,
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                &e.to_string(),
            )
        }
    };
    let report = match service.merge_all(read.pushes, read.refused).await {
        Ok(report) => report,
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return refuse(format, status, code::UNAVAILABLE, &e.to_string());
        }
    };
    let mut reasons: Vec<String> = read.reason.into_iter().collect();
    if !report.refused.is_empty() {
        reasons.push(report.refused.message());
    }
    let response = ExportProfilesServiceResponse {
        partial_success: (!reasons.is_empty()).then(|| ExportProfilesPartialSuccess {
            rejected_profiles: read.rejected_profiles,
            error_message: reasons.join("; "),
        }),
    };
    let encoded = match format {
        Format::Protobuf => response.encode_to_vec(),
        Format::Json => serde_json::to_vec(&response).unwrap_or_default(),
    };
    let mut out = (StatusCode::OK, encoded).into_response();
    if let Ok(value) = HeaderValue::from_str(format.content_type()) {
        out.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    out
}

/// A push of which limits refused part (or all): 422 naming each limit and its flag, with what it
/// refused and whether the rest was kept — never 200 for data that was not kept.
pub fn refused_response(refused: &crate::profiles::limits::Refusals, kept: bool) -> Response {
    let counts: serde_json::Map<String, serde_json::Value> = refused
        .by_limit
        .iter()
        .map(|(limit, n)| (limit.id().to_string(), serde_json::Value::from(*n)))
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(serde_json::json!({
            "error": refused.message(),
            "refused": counts,
            "kept": kept,
        })),
    )
        .into_response()
}

/// The query of the read routes, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProfileParams {
    pub service: Option<String>,
    #[serde(rename = "type")]
    pub profile_type: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub base_from: Option<String>,
    pub base_to: Option<String>,
    pub labels: Option<String>,
    pub max_nodes: Option<String>,
    pub limit: Option<String>,
}

/// Documentation of [`ProfileParams`] for the tree reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SelectionQuery {
    /// Service name.
    service: String,
    /// Profile type: cpu, wall, alloc_space, alloc_objects, inuse_space, inuse_objects, goroutines, samples.
    r#type: String,
    /// Start, inclusive: unix seconds (a value above 253402300799 is read as unix milliseconds). Default: `to` − 1 h.
    from: Option<i64>,
    /// End, exclusive, like `from`. Default: now. At most 7 days after `from`.
    to: Option<i64>,
    /// Label filter `k=v,k2=v2`: only label sets with all these values.
    labels: Option<String>,
}

/// `?max_nodes=` of the flame graph and diff.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct MaxNodesQuery {
    /// Most nodes listed, 1 … 65536 (default 8192): the smallest are left out.
    max_nodes: Option<u32>,
}

/// `?limit=` of top.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct TopQuery {
    /// Functions to list, 1 … 1000 (default 50).
    limit: Option<u32>,
}

/// `base_from`/`base_to` of the diff.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct BaseQuery {
    /// Base range start, like `from`.
    base_from: i64,
    /// Base range end, like `to`.
    base_to: i64,
}

/// `?service=` of the types route.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ServiceQuery {
    service: String,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// Unix seconds from a `from`/`to` parameter; milliseconds when above the largest seconds value
/// (`round_up` for an exclusive end).
fn time_param(text: &str, name: &str, round_up: bool) -> Result<i64, ApiError> {
    let n: i64 = text.trim().parse().map_err(|_| {
        bad(format!(
            "`{name}` must be unix seconds or milliseconds, got {text:?}"
        ))
    })?;
    if n < 0 || n > MAX_TIMESTAMP.saturating_mul(1000) {
        return Err(bad(format!("`{name}` is out of range: {text:?}")));
    }
    Ok(if n > MAX_TIMESTAMP {
        if round_up {
            n.div_euclid(1000) + i64::from(n.rem_euclid(1000) != 0)
        } else {
            n.div_euclid(1000)
        }
    } else {
        n
    })
}

fn number_param(
    text: Option<&str>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match text {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "`{name}` must be a whole number from 1 to {max}, got {t:?}"
                ))
            }),
    }
}

fn service_of(state: &ApiState, uri: &Uri) -> Result<Arc<ProfileService>, ApiError> {
    state.profiles().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no route for {}: profiling is not enabled here", uri.path()),
        )
    })
}

impl ProfileParams {
    /// `?max_nodes=` of a tree read (flame graph, diff, snapshot).
    fn max_nodes(&self) -> Result<usize, ApiError> {
        number_param(
            self.max_nodes.as_deref(),
            "max_nodes",
            DEFAULT_MAX_NODES,
            MAX_MAX_NODES,
        )
    }

    fn selection(&self) -> Result<Selection, ApiError> {
        let service = self
            .service
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("`service` is required".into()))?;
        let type_text = self
            .profile_type
            .as_deref()
            .ok_or_else(|| bad("`type` is required".into()))?;
        let profile_type = ProfileType::parse(type_text)
            .ok_or_else(|| bad(format!("`type` {type_text:?} is not a profile type")))?;
        let to = match &self.to {
            Some(t) => time_param(t, "to", true)?,
            None => now(),
        };
        let from = match &self.from {
            Some(t) => time_param(t, "from", false)?,
            None => to - DEFAULT_RANGE_SECS,
        };
        let mut labels = BTreeMap::new();
        if let Some(text) = &self.labels {
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| bad(format!("`labels`: {pair:?} is not key=value")))?;
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        Ok(Selection {
            service,
            profile_type,
            from,
            to,
            labels,
        })
    }
}

/// `GET /api/profiles/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileServices {
    pub services: Vec<ProfileServiceEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileServiceEntry {
    pub service: String,
    pub types: Vec<ProfileType>,
}

/// `GET /api/profiles/types`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileTypes {
    pub service: String,
    pub types: Vec<ProfileTypeUnit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileTypeUnit {
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    pub unit: String,
}

#[utoipa::path(
    get,
    path = "/api/profiles/services",
    summary = "Services with stored profiles, and their profile types",
    responses(
        (status = 200, description = "Sorted by service", body = ProfileServices),
        (status = 404, description = "Profiling is not enabled", body = ErrorBody),
    )
)]
pub async fn profile_services(
    State(state): State<ApiState>,
    uri: Uri,
) -> Result<Json<ProfileServices>, ApiError> {
    let service = service_of(&state, &uri)?;
    let services = service
        .services()
        .await?
        .into_iter()
        .map(|(service, types)| ProfileServiceEntry { service, types })
        .collect();
    Ok(Json(ProfileServices { services }))
}

#[utoipa::path(
    get,
    path = "/api/profiles/types",
    summary = "Profile types stored for one service",
    params(ServiceQuery),
    responses(
        (status = 200, description = "Types with their units (empty for an unknown service)", body = ProfileTypes),
        (status = 400, description = "`service` missing", body = ErrorBody),
    )
)]
pub async fn profile_types(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Json<ProfileTypes>, ApiError> {
    let profiles = service_of(&state, &uri)?;
    let service = params
        .service
        .ok_or_else(|| bad("`service` is required".into()))?;
    let types = profiles
        .types(&service)
        .await?
        .into_iter()
        .map(|t| ProfileTypeUnit {
            profile_type: t,
            unit: t.unit().to_string(),
        })
        .collect();
    Ok(Json(ProfileTypes { service, types }))
}

#[utoipa::path(
    get,
    path = "/api/profiles/timeline",
    summary = "Per-minute totals of a service's profile type",
    params(SelectionQuery),
    responses(
        (status = 200, description = "One point per stored minute, oldest first (`t`: minute start, unix ms)", body = Timeline),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
    )
)]
pub async fn profile_timeline(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Json<Timeline>, ApiError> {
    let service = service_of(&state, &uri)?;
    Ok(Json(service.timeline(&params.selection()?).await?))
}

#[utoipa::path(
    get,
    path = "/api/profiles/flamegraph",
    summary = "The merged flame graph of a range",
    description = "Every minute of the range (and label sets matching `labels`) merged exactly. `levels[d]` lists the nodes at depth d as groups `[start, total, self, name_index]` with absolute starts; children lie within their parent's `[start, start + total)`. The smallest nodes may be left out to keep `max_nodes`; listed values stay exact.",
    params(SelectionQuery, MaxNodesQuery),
    responses(
        (status = 200, description = "The flame graph (times in unix ms)", body = FlameGraph),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
    )
)]
pub async fn profile_flamegraph(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Json<FlameGraph>, ApiError> {
    let service = service_of(&state, &uri)?;
    let max_nodes = params.max_nodes()?;
    Ok(Json(
        service.flamegraph(&params.selection()?, max_nodes).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/profiles/top",
    summary = "Top functions of a range by self value",
    params(SelectionQuery, TopQuery),
    responses(
        (status = 200, description = "Functions sorted by self, descending", body = TopFunctions),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
    )
)]
pub async fn profile_top(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Json<TopFunctions>, ApiError> {
    let service = service_of(&state, &uri)?;
    let limit = number_param(params.limit.as_deref(), "limit", DEFAULT_TOP, MAX_TOP)?;
    Ok(Json(service.top(&params.selection()?, limit).await?))
}

#[utoipa::path(
    get,
    path = "/api/profiles/diff",
    summary = "Diff of a range against a base range",
    description = "The union of both trees; `levels` groups of 7 `[start, width, name_index, total, self, base_total, base_self]` with `width = total + base_total`.",
    params(SelectionQuery, BaseQuery, MaxNodesQuery),
    responses(
        (status = 200, description = "The diff (times in unix ms)", body = DiffGraph),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
    )
)]
pub async fn profile_diff(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Json<DiffGraph>, ApiError> {
    let service = service_of(&state, &uri)?;
    let max_nodes = params.max_nodes()?;
    let base_from = params
        .base_from
        .as_deref()
        .ok_or_else(|| bad("`base_from` is required".into()))
        .and_then(|t| time_param(t, "base_from", false))?;
    let base_to = params
        .base_to
        .as_deref()
        .ok_or_else(|| bad("`base_to` is required".into()))
        .and_then(|t| time_param(t, "base_to", true))?;
    Ok(Json(
        service
            .diff(&params.selection()?, base_from, base_to, max_nodes)
            .await?,
    ))
}

fn attachment(bytes: Vec<u8>, content_type: &'static str, filename: &str) -> Response {
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[utoipa::path(
    get,
    path = "/api/profiles/pprof",
    summary = "A range as a gzip pprof file (go tool pprof, speedscope)",
    params(SelectionQuery),
    responses(
        (status = 200, description = "gzip pprof, `Content-Disposition: attachment; filename=\"S-TYPE-FROM-TO.pb.gz\"`", content_type = "application/octet-stream"),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
    )
)]
pub async fn profile_pprof(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Response, ApiError> {
    let service = service_of(&state, &uri)?;
    let sel = params.selection()?;
    let bytes = service.pprof(&sel).await?;
    let name = format!(
        "{}-{}-{}-{}.pb.gz",
        sel.service,
        sel.profile_type.as_str(),
        sel.from * 1000,
        sel.to * 1000
    );
    Ok(attachment(bytes, "application/octet-stream", &name))
}

#[utoipa::path(
    get,
    path = "/api/profiles/snapshot",
    summary = "A range as a snapshot file: gzip JSON of its timeline and flame graph",
    params(SelectionQuery, MaxNodesQuery),
    responses(
        (status = 200, description = "gzip of a Snapshot (`version` 1), as an attachment", content_type = "application/gzip"),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
    )
)]
pub async fn profile_snapshot(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Response, ApiError> {
    let service = service_of(&state, &uri)?;
    let sel = params.selection()?;
    let max_nodes = params.max_nodes()?;
    let timeline = service.timeline(&sel).await?;
    let flamegraph = service.flamegraph(&sel, max_nodes).await?;
    let snapshot = Snapshot {
        version: 1,
        service: sel.service.clone(),
        profile_type: sel.profile_type,
        unit: sel.profile_type.unit().to_string(),
        from: sel.from * 1000,
        to: sel.to * 1000,
        timeline: timeline.points,
        flamegraph,
    };
    let json = serde_json::to_vec(&snapshot)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)
        .and_then(|_| gz.flush())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let bytes = gz
        .finish()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let name = format!(
        "{}-{}-{}-{}.json.gz",
        sel.service,
        sel.profile_type.as_str(),
        sel.from * 1000,
        sel.to * 1000
    );
    Ok(attachment(bytes, "application/gzip", &name))
}

/// Most bytes a posted snapshot may decompress to.
const MAX_SNAPSHOT_JSON_BYTES: u64 = 64 * 1024 * 1024;

#[utoipa::path(
    post,
    path = "/api/profiles/snapshot",
    summary = "Validate a snapshot file (gzip or plain JSON) and answer it as JSON",
    request_body(content = Vec<u8>, description = "A snapshot file as downloaded (gzip JSON), or its JSON", content_type = "application/gzip"),
    responses(
        (status = 200, description = "The snapshot", body = Snapshot),
        (status = 400, description = "Not a snapshot: the reason", body = ErrorBody),
    )
)]
pub async fn import_snapshot(
    State(_state): State<ApiState>,
    body: Bytes,
) -> Result<Json<Snapshot>, ApiError> {
    let json = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .take(MAX_SNAPSHOT_JSON_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("invalid gzip: {e}")))?;
        if out.len() as u64 > MAX_SNAPSHOT_JSON_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the snapshot decompresses to more than {MAX_SNAPSHOT_JSON_BYTES} bytes"),
            ));
        }
        out
    } else {
        body.to_vec()
    };
    let snapshot: Snapshot =
        serde_json::from_slice(&json).map_err(|e| bad(format!("not a snapshot: {e}")))?;
    if snapshot.version != 1 {
        return Err(bad(format!(
            "snapshot version {} is not supported (1 is)",
            snapshot.version
        )));
    }
    if snapshot.flamegraph.levels.iter().any(|l| l.len() % 4 != 0) {
        return Err(bad("flame graph levels must be groups of 4 numbers".into()));
    }
    let names = snapshot.flamegraph.names.len() as u64;
    if snapshot
        .flamegraph
        .levels
        .iter()
        .flat_map(|l| l.chunks(4))
        .any(|g| g[3] >= names)
    {
        return Err(bad("a flame graph node names an index past `names`".into()));
    }
    Ok(Json(snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_seconds_or_milliseconds() {
        assert_eq!(
            time_param("1700000000", "from", false).unwrap(),
            1_700_000_000
        );
        assert_eq!(
            time_param("1700000000000", "from", false).unwrap(),
            1_700_000_000
        );
        assert_eq!(
            time_param("1700000000001", "to", true).unwrap(),
            1_700_000_001
        );
        assert!(time_param("-1", "from", false).is_err());
        assert!(time_param("x", "from", false).is_err());
    }
}
