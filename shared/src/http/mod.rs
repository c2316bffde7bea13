//! Every HTTP route of Flowscope as axum handlers, built once from the ports: the `/api/*` query and
//! alerting API ([`api`]) and the OTLP/HTTP receiver ([`otlp`]), with the API key check as
//! middleware ([`auth`]). Local mode mounts these routers in its own server (next to its local-only
//! routes: `/ws`, `@connections`, `/config.json`, the dashboard); the `query` and `ingest` Lambda
//! functions serve [`query_router`] and [`ingest_router`] with `lambda_http::run`, which converts API
//! Gateway events to and from HTTP requests.

pub mod api;
pub mod auth;
pub mod body;
pub mod breaker;
pub mod caching;
pub mod contract;
pub mod export;
pub mod otlp;
pub mod params;
pub mod profiles;
pub mod promql;
pub mod query_expr;
pub(crate) mod query_times;
pub mod registry;
pub mod rules;
pub mod tokens;

use axum::middleware;
use axum::Router;

use crate::auth::ApiKeys;

pub use api::{AlertEvents, ApiError, ApiState};

/// The query function's service: every `/api/*` route behind the API key check (headers only).
pub fn query_router(state: ApiState, keys: ApiKeys) -> Router {
    api::router(state).layer(middleware::from_fn_with_state(keys, auth::require_api_key))
}

/// The query function's service with scopes and tokens: every `/api/*` route behind
/// [`auth::require_scope`]; `POST /api/token` issues tokens when `auth` has a token secret.
pub fn query_router_with(
    state: ApiState,
    auth: std::sync::Arc<crate::tokens::Authenticator>,
) -> Router {
    api::router(state.with_authenticator(auth.clone()))
        .layer(middleware::from_fn_with_state(auth, auth::require_scope))
}

/// The ingest function's service with scopes: the `ingest` scope (key or token) on the OTLP routes.
pub fn ingest_router_with(
    ingest: otlp::Receiver,
    auth: std::sync::Arc<crate::tokens::Authenticator>,
) -> Router {
    otlp::router(ingest)
        .fallback(otlp::not_found)
        .layer(middleware::from_fn_with_state(
            auth,
            auth::require_ingest_scope,
        ))
}

/// The ingest function's service: the OTLP routes (404 with a `google.rpc.Status` elsewhere) behind
/// the API key check, which answers 401 with a `google.rpc.Status`.
pub fn ingest_router(ingest: otlp::Receiver, keys: ApiKeys) -> Router {
    otlp::router(ingest)
        .fallback(otlp::not_found)
        .layer(middleware::from_fn_with_state(keys, auth::require_otlp_key))
}
