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
use axum::routing::any;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::params::{limit_param, HistoryParams, RangeParams};
use crate::alerts::api::{
    AckRequest, AcknowledgedAlert, AlertApiError, AlertHistory, AlertList, CreatedSilence,
    DeadLetters, DeletedSilence, SilenceList, DEFAULT_DEAD_LETTER_LIMIT, MAX_DEAD_LETTER_LIMIT,
};
use crate::alerts::silence::SilenceRequest;
use crate::alerts::{AlertApi, AlertEvent, RuleSet};
use crate::cardinality::RefusalReport;
use crate::model::{Resolution, SeriesId};
use crate::ports::{AlertStore, MetricStore, SeriesAdmission, TraceStore};
use crate::query::{History, MetricSummary, QueryError, QueryService, Range};
use crate::traces;
use crate::traces::graph_view::GraphView;
use crate::traces::trace_view::{SummaryView, TraceView};

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
    /// The service registry (`/api/registry/*`, instances in `/api/services`), when configured.
    registry: Option<Arc<crate::registry::Registry>>,
    /// Stored profiles (`/api/profiles/*`), when configured.
    profiles: Option<Arc<crate::profiling::service::ProfileService>>,
    /// Limits of expression queries (`/api/query`, `/api/v1/*`).
    expr_limits: crate::expr::ExprLimits,
    /// Who may replace the alert rules (`PUT /api/alert-rules`).
    rule_writers: super::rules::RuleWriters,
    /// Keys, scopes and the token issuer (`POST /api/token`), when scopes are enforced.
    auth: Option<Arc<crate::tokens::Authenticator>>,
    /// Recent query answers, served marked stale while the store fails (with the breaker).
    recent: Option<Arc<super::caching::RecentResults>>,
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
            registry: None,
            profiles: None,
            expr_limits: crate::expr::ExprLimits::default(),
            rule_writers: super::rules::RuleWriters::Nobody,
            auth: None,
            recent: None,
        }
    }

    /// Puts the store reads of the query routes behind a circuit breaker, and answers a failed
    /// query from the recent answers (at most `recent_entries` / `recent_bytes`), marked stale.
    pub fn with_store_breaker(
        mut self,
        settings: super::breaker::BreakerSettings,
        recent_entries: usize,
        recent_bytes: usize,
    ) -> Self {
        let guarded: Arc<dyn MetricStore> = Arc::new(super::breaker::Breaker::around(
            self.metrics.clone(),
            settings,
        ));
        self.query = QueryService::new(guarded.clone());
        self.metrics = guarded;
        self.recent = Some(Arc::new(super::caching::RecentResults::new(
            recent_entries,
            recent_bytes,
        )));
        self
    }

    pub(crate) fn recent(&self) -> Option<&Arc<super::caching::RecentResults>> {
        self.recent.as_ref()
    }

    /// Serves the rules in force from `source` (shared with the evaluator), and lets `writers`
    /// replace them with `PUT /api/alert-rules` when the source has a store.
    pub fn with_rule_source(
        mut self,
        source: crate::alerts::RuleSource,
        writers: super::rules::RuleWriters,
    ) -> Self {
        self.alerts = Arc::new(self.alerts.with_source(source));
        self.rule_writers = writers;
        self
    }

    pub(crate) fn alert_api(&self) -> &AlertApi<dyn AlertStore> {
        &self.alerts
    }

    pub(crate) fn rule_writers(&self) -> &super::rules::RuleWriters {
        &self.rule_writers
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

    /// Serves the registry routes and adds instances to `GET /api/services`.
    pub fn with_registry(mut self, registry: Arc<crate::registry::Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Serves the profile routes (`/api/profiles/*`).
    pub fn with_profiles(
        mut self,
        profiles: Arc<crate::profiling::service::ProfileService>,
    ) -> Self {
        self.profiles = Some(profiles);
        self
    }

    pub(crate) fn profiles(&self) -> Option<Arc<crate::profiling::service::ProfileService>> {
        self.profiles.clone()
    }

    pub(crate) fn registry(&self) -> Option<Arc<crate::registry::Registry>> {
        self.registry.clone()
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Replaces the limits of expression queries.
    pub fn with_expr_limits(mut self, limits: crate::expr::ExprLimits) -> Self {
        self.expr_limits = limits;
        self
    }

    pub(crate) fn expr_limits(&self) -> crate::expr::ExprLimits {
        self.expr_limits
    }

    /// Issues tokens at `POST /api/token` with this authenticator (the one the scope middleware uses).
    pub fn with_authenticator(mut self, auth: Arc<crate::tokens::Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    pub(crate) fn authenticator(&self) -> Option<&crate::tokens::Authenticator> {
        self.auth.as_deref()
    }

    pub(crate) fn metric_store(&self) -> Arc<dyn MetricStore> {
        self.metrics.clone()
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
    let (routes, _) = documented_routes().split_for_parts();
    routes
        .route("/api/{*rest}", any(unknown_route))
        .method_not_allowed_fallback(method_not_allowed)
        // ETag / Cache-Control / 304 on the query routes.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::caching::conditional_get,
        ))
        .with_state(state)
}

/// The OpenAPI document of every `/api/*` route, generated from the handlers' `#[utoipa::path]`
/// annotations and the types' `ToSchema` derives. Committed as `docs/openapi.json`; the test
/// `api_contract` (`shared/tests/api_contract.rs`) fails when the committed file differs.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = documented_routes().into_openapi();
    super::contract::finish(&mut document);
    document
}

/// The routes, each mounted and documented by one line: to add a route, write the handler with a
/// `#[utoipa::path(...)]` annotation (method, path, parameters, responses), add
/// `.routes(routes!(handler))` here (handlers of the same path share one `routes!`), then
/// regenerate the contract with `scripts/contract.sh` (see `docs/contract.md`).
fn documented_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(super::contract::ApiDoc::openapi())
        .routes(routes!(services))
        .routes(routes!(metrics))
        .routes(routes!(metric_history))
        .routes(routes!(recent_traces))
        .routes(routes!(series_history))
        .routes(routes!(trace))
        .routes(routes!(graph))
        .routes(routes!(limits))
        .routes(routes!(active_alerts))
        .routes(routes!(alert_history))
        .routes(routes!(dead_letters))
        .routes(routes!(acknowledge))
        .routes(routes!(silences, create_silence))
        .routes(routes!(delete_silence))
        .routes(routes!(
            super::rules::alert_rules,
            super::rules::replace_alert_rules
        ))
        .routes(routes!(
            super::registry::instances,
            super::registry::register
        ))
        .routes(routes!(super::registry::deregister))
        .routes(routes!(super::registry::heartbeat))
        .routes(routes!(super::profiles::profile_services))
        .routes(routes!(super::profiles::profile_types))
        .routes(routes!(super::profiles::profile_timeline))
        .routes(routes!(super::profiles::profile_flamegraph))
        .routes(routes!(super::profiles::profile_top))
        .routes(routes!(super::profiles::profile_diff))
        .routes(routes!(super::profiles::profile_pprof))
        .routes(routes!(
            super::profiles::profile_snapshot,
            super::profiles::import_snapshot
        ))
        .routes(routes!(super::query_expr::query))
        .routes(routes!(super::promql::query))
        .routes(routes!(super::promql::query_range))
        .routes(routes!(super::promql::series))
        .routes(routes!(super::promql::labels))
        .routes(routes!(super::promql::label_values))
        // Prometheus's clients POST forms too; documented on the GET operations.
        .route("/api/v1/query", axum::routing::post(super::promql::query))
        .route(
            "/api/v1/query_range",
            axum::routing::post(super::promql::query_range),
        )
        .route("/api/v1/series", axum::routing::post(super::promql::series))
        .route("/api/v1/labels", axum::routing::post(super::promql::labels))
        .routes(routes!(super::tokens::issue_token))
        .routes(routes!(super::tokens::refresh_token))
        .routes(routes!(super::export::export))
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

/// The body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Why the request failed.
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
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

pub(crate) type ApiResult<T> = Result<T, ApiError>;

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

/// `GET /api/services`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServiceList {
    /// Sorted by name; services known only to the registry follow.
    pub services: Vec<super::registry::ServiceView>,
}

