//! The OTLP/HTTP port (4318): the core's receiver routes ([`flowscope_core::http::otlp`], the same
//! ones the ingest function serves) and the Pyroscope push API (`POST /ingest`), with CORS for
//! browser SDKs.

use std::sync::Arc;

use axum::Router;
use flowscope_core::ingest::Ingest;
use flowscope_core::ports::StreamSink;
use tower_http::cors::CorsLayer;

pub fn router(
    ingest: Arc<Ingest<dyn StreamSink>>,
    profiles: Arc<flowscope_core::profiling::service::ProfileService>,
    auth: Option<Arc<flowscope_core::tokens::Authenticator>>,
) -> Router {
    // Browser SDKs export with CORS. Profiles: the Pyroscope push API at `/ingest`.
    let router = flowscope_core::http::otlp::router(ingest)
        .merge(flowscope_core::http::profiles::ingest_router(profiles));
    // With `--ingest-token`: the `ingest` scope (inside CORS, so preflights are answered).
    let router = match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(
            auth,
            flowscope_core::http::auth::require_ingest_scope,
        )),
        None => router,
    };
    router.layer(CorsLayer::permissive())
}
