//! DynamoDB adapters, implementing `infra/dynamodb.md`: [`DynamoStore`] (buckets, series registry,
//! aggregator state), [`DynamoConnections`] (live connections and their subscriptions),
//! [`DynamoTraceStore`] (sampled traces) and [`DynamoAlertStore`] (alert states, history, silences,
//! dead letters).

mod admission;
mod alerts;
mod buckets;
mod connections;
mod item;
mod live;
mod registry;
mod rules;
mod series;
mod sink_state;
mod state;
mod tables;
mod traces;

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::Client;
use bytes::Bytes;

use super::errors;
use super::retry::RetryPolicy;
use crate::domain::stats::BucketStats;
use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{
    ApplyOutcome, BucketDelta, BucketStore, Purge, SeriesCatalog, StateStore, StoreError,
};

use item::Item;

pub use admission::DynamoSeriesAdmission;
pub use alerts::DynamoAlertStore;
pub use buckets::{decode_bucket_image, BucketImage};
pub use connections::DynamoConnections;
pub use live::{
    decode_event_item, decode_trace_item, is_event_item, is_trace_item, DynamoLiveEvents,
    EVENT_ITEM_PREFIX, MAX_TRACE_EVENTS_PER_BATCH, MAX_TRACE_ITEM_BYTES, TRACE_ITEM_PREFIX,
};
pub use registry::DynamoRegistryStore;
pub use tables::{create_tables_if_missing, delete_tables_if_present};
pub use traces::DynamoTraceStore;

/// The tables' names, from `BUCKETS_TABLE`, `SERIES_TABLE`, `STATE_TABLE`, `CONNECTIONS_TABLE`,
/// `TRACES_TABLE`, `ALERTS_TABLE` and `LIVE_TABLE`.
///
/// A function is given only the tables it uses, so a missing name is not an error until an operation
/// needs that table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableNames {
    pub buckets: String,
    pub series: String,
    pub state: String,
    pub connections: String,
    pub traces: String,
    pub alerts: String,
    /// Short-lived live events (kept traces' `trace` events) whose stream feeds the fan-out.
    pub live: String,
    /// The service registry (instances, leases).
    pub registry: String,
}

impl TableNames {
    pub fn from_env() -> TableNames {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        TableNames {
            buckets: var("BUCKETS_TABLE"),
            series: var("SERIES_TABLE"),
            state: var("STATE_TABLE"),
            connections: var("CONNECTIONS_TABLE"),
            traces: var("TRACES_TABLE"),
            alerts: var("ALERTS_TABLE"),
            live: var("LIVE_TABLE"),
            registry: var("REGISTRY_TABLE"),
        }
    }

    /// `<prefix>-buckets`, `<prefix>-series`, …: unique names per test run against an emulator.
    pub fn with_prefix(prefix: &str) -> TableNames {
        TableNames {
            buckets: format!("{prefix}-buckets"),
            series: format!("{prefix}-series"),
            state: format!("{prefix}-state"),
            connections: format!("{prefix}-connections"),
            traces: format!("{prefix}-traces"),
            alerts: format!("{prefix}-alerts"),
            live: format!("{prefix}-live"),
            registry: format!("{prefix}-registry"),
        }
    }
}

/// Resolves a table name, or says which variable should have named it.
fn table<'a>(name: &'a str, variable: &str) -> Result<&'a str, StoreError> {
    if name.is_empty() {
        Err(StoreError::Unavailable(format!(
            "{variable} is not set: this function was not given that table"
        )))
    } else {
        Ok(name)
    }
}

/// Throttling → [`StoreError::Throttled`] (the caller backs off), anything else → `Unavailable`.
fn store_error<E, R>(operation: &str, error: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = errors::describe(operation, error);
    if errors::is_throttling(error) {
        StoreError::Throttled(message)
    } else {
        StoreError::Unavailable(message)
    }
}

/// Every item a Query finds, following `LastEvaluatedKey` across pages.
async fn query_all(request: QueryFluentBuilder, operation: &str) -> Result<Vec<Item>, StoreError> {
    query_up_to(request, usize::MAX, operation).await
}

