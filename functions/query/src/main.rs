//! The query API (API Gateway HTTP API, `GET /api/...`): services, series and bucket history, kept
//! traces and the service graph.
//!
//! Env: `BUCKETS_TABLE`, `SERIES_TABLE`, `TRACES_TABLE`, `API_KEYS_PARAMETER` (SSM) or `API_KEY_HASHES`.

use std::sync::Arc;

use flowscope_core::aws::lambda::{http, keys, now_unix_s};
use flowscope_core::aws::{config, DynamoStore, DynamoTraceStore, TableNames};
use flowscope_core::query::QueryApi;
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = config::load().await;
    let keys = keys::load_api_keys(&config).await?;
    let tables = TableNames::from_env();
    let api = QueryApi::new(Arc::new(DynamoStore::new(&config, tables.clone())))
        .with_traces(Arc::new(DynamoTraceStore::new(&config, tables.traces)));
    let (api, keys) = (&api, &keys);
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(http::handle_query(api, keys, request, now_unix_s()).await)
    }))
    .await
}
