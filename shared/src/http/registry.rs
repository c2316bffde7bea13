//! The registry routes (issue 13 item 1) on the core router, documented like the others
//! (`docs/openapi.json`):
//! - `POST /api/registry/instances` registers (201 with the merged instance);
//! - `PUT /api/registry/instances/{service}/{instance}/heartbeat` renews the lease (404 once it ran out);
//! - `DELETE /api/registry/instances/{service}/{instance}` deregisters;
//! - `GET /api/registry/instances` lists every live instance.
//!
//! Changes go to [`Registry::subscribe`]rs as live `registry` events (local mode pushes them to
//! WebSocket clients). A deployment without a registry answers 404 on these paths.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::api::{ApiError, ApiPath, ApiState, ErrorBody};
use crate::ports::registry::InstanceSource;
use crate::query::{QueryError, ServiceSummary};
use crate::registry::score::HealthScore;
use crate::registry::{InstanceView, Registration, Registry, RegistryError, ServiceInstances};

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        ApiError::new(
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error.to_string(),
        )
    }
}

fn registry(state: &ApiState, uri: &Uri) -> Result<Arc<Registry>, ApiError> {
    state
        .registry()
        .ok_or_else(|| QueryError::NotFound(format!("no route for {}", uri.path())).into())
}

/// `GET /api/registry/instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InstanceList {
    /// Every live instance, merged from its sources, sorted by service and instance.
    pub instances: Vec<InstanceView>,
}

/// Which instance a request named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InstanceKey {
    pub service: String,
    pub instance: String,
}

/// `DELETE /api/registry/instances/{service}/{instance}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Deregistered {
    pub deregistered: InstanceKey,
}

/// One entry of `GET /api/services`: the service's series summary, and what the registry knows
/// about it (empty lists and a `null` health without a registry, or before a score is computed).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServiceView {
    pub name: String,
    /// Active series (0 for a service known only to the registry).
    pub series: usize,
    /// Unix seconds of the newest point (or of the newest instance sighting, for a service known
    /// only to the registry).
    pub last_seen: i64,
    /// Live instances, sorted by instance id.
    pub instances: Vec<InstanceView>,
    /// Versions its instances report, sorted.
    pub versions: Vec<String>,
    /// Where its instances are known from, sorted.
    pub sources: Vec<InstanceSource>,
    /// The latest health score (docs/health-score.md); `null` until one is computed.
    pub health: Option<HealthScore>,
}

impl ServiceView {
    fn new(
        summary: ServiceSummary,
        entry: Option<ServiceInstances>,
        health: Option<HealthScore>,
    ) -> Self {
        let entry = entry.unwrap_or(ServiceInstances {
            instances: Vec::new(),
            versions: Vec::new(),
            sources: Vec::new(),
        });
        ServiceView {
            name: summary.name,
            series: summary.series,
            last_seen: summary.last_seen,
            instances: entry.instances,
            versions: entry.versions,
            sources: entry.sources,
            health,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/registry/instances",
    summary = "Register an instance (or renew a registration) with a lease",
    request_body(content = Registration, description = "Unknown fields are refused; `lease_seconds` defaults to the registry's default lease"),
    responses(
        (status = 201, description = "The instance as merged from every source after the registration", body = InstanceView),
        (status = 400, description = "Not a valid registration: a reason names the field (metadata over its size limit included)", body = ErrorBody),
        (status = 404, description = "This deployment has no registry", body = ErrorBody),
        (status = 429, description = "The registry store is throttled", body = ErrorBody),
        (status = 503, description = "The registry store is unavailable", body = ErrorBody),
        (status = 507, description = "The registry holds its maximum number of registered instances", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<ApiState>,
    uri: Uri,
    body: Bytes,
) -> Result<(StatusCode, Json<InstanceView>), ApiError> {
    let registry = registry(&state, &uri)?;
    let registration = Registration::parse(&body, &registry.limits())?;
    let (view, _event) = registry.register(&registration, state.now()).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    put,
    path = "/api/registry/instances/{service}/{instance}/heartbeat",
    summary = "Renew a registered instance's lease",
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance id"),
    ),
    responses(
        (status = 200, description = "The instance with its renewed lease", body = InstanceView),
        (status = 404, description = "Not registered (or its lease ran out: register again)", body = ErrorBody),
    )
)]
pub async fn heartbeat(
    State(state): State<ApiState>,
    uri: Uri,
    ApiPath((service, instance)): ApiPath<(String, String)>,
) -> Result<Json<InstanceView>, ApiError> {
    let registry = registry(&state, &uri)?;
    let view = registry.heartbeat(&service, &instance, state.now()).await?;
    Ok(Json(view))
}

#[utoipa::path(
    delete,
    path = "/api/registry/instances/{service}/{instance}",
    summary = "Deregister an instance (what OTLP reports about it stays)",
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance id"),
    ),
    responses(
        (status = 200, description = "Deregistered", body = Deregistered),
        (status = 404, description = "Not registered", body = ErrorBody),
    )
)]
pub async fn deregister(
    State(state): State<ApiState>,
    uri: Uri,
    ApiPath((service, instance)): ApiPath<(String, String)>,
) -> Result<Json<Deregistered>, ApiError> {
    let registry = registry(&state, &uri)?;
    registry
        .deregister(&service, &instance, state.now())
        .await?;
    Ok(Json(Deregistered {
        deregistered: InstanceKey { service, instance },
    }))
}

#[utoipa::path(
    get,
    path = "/api/registry/instances",
    summary = "Every live instance, merged from the registry API, OTLP and scraping",
    responses(
        (status = 200, description = "Instances sorted by service and instance", body = InstanceList),
        (status = 404, description = "This deployment has no registry", body = ErrorBody),
    )
)]
pub async fn instances(
    State(state): State<ApiState>,
    uri: Uri,
) -> Result<Json<InstanceList>, ApiError> {
    let registry = registry(&state, &uri)?;
    let instances = registry.instances(state.now()).await?;
    Ok(Json(InstanceList { instances }))
}

/// `GET /api/services`: each service with its `instances`, `versions`, `sources` and latest
/// `health` score, plus the services known only to the registry (with no series).
pub async fn service_views(
    state: &ApiState,
    services: Vec<ServiceSummary>,
) -> Result<Vec<ServiceView>, ApiError> {
    let Some(registry) = state.registry() else {
        return Ok(services
            .into_iter()
            .map(|s| ServiceView::new(s, None, None))
            .collect());
    };
    let mut known = crate::registry::by_service(registry.instances(state.now()).await?);
    let mut list: Vec<ServiceView> = services
        .into_iter()
        .map(|summary| {
            let entry = known.remove(&summary.name);
            let health = registry.health_of(&summary.name);
            ServiceView::new(summary, entry, health)
        })
        .collect();
    for (name, entry) in known {
        let last_seen = entry
            .instances
            .iter()
            .map(|i| i.last_seen)
            .max()
            .unwrap_or(0);
        let health = registry.health_of(&name);
        let summary = ServiceSummary {
            name,
            series: 0,
            last_seen,
        };
        list.push(ServiceView::new(summary, Some(entry), health));
    }
    Ok(list)
}
