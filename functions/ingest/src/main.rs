//! OTLP/HTTP in (API Gateway HTTP API): API key check, decode, pack into records, PutRecords to Kinesis.
//!
//! Env: `STREAM_NAME` (name or ARN), `API_KEYS_PARAMETER` (SSM) or `API_KEY_HASHES`; optional
//! per-point limits `MAX_ATTRIBUTES_PER_POINT`, `MAX_ATTRIBUTE_VALUE_BYTES`, `MAX_POINTS_PER_REQUEST`
//! (defaults in `IngestLimits`). Retention is the default one, as in the aggregator function.

use std::sync::Arc;

use flowscope_core::aws::lambda::{http, keys, required_env};
use flowscope_core::aws::{config, KinesisStream};
use flowscope_core::ingest::{Ingest, IngestLimits};
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = config::load().await;
    let keys = keys::load_api_keys(&config).await?;
    let stream = KinesisStream::new(&config, required_env("STREAM_NAME")?);
    let limits = IngestLimits::default().with_env(|name| std::env::var(name).ok())?;
    let ingest = Ingest::new(Arc::new(stream), limits);
    let (ingest, keys) = (&ingest, &keys);
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(http::handle_ingest(ingest, keys, request).await)
    }))
    .await
}