/// `GET /api/services/{service}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricList {
    pub service: String,
    /// Sorted by name.
    pub metrics: Vec<MetricSummary>,
}

/// `GET /api/services/{service}/traces`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TraceList {
    pub service: String,
    /// Newest first.
    pub traces: Vec<SummaryView>,
}

/// The query parameters of a range (documentation of [`RangeParams`], which keeps them as text so
/// that a malformed one is answered with a 400 naming it).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RangeQuery {
    /// Start, inclusive, unix seconds 0 … 253402300799 (default: `to` − 15 min).
    from: Option<i64>,
    /// End, exclusive, unix seconds 0 … 253402300799 (default: now).
    to: Option<i64>,
    /// Bucket width (default 1m); at most 2000 buckets per query.
    resolution: Option<Resolution>,
}

/// `?limit=` of the trace list (documentation of [`LimitParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct TraceLimitQuery {
    /// Traces to list, 1 … 200 (default 20).
    limit: Option<u32>,
}

/// `?limit=` of the dead letters (documentation of [`LimitParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct DeadLetterLimitQuery {
    /// Dead letters to list, 1 … 1000 (default 100).
    limit: Option<u32>,
}

/// The query of `GET /api/alerts/history` (documentation of [`HistoryParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct HistoryQuery {
    /// Start, inclusive, unix seconds (default: `to` − 24 h).
    from: Option<i64>,
    /// End, exclusive, unix seconds (default: now + 1 s).
    to: Option<i64>,
    /// Transitions to list, 1 … 5000 (default 500).
    limit: Option<u32>,
    /// Only this alert.
    fingerprint: Option<String>,
    /// Only this rule.
    rule: Option<String>,
    /// Only alerts whose `service` label is this.
    service: Option<String>,
}

