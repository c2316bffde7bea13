//! The OTLP/HTTP port (4318): the core's receiver routes ([`flowscope_core::http::otlp`], the same
//! ones the ingest function serves), with CORS for browser SDKs.

use std::sync::Arc;

use axum::Router;
use flowscope_core::ingest::Ingest;
use flowscope_core::ports::StreamSink;
use tower_http::cors::CorsLayer;

pub fn router(ingest: Arc<Ingest<dyn StreamSink>>) -> Router {
    // Browser SDKs export with CORS.
    flowscope_core::http::otlp::router(ingest).layer(CorsLayer::permissive())
}
