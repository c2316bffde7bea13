//! The query API (API Gateway HTTP API, `/api/...`): services, series and bucket history, kept
//! traces and the service graph (GET), and the alert routes: active alerts, history, rules,
//! acknowledgements and silences (GET, POST, DELETE).
//!
//! Env: `BUCKETS_TABLE`, `SERIES_TABLE`, `STATE_TABLE` (series-limit refusals), `TRACES_TABLE`, `ALERTS_TABLE`, `API_KEYS_PARAMETER` (SSM)
//! or `API_KEY_HASHES`. Rules: `infra/alert-rules.yaml`, compiled in.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use flowscope_core::alerts::{AlertApi, RuleSet};
use flowscope_core::api::ApiRouter;
use flowscope_core::aws::lambda::{http, keys, now_unix_s};
use flowscope_core::aws::{
    config, DynamoAlertStore, DynamoSeriesAdmission, DynamoStore, DynamoTraceStore, TableNames,
};
use flowscope_core::cardinality::SeriesLimits;
use flowscope_core::query::QueryApi;
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = config::load().await;
    let keys = keys::load_api_keys(&config).await?;
    let tables = TableNames::from_env();
    let query = QueryApi::new(Arc::new(DynamoStore::new(&config, tables.clone()))).with_traces(
        Arc::new(DynamoTraceStore::new(&config, tables.traces.clone())),
    );
    // `GET /api/limits`: the ingest function's refusal counts (same limits from the same env).
    let admission =
        DynamoSeriesAdmission::new(&config, tables.state.clone(), SeriesLimits::from_env()?);
    let alerts = AlertApi::new(
        Arc::new(DynamoAlertStore::new(&config, tables.alerts)),
        Arc::new(RuleSet::shipped()?),
    );
    let api = ApiRouter::new(query, alerts).with_series_admission(Arc::new(admission));
    let (api, keys) = (&api, &keys);
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(http::handle_query(api, keys, request, now_unix_s()).await)
    }))
    .await
}
