//! The `/api/*` routes as axum handlers over the read service ([`QueryService`]), the trace reads
//! ([`crate::traces::api`]), the alerting API ([`AlertApi`]) and the series limits. Local mode's
//! gateway mounts [`router`]; the query function serves it with `lambda_http::run`
//! ([`super::query_router`]).
//!
//! Path segments are decoded by axum's `Path` (RFC 3986: `%2F` inside a segment is a `/` in that
//! segment, `+` stays `+`); query strings by its `Query` into the parameter structs. Errors are
//! `{"error": "<reason>"}` with the status of the failure; an acknowledgement's live `alert` events
//! ride on the response as an [`AlertEvents`] extension for a server that can push them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::params::RangeParams;
use crate::alerts::api::{AlertApiError, HistoryParams};
use crate::alerts::{AlertApi, AlertEvent, RuleSet};
use crate::model::SeriesId;
use crate::ports::{AlertStore, MetricStore, SeriesAdmission, TraceStore};
use crate::query::{QueryError, QueryService, Range};
use crate::traces;

/// "Now" in unix seconds, as the API sees it (the default range end; the stamp of acknowledgements).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The ports and services behind `/api/*`.
#[derive(Clone)]
pub struct ApiState {
    query: QueryService<dyn MetricStore>,
    metrics: Arc<dyn MetricStore>,
    /// Kept traces and the service graph (`/api/traces/…`, `/api/services/{s}/traces`,
    /// `/api/graph`), when configured.
    traces: Option<Arc<dyn TraceStore>>,
    alerts: Arc<AlertApi<dyn AlertStore>>,
    /// Serves `GET /api/limits` (active-series refusals) when set.
    limits: Option<Arc<dyn SeriesAdmission>>,
    clock: Clock,
}

impl ApiState {
    pub fn new(
        metrics: Arc<dyn MetricStore>,
        alerts: Arc<dyn AlertStore>,
        rules: Arc<RuleSet>,
    ) -> Self {
        ApiState {
            query: QueryService::new(metrics.clone()),
            metrics,
            traces: None,
            alerts: Arc::new(AlertApi::new(alerts, rules)),
            limits: None,
            clock: Arc::new(system_now),
        }
    }

    /// Also serves the trace routes.
    pub fn with_traces(mut self, traces: Arc<dyn TraceStore>) -> Self {
        self.traces = Some(traces);
        self
    }

    /// Serves the refusal counts of the active-series limits at `GET /api/limits`.
    pub fn with_series_admission(mut self, admission: Arc<dyn SeriesAdmission>) -> Self {
        self.limits = Some(admission);
        self
    }

    /// Replaces the system clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }
}

/// Unix seconds now.
fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The alert events a request caused (an acknowledgement), as a response extension: local mode's
/// gateway pushes them to live clients; the query function has no WebSocket management client, so
/// dashboards there see the change on their next alert reload.
#[derive(Debug, Clone, Default)]
pub struct AlertEvents(pub Vec<AlertEvent>);

