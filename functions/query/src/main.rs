//! The query API (API Gateway HTTP API, `/api/...`): services, series and bucket history, kept
//! traces and the service graph (GET), and the alert routes: active alerts, history, rules,
//! acknowledgements and silences (GET, POST, DELETE).
//!
//! Env: `BUCKETS_TABLE`, `SERIES_TABLE`, `STATE_TABLE` (series-limit refusals), `TRACES_TABLE`, `ALERTS_TABLE`, `REGISTRY_TABLE`, `LIVE_TABLE` (optional: live `registry` events), `API_KEYS_PARAMETER` (SSM)
//! or `API_KEY_HASHES`; `ADMIN_KEY_HASHES` (optional) for the `admin` scope (rules, silences,
//! registry writes); `TOKEN_SECRET_PARAMETER` (SSM) or `TOKEN_SECRET`, `TOKEN_TTL_SECONDS` for tokens. Rules: the version
//! put through the API (alerts table), else `infra/alert-rules.yaml`, compiled in.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use flowscope_core::alerts::{RuleSet, RuleSource};
use flowscope_core::aws::lambda::keys;
use flowscope_core::aws::{
    config, DynamoAlertStore, DynamoLiveEvents, DynamoRegistryStore, DynamoSeriesAdmission,
    DynamoStore, DynamoTraceStore, TableNames,
};
use flowscope_core::cardinality::SeriesLimits;
use flowscope_core::http::breaker::BreakerSettings;
use flowscope_core::http::rules::RuleWriters;
use flowscope_core::http::{query_router_with, ApiState};
use flowscope_core::registry::{Registry, RegistryLimits};
use lambda_http::{run, Error};

/// Recent answers a container keeps for stale answers: fewer than local mode's, as a function has
/// 256 MB in all.
const RECENT_ANSWERS: usize = 128;
const RECENT_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The core's `/api/*` router (the one local mode serves), behind the API key check; lambda_http
/// converts API Gateway events to requests and responses back. Acknowledgements are stored and
/// returned; their live `alert` event is not pushed from here (the function has no WebSocket
/// management client), so dashboards see it on their next alert reload.
#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = config::load().await;
    // API keys carry `ingest` and `read`; admin keys every scope (rules, silences, registry
    // writes); `POST /api/token` issues short-lived tokens when a token secret is configured.
    let auth = Arc::new(keys::load_authenticator(&config).await?);
    let admin = keys::load_admin_keys()?;
    let tables = TableNames::from_env();
    // `GET /api/limits`: the ingest function's refusal counts (same limits from the same env).
    let admission =
        DynamoSeriesAdmission::new(&config, tables.state.clone(), SeriesLimits::from_env()?);
    let alerts = Arc::new(DynamoAlertStore::new(&config, tables.alerts.clone()));
    let shipped = Arc::new(RuleSet::shipped()?);
    // `GET`/`PUT /api/alert-rules`: the version in the alerts table once one was put, else the
    // compiled-in rules.
    let source = RuleSource::new(alerts.clone(), shipped.clone());
    let writers = if admin.is_empty() {
        RuleWriters::Nobody
    } else {
        RuleWriters::Keys(admin)
    };
    let state = ApiState::new(
        Arc::new(DynamoStore::new(&config, tables.clone())),
        alerts,
        shipped,
    )
    .with_rule_source(source, writers)
    .with_traces(Arc::new(DynamoTraceStore::new(&config, tables.traces)))
    .with_series_admission(Arc::new(admission))
    // While DynamoDB throttles or fails, a warm container answers a repeated query from its recent
    // answers, marked stale, instead of failing (`docs/query-caching.md`; defaults as local mode's).
    .with_store_breaker(
        BreakerSettings::default(),
        RECENT_ANSWERS,
        RECENT_ANSWER_BYTES,
    );
    // The registry routes (`/api/registry/*`) and instances in `GET /api/services`; with
    // `LIVE_TABLE`, every change also goes out as a live `registry` event (live table → fan-out).
    let state = if tables.registry.is_empty() {
        state
    } else {
        let registry = Registry::new(
            Arc::new(DynamoRegistryStore::new(&config, tables.registry.clone())),
            RegistryLimits::default(),
        );
        let registry = if tables.live.trim().is_empty() {
            registry
        } else {
            registry.with_live_events(Arc::new(DynamoLiveEvents::new(
                &config,
                tables.live.clone(),
            )))
        };
        state.with_registry(Arc::new(registry))
    };
    run(query_router_with(state, auth)).await
}
