//! The registry routes (issue 13 item 1) on the core router:
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
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::api::{ApiError, ApiPath, ApiState};
use crate::query::QueryError;
use crate::registry::{Registration, Registry, RegistryError};

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

fn to_value(value: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub async fn register(
    State(state): State<ApiState>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let registry = registry(&state, &uri)?;
    let registration = Registration::parse(&body, &registry.limits())?;
    let (view, _event) = registry.register(&registration, state.now()).await?;
    Ok((StatusCode::CREATED, Json(to_value(&view)?)).into_response())
}

pub async fn heartbeat(
    State(state): State<ApiState>,
    uri: Uri,
    ApiPath((service, instance)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let registry = registry(&state, &uri)?;
    let view = registry.heartbeat(&service, &instance, state.now()).await?;
    Ok(Json(to_value(&view)?))
}

pub async fn deregister(
    State(state): State<ApiState>,
    uri: Uri,
    ApiPath((service, instance)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let registry = registry(&state, &uri)?;
    registry
        .deregister(&service, &instance, state.now())
        .await?;
    Ok(
        Json(json!({ "deregistered": { "service": service, "instance": instance } }))
            .into_response(),
    )
}

pub async fn instances(State(state): State<ApiState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let registry = registry(&state, &uri)?;
    let views = registry.instances(state.now()).await?;
    Ok(Json(json!({ "instances": to_value(&views)? })))
}

/// `GET /api/services` with the registry: each service gains `instances`, `versions`, `sources`
/// and its latest `health` score (`null` until computed), and services known only to the registry are listed (with no series).
pub async fn extend_services(state: &ApiState, services: Value) -> Result<Value, ApiError> {
    let Some(registry) = state.registry() else {
        return Ok(services);
    };
    let mut known = crate::registry::by_service(registry.instances(state.now()).await?);
    let mut list = match services {
        Value::Array(list) => list,
        other => return Ok(other),
    };
    for service in &mut list {
        let Some(object) = service.as_object_mut() else {
            continue;
        };
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let entry = known.remove(&name);
        extend_one(object, entry.as_ref())?;
        object.insert("health".into(), to_value(&registry.health_of(&name))?);
    }
    for (name, entry) in known {
        let mut object = serde_json::Map::new();
        object.insert("name".into(), Value::String(name.clone()));
        object.insert("series".into(), json!(0));
        object.insert(
            "last_seen".into(),
            json!(entry
                .instances
                .iter()
                .map(|i| i.last_seen)
                .max()
                .unwrap_or(0)),
        );
        extend_one(&mut object, Some(&entry))?;
        object.insert("health".into(), to_value(&registry.health_of(&name))?);
        list.push(Value::Object(object));
    }
    Ok(Value::Array(list))
}

fn extend_one(
    object: &mut serde_json::Map<String, Value>,
    entry: Option<&crate::registry::ServiceInstances>,
) -> Result<(), ApiError> {
    let (instances, versions, sources) = match entry {
        Some(entry) => (
            to_value(&entry.instances)?,
            to_value(&entry.versions)?,
            to_value(&entry.sources)?,
        ),
        None => (json!([]), json!([]), json!([])),
    };
    object.insert("instances".into(), instances);
    object.insert("versions".into(), versions);
    object.insert("sources".into(), sources);
    Ok(())
}