/// `?all=` of `GET /api/silences` (documentation of [`SilenceParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SilenceQuery {
    /// `true` or `1`: expired silences too.
    all: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/services",
    summary = "Services that have reported at least one series",
    responses(
        (status = 200, description = "Services, sorted by name", body = ServiceList),
        (status = 503, description = "The store is throttled", body = ErrorBody),
    )
)]
async fn services(State(state): State<ApiState>) -> ApiResult<Json<ServiceList>> {
    let services = state.query.services().await?;
    let services = super::registry::service_views(&state, services).await?;
    Ok(Json(ServiceList { services }))
}

#[utoipa::path(
    get,
    path = "/api/services/{service}/metrics",
    summary = "Metrics of one service, each with its series (attribute sets)",
    params(("service" = String, Path, description = "Service name, one path segment (RFC 3986 percent-encoding; `+` is a plus)")),
    responses(
        (status = 200, description = "Metrics sorted by name", body = MetricList),
        (status = 404, description = "No such service", body = ErrorBody),
    )
)]
async fn metrics(
    State(state): State<ApiState>,
    ApiPath(service): ApiPath<String>,
) -> ApiResult<Json<MetricList>> {
    let metrics = state.query.metrics(&service).await?;
    Ok(Json(MetricList { service, metrics }))
}

