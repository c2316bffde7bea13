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
) -> Router {
    // Browser SDKs export with CORS. Profiles: the Pyroscope push API at `/ingest`.
    flowscope_core::http::otlp::router(ingest)
        .merge(flowscope_core::http::profiles::ingest_router(profiles))
        .layer(CorsLayer::permissive())
}