/// The first `limit` items of a query, in its order, following its pages only as far as needed.
async fn query_up_to(
    request: QueryFluentBuilder,
    limit: usize,
    operation: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    if limit == 0 {
        return Ok(items);
    }
    // Pages no larger than what is wanted, and bounded (DynamoDB also caps a page at 1 MB).
    const MAX_PAGE: usize = 1000;
    let page = i32::try_from(limit.min(MAX_PAGE)).unwrap_or(1000);
    let request = request.limit(page);
    let mut start_key: Option<Item> = None;
    loop {
        let output = request
            .clone()
            .set_exclusive_start_key(start_key.take())
            .send()
            .await
            .map_err(|e| store_error(operation, &e))?;
        for item in output.items() {
            items.push(item.clone());
            if items.len() >= limit {
                return Ok(items);
            }
        }
        match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => start_key = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

/// Unix seconds now (expiry checks: TTL deletes lazily, so reads skip what has expired).
fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Version conflicts on one bucket resolve one writer per round, so a bucket fed by many shards at
/// once needs more rounds than [`RetryPolicy::default`] allows.
const CONFLICT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 40,
    max_elapsed: std::time::Duration::from_secs(10),
    base_delay: std::time::Duration::from_millis(10),
    max_delay: std::time::Duration::from_millis(200),
};

/// The metric store on DynamoDB.
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    retry: RetryPolicy,
    /// Services already written to the service list by this process: each is written once per cold
    /// start rather than once per batch.
    known_services: Mutex<HashSet<String>>,
}

impl DynamoStore {
    pub fn new(config: &SdkConfig, tables: TableNames) -> Self {
        Self::from_client(Client::new(config), tables)
    }

    pub fn from_client(client: Client, tables: TableNames) -> Self {
        DynamoStore {
            client,
            tables,
            retry: CONFLICT_RETRY,
            known_services: Mutex::new(HashSet::new()),
        }
    }

    /// Replaces the retry policy for version conflicts and unprocessed batch items.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    fn buckets_table(&self) -> Result<&str, StoreError> {
        table(&self.tables.buckets, "BUCKETS_TABLE")
    }

    fn series_table(&self) -> Result<&str, StoreError> {
        table(&self.tables.series, "SERIES_TABLE")
    }

    fn state_table(&self) -> Result<&str, StoreError> {
        table(&self.tables.state, "STATE_TABLE")
    }
}

#[async_trait]
impl BucketStore for DynamoStore {
    async fn apply_bucket(&self, delta: &BucketDelta) -> Result<ApplyOutcome, StoreError> {
        self.apply_bucket_delta(delta).await
    }

    /// DynamoDB receives the `1d` deltas from the writers (see `infra/dynamodb.md`).
    fn derives_daily(&self) -> bool {
        false
    }

    async fn query_buckets(
        &self,
        series: SeriesId,
        resolution: Resolution,
        from_unix_s: i64,
        to_unix_s: i64,
    ) -> Result<Vec<(i64, BucketStats)>, StoreError> {
        self.query_bucket_range(series, resolution, from_unix_s, to_unix_s)
            .await
    }
}

#[async_trait]
impl SeriesCatalog for DynamoStore {
    async fn upsert_series(&self, series: &[SeriesMeta]) -> Result<(), StoreError> {
        self.upsert_series_items(series).await
    }

    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        self.query_services().await
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        self.query_series_of(service).await
    }

    async fn get_series(&self, id: SeriesId) -> Result<Option<SeriesMeta>, StoreError> {
        self.query_series_by_id(id).await
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn load_state(&self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StoreError> {
        self.batch_get_state(keys).await
    }

    async fn save_state(&self, items: &[(String, Bytes, i64)]) -> Result<(), StoreError> {
        self.batch_put_state(items).await
    }
}

#[async_trait]
impl Purge for DynamoStore {
    /// DynamoDB's TTL deletes expired items by itself (within a day or two, at no write cost).
    async fn purge_expired(&self, _now_unix_s: i64) -> Result<u64, StoreError> {
        Ok(0)
    }
}
