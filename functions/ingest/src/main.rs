//! OTLP/HTTP in (API Gateway HTTP API): API key check, decode, pack into records, PutRecords to Kinesis.
//!
//! Env: `STREAM_NAME` (name or ARN), `API_KEYS_PARAMETER` (SSM) or `API_KEY_HASHES`; optional
//! per-point limits `MAX_ATTRIBUTES_PER_POINT`, `MAX_ATTRIBUTE_VALUE_BYTES`, `MAX_POINTS_PER_REQUEST`
//! (defaults in `IngestLimits`). Retention is the default one, as in the aggregator function.
//! Active-series limits (shared by every instance through `STATE_TABLE`): `MAX_SERIES_PER_SERVICE`
//! (10000), `MAX_SERIES_PER_METRIC` (2000), `SERIES_ACTIVE_WINDOW_SECONDS` (3600). Optional
//! `REGISTRY_TABLE`: instances named by OTLP resources are recorded in the service registry.
//! Per-key rate limits, per container: `KEY_POINTS_PER_SECOND` (1000000), `KEY_REQUESTS_PER_SECOND`
//! (10000), `KEY_MAX_KEYS` (10000); 0 turns one off.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use flowscope_core::aws::lambda::{keys, required_env};
use flowscope_core::aws::{config, DynamoRegistryStore, DynamoSeriesAdmission, KinesisStream};
use flowscope_core::cardinality::SeriesLimits;
use flowscope_core::http::ingest_router_with;
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::key_limits::{KeyLimiter, KeyLimits};
use flowscope_core::ports::StreamSink;
use flowscope_core::registry::{Registry, RegistryLimits};
use lambda_http::{run, Error};

/// The core's OTLP routes (the ones local mode serves on 4318) behind the API key check;
/// lambda_http converts API Gateway events to requests and responses back.
#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = config::load().await;
    // The `ingest` scope: API keys, admin keys, or a token carrying it.
    let keys = std::sync::Arc::new(keys::load_authenticator(&config).await?);
    let stream: Arc<dyn StreamSink> =
        Arc::new(KinesisStream::new(&config, required_env("STREAM_NAME")?));
    let limits = IngestLimits::default().with_env(|name| std::env::var(name).ok())?;
    let admission = DynamoSeriesAdmission::new(
        &config,
        required_env("STATE_TABLE")?,
        SeriesLimits::from_env()?,
    );
    // Per-key rate limits, in memory per container (the coarse limit is API Gateway's throttling).
    let key_limits = KeyLimiter::new(
        KeyLimits::default().with_env(|name| std::env::var(name).ok())?,
        u32::try_from(limits.max_points_per_request).unwrap_or(u32::MAX),
    );
    let ingest = Ingest::new(stream, limits)
        .with_series_admission(Arc::new(admission))
        .with_key_limits(Arc::new(key_limits));
    // Instances named by OTLP resources (`service.instance.id`) go into the registry, at most one
    // write per instance per minute per container.
    let ingest = match std::env::var("REGISTRY_TABLE") {
        Ok(table) if !table.is_empty() => ingest.with_registry(Arc::new(Registry::new(
            Arc::new(DynamoRegistryStore::new(&config, table)),
            RegistryLimits::default(),
        ))),
        _ => ingest,
    };
    let ingest = Arc::new(ingest);
    // One CloudWatch EMF line per request (accepted/rejected points and spans, stream writes).
    let router = flowscope_core::telemetry::emf::with_ingest_lines(
        ingest_router_with(ingest.clone(), keys),
        ingest,
        flowscope_core::telemetry::emf::function_name("ingest"),
    );
    run(router).await
}