#[utoipa::path(
    get,
    path = "/api/services/{service}/metrics/{metric}",
    summary = "History of one metric, all its series merged per bucket",
    description = "count, sum, min and max merge exactly; p50/p95/p99 come from the merged DDSketches (1% relative accuracy). Service and metric names are path segments decoded per RFC 3986: percent-encode `/`, `%`, spaces and non-ASCII (`%2F` is a `/` inside the name); a `+` is a plus, never a space.",
    params(
        ("service" = String, Path, description = "Service name"),
        ("metric" = String, Path, description = "Metric name"),
        RangeQuery,
    ),
    responses(
        (status = 200, description = "Buckets, oldest first; empty buckets are absent", body = History),
        (status = 400, description = "A malformed or out-of-range parameter", body = ErrorBody),
        (status = 404, description = "No such metric", body = ErrorBody),
    )
)]
async fn metric_history(
    State(state): State<ApiState>,
    ApiPath((service, metric)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult<Json<History>> {
    let range = Range::from_params(&params, state.now())?;
    Ok(Json(
        state.query.metric_history(&service, &metric, range).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/series/{id}",
    summary = "History of one series",
    params(
        ("id" = String, Path, description = "Series id, 16 hex digits", pattern = "^[0-9a-f]{16}$"),
        RangeQuery,
    ),
    responses(
        (status = 200, description = "Buckets, oldest first", body = History),
        (status = 400, description = "A malformed id or parameter", body = ErrorBody),
        (status = 404, description = "No such series", body = ErrorBody),
    )
)]
async fn series_history(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult<Json<History>> {
    let id: SeriesId = id.parse().map_err(QueryError::BadRequest)?;
    let range = Range::from_params(&params, state.now())?;
    Ok(Json(state.query.series_history(id, range).await?))
}

/// The trace store, or the 404 a deployment without one answers.
fn trace_store(state: &ApiState, uri: &Uri) -> Result<Arc<dyn TraceStore>, ApiError> {
    state
        .traces
        .clone()
        .ok_or_else(|| QueryError::NotFound(format!("no route for {}", uri.path())).into())
}

#[utoipa::path(
    get,
    path = "/api/traces/{id}",
    summary = "One kept trace as a span tree with its critical path marked",
    params(("id" = String, Path, description = "Trace id, 32 hex digits", pattern = "^[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The span tree; spans on the critical path (Jaeger's definition) are flagged, with their self time on the path", body = TraceView),
        (status = 400, description = "Not a trace id", body = ErrorBody),
        (status = 404, description = "No such kept trace", body = ErrorBody),
    )
)]
async fn trace(
    State(state): State<ApiState>,
    uri: Uri,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TraceView>> {
    let store = trace_store(&state, &uri)?;
    Ok(Json(traces::api::get_trace(store.as_ref(), &id).await?))
}

#[derive(Debug, Default, Deserialize)]
struct LimitParams {
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/services/{service}/traces",
    summary = "Recent kept traces of a service, newest first",
    params(("service" = String, Path, description = "Service name"), TraceLimitQuery),
    responses(
        (status = 200, description = "Trace summaries, newest first", body = TraceList),
        (status = 400, description = "`limit` out of range", body = ErrorBody),
    )
)]
async fn recent_traces(
    State(state): State<ApiState>,
    uri: Uri,
    ApiPath(service): ApiPath<String>,
    ApiQuery(params): ApiQuery<LimitParams>,
) -> ApiResult<Json<TraceList>> {
    let store = trace_store(&state, &uri)?;
    let limit = limit_param(
        params.limit.as_deref(),
        traces::api::DEFAULT_LIST_LIMIT,
        traces::api::MAX_LIST_LIMIT,
    )
    .map_err(QueryError::BadRequest)?;
    let traces = traces::api::recent(store.as_ref(), &service, limit).await?;
    Ok(Json(TraceList { service, traces }))
}

#[utoipa::path(
    get,
    path = "/api/graph",
    summary = "Service graph for a time range (from trace spans)",
    description = "Nodes are services (and virtual nodes such as databases named by client spans whose peer never reports) with their RED summary; edges are client→server and producer→consumer pairs with request count, errors and p50/p95/p99 latency. Without `resolution`, the finest one that fits the range.",
    params(RangeQuery),
    responses(
        (status = 200, description = "Nodes and edges", body = GraphView),
        (status = 400, description = "A malformed or out-of-range parameter", body = ErrorBody),
    )
)]
async fn graph(
    State(state): State<ApiState>,
    uri: Uri,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult<Json<GraphView>> {
    trace_store(&state, &uri)?;
    Ok(Json(
        traces::api::graph(state.metrics.as_ref(), params.request()?, state.now()).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/limits",
    summary = "Active-series limits and the points they refused, per service and metric",
    responses(
        (status = 200, description = "Limits and refusal counts (at most 100 service and metric pairs, sorted by service then metric)", body = RefusalReport),
        (status = 503, description = "The counts cannot be read", body = ErrorBody),
    )
)]
async fn limits(State(state): State<ApiState>, uri: Uri) -> ApiResult<Json<RefusalReport>> {
    let Some(admission) = &state.limits else {
        return Err(QueryError::NotFound(format!("no route for {}", uri.path())).into());
    };
    match admission.refusals().await {
        Ok(report) => Ok(Json(report)),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
    }
}

#[utoipa::path(
    get,
    path = "/api/alerts",
    summary = "Active alerts (pending and firing), most urgent first",
    responses((status = 200, description = "Active alerts", body = AlertList))
)]
async fn active_alerts(State(state): State<ApiState>) -> ApiResult<Json<AlertList>> {
    Ok(Json(state.alerts.active(state.now()).await?))
}