/// Every `/api/*` route. An unknown path under `/api/` answers 404 and a known path with another
/// method 405 (with `Allow`), both with an `{"error"}` body.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/metrics", get(metrics))
        .route(
            "/api/services/{service}/metrics/{metric}",
            get(metric_history),
        )
        .route("/api/services/{service}/traces", get(recent_traces))
        .route("/api/series/{id}", get(series_history))
        .route("/api/traces/{id}", get(trace))
        .route("/api/graph", get(graph))
        .route("/api/limits", get(limits))
        .route("/api/alerts", get(active_alerts))
        .route("/api/alerts/history", get(alert_history))
        .route("/api/alerts/dead-letters", get(dead_letters))
        .route("/api/alerts/{fingerprint}/ack", post(acknowledge))
        .route("/api/silences", get(silences).post(create_silence))
        .route("/api/silences/{id}", delete(delete_silence))
        .route("/api/alert-rules", get(alert_rules))
        .route("/api/{*rest}", any(unknown_route))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A failed API request: its status and the reason, answered as `{"error": "<reason>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        ApiError::new(status(error.status()), error.to_string())
    }
}

impl From<AlertApiError> for ApiError {
    fn from(error: AlertApiError) -> Self {
        ApiError::new(status(error.status()), error.to_string())
    }
}

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// axum's `Query`, refusing with an `{"error"}` 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("invalid query string: {}", e.body_text()),
                )
            })
    }
}

/// axum's `Path` (percent-decoded segments), refusing with an `{"error"}` 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("invalid path: {}", e.body_text()),
                )
            })
    }
}

fn to_json(value: &impl serde::Serialize) -> ApiResult {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn services(State(state): State<ApiState>) -> ApiResult {
    let services = state.query.services().await?;
    Ok(Json(json!({ "services": to_json(&services)?.0 })))
}

async fn metrics(State(state): State<ApiState>, ApiPath(service): ApiPath<String>) -> ApiResult {
    let metrics = state.query.metrics(&service).await?;
    Ok(Json(
        json!({ "service": service, "metrics": to_json(&metrics)?.0 }),
    ))
}

async fn metric_history(
    State(state): State<ApiState>,
    ApiPath((service, metric)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult {
    let range = Range::from_params(&params, state.now())?;
    to_json(&state.query.metric_history(&service, &metric, range).await?)
}

async fn series_history(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult {
    let id: SeriesId = id.parse().map_err(QueryError::BadRequest)?;
    let range = Range::from_params(&params, state.now())?;
    to_json(&state.query.series_history(id, range).await?)
}

/// The trace store, or the 404 a deployment without one answers.
fn trace_store(state: &ApiState, uri: &Uri) -> Result<Arc<dyn TraceStore>, ApiError> {
    state
        .traces
        .clone()
        .ok_or_else(|| QueryError::NotFound(format!("no route for {}", uri.path())).into())
}

async fn trace(State(state): State<ApiState>, uri: Uri, ApiPath(id): ApiPath<String>) -> ApiResult {
    let store = trace_store(&state, &uri)?;
    to_json(&traces::api::get_trace(store.as_ref(), &id).await?)
}

#[derive(Debug, Default, Deserialize)]
struct LimitParams {
    limit: Option<String>,
}

async fn recent_traces(
    State(state): State<ApiState>,
    uri: Uri,
    ApiPath(service): ApiPath<String>,
    ApiQuery(params): ApiQuery<LimitParams>,
) -> ApiResult {
    let store = trace_store(&state, &uri)?;
    let limit = traces::api::list_limit(params.limit.as_deref())?;
    let traces = traces::api::recent(store.as_ref(), &service, limit).await?;
    Ok(Json(
        json!({ "service": service, "traces": to_json(&traces)?.0 }),
    ))
}

async fn graph(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult {
    trace_store(&state, &uri)?;
    to_json(&traces::api::graph(state.metrics.as_ref(), params.request()?, state.now()).await?)
}

async fn limits(State(state): State<ApiState>, uri: Uri) -> ApiResult {
    let Some(admission) = &state.limits else {
        return Err(QueryError::NotFound(format!("no route for {}", uri.path())).into());
    };
    match admission.refusals().await {
        Ok(report) => to_json(&report),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
    }
}

async fn active_alerts(State(state): State<ApiState>) -> ApiResult {
    Ok(Json(state.alerts.active(state.now()).await?))
}

async fn alert_history(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> ApiResult {
    Ok(Json(state.alerts.history(&params, state.now()).await?))
}

async fn dead_letters(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<LimitParams>,
) -> ApiResult {
    Ok(Json(
        state.alerts.dead_letters(params.limit.as_deref()).await?,
    ))
}

async fn acknowledge(
    State(state): State<ApiState>,
    ApiPath(fingerprint): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (value, events) = state
        .alerts
        .acknowledge(&fingerprint, &body, state.now())
        .await?;
    let mut response = Json(value).into_response();
    response.extensions_mut().insert(AlertEvents(events));
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct SilenceParams {
    all: Option<String>,
}

async fn silences(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<SilenceParams>,
) -> ApiResult {
    Ok(Json(
        state
            .alerts
            .silences(params.all.as_deref(), state.now())
            .await?,
    ))
}

async fn create_silence(
    State(state): State<ApiState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let silence = state.alerts.create_silence(&body, state.now()).await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

async fn delete_silence(State(state): State<ApiState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    Ok(Json(state.alerts.delete_silence(&id).await?))
}

async fn alert_rules(State(state): State<ApiState>) -> Json<Value> {
    Json(state.alerts.rules())
}

/// Any method on a path under `/api/` that no route serves.
pub async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

/// A known path with a method it does not take (axum adds the `Allow` header).
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