#[utoipa::path(
    get,
    path = "/api/alerts/history",
    summary = "Alert transitions in a time range, newest first",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Transitions, newest first", body = AlertHistory),
        (status = 400, description = "A malformed or out-of-range parameter", body = ErrorBody),
    )
)]
async fn alert_history(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> ApiResult<Json<AlertHistory>> {
    let filter = params
        .filter(state.now())
        .map_err(AlertApiError::BadRequest)?;
    Ok(Json(state.alerts.history(&filter).await?))
}

#[utoipa::path(
    get,
    path = "/api/alerts/dead-letters",
    summary = "Notifications that could not be delivered",
    params(DeadLetterLimitQuery),
    responses(
        (status = 200, description = "Dead letters", body = DeadLetters),
        (status = 400, description = "`limit` out of range", body = ErrorBody),
    )
)]
async fn dead_letters(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<LimitParams>,
) -> ApiResult<Json<DeadLetters>> {
    Ok(Json(
        state
            .alerts
            .dead_letters(
                limit_param(
                    params.limit.as_deref(),
                    DEFAULT_DEAD_LETTER_LIMIT,
                    MAX_DEAD_LETTER_LIMIT,
                )
                .map_err(AlertApiError::BadRequest)?,
            )
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/alerts/{fingerprint}/ack",
    summary = "Acknowledge a firing alert",
    params(("fingerprint" = String, Path, description = "The alert's fingerprint")),
    request_body = AckRequest,
    responses(
        (status = 200, description = "The acknowledged alert", body = AcknowledgedAlert),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "The alert is not firing", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/silences",
    summary = "Active silences (all of them with `all`), oldest first",
    params(SilenceQuery),
    responses((status = 200, description = "Silences", body = SilenceList))
)]
async fn silences(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<SilenceParams>,
) -> ApiResult<Json<SilenceList>> {
    Ok(Json(
        state
            .alerts
            .silences(params.all.as_deref(), state.now())
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/silences",
    summary = "Create a silence (matchers, and `duration` or `ends_at`)",
    request_body = SilenceRequest,
    responses(
        (status = 201, description = "The silence with its id", body = CreatedSilence),
        (status = 400, description = "A malformed or invalid silence", body = ErrorBody),
    )
)]
async fn create_silence(
    State(state): State<ApiState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<CreatedSilence>)> {
    let silence = state.alerts.create_silence(&body, state.now()).await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

#[utoipa::path(
    delete,
    path = "/api/silences/{id}",
    summary = "Expire a silence now",
    params(("id" = String, Path, description = "The silence's id")),
    responses(
        (status = 200, description = "Expired", body = DeletedSilence),
        (status = 404, description = "No such silence", body = ErrorBody),
    )
)]
async fn delete_silence(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeletedSilence>> {
    Ok(Json(state.alerts.delete_silence(&id).await?))
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
