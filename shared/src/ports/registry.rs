//! The service registry's records: one per (service, instance, source), in DynamoDB (TTL) on AWS and
//! in redb locally. The domain logic (`crate::registry`) merges an instance's records into one view,
//! enforces the limits and turns changes into live `registry` events; this port only stores.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where a fact about an instance came from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum InstanceSource {
    /// OTLP resource attributes (`service.name`, `service.instance.id`, …) on pushed telemetry.
    Otlp,
    /// The registry API (`POST /api/registry/instances`), kept alive by heartbeats.
    Registered,
    /// A Prometheus scrape target.
    Scraped,
}

impl InstanceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceSource::Otlp => "otlp",
            InstanceSource::Registered => "registered",
            InstanceSource::Scraped => "scraped",
        }
    }

    pub fn parse(text: &str) -> Option<InstanceSource> {
        match text {
            "otlp" => Some(InstanceSource::Otlp),
            "registered" => Some(InstanceSource::Registered),
            "scraped" => Some(InstanceSource::Scraped),
            _ => None,
        }
    }
}

/// What one source says about one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub service: String,
    pub instance: String,
    pub source: InstanceSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Free-form metadata (registered) or the `telemetry.sdk.*` attributes (OTLP).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    /// Unix seconds of the first write of this record (kept by later writes).
    pub first_seen: i64,
    /// Unix seconds of the latest write or heartbeat.
    pub last_seen: i64,
    /// The lease a registration took; a heartbeat moves `expires_at` to `now + lease_ttl_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl_s: Option<i64>,
    /// When the record lapses (the lease end, or the end of an OTLP sighting's retention). A lapsed
    /// record is not listed and is removed by [`RegistryStore::remove_expired`]; on DynamoDB it is
    /// also the table's TTL attribute.
    pub expires_at: i64,
}

impl InstanceRecord {
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at > now
    }
}

/// The registry store's error: the one [`StoreError`] of every storage port.
pub type RegistryStoreError = super::store::StoreError;

/// Whether a [`RegistryStore::put`] made a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutKind {
    Created,
    Updated,
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Writes `record`, keeping the stored `first_seen` when the record exists (a lapsed record
    /// counts as absent: its `first_seen` is not kept and the write is `Created`).
    async fn put(&self, record: &InstanceRecord) -> Result<PutKind, RegistryStoreError>;

    /// Renews a live record with a lease: `last_seen = now`, `expires_at = now + lease_ttl_s`.
    /// `None` when there is no such record, it has no lease, or it has lapsed (`expires_at <= now`):
    /// a lapsed lease is gone and must be registered again.
    async fn renew(
        &self,
        service: &str,
        instance: &str,
        source: InstanceSource,
        now: i64,
    ) -> Result<Option<InstanceRecord>, RegistryStoreError>;

    /// Deletes the record and returns it (`None` when there was none).
    async fn remove(
        &self,
        service: &str,
        instance: &str,
        source: InstanceSource,
    ) -> Result<Option<InstanceRecord>, RegistryStoreError>;

    /// Every record, lapsed ones included (callers filter with [`InstanceRecord::is_live`]).
    async fn list(&self) -> Result<Vec<InstanceRecord>, RegistryStoreError>;

    /// Deletes the records lapsed at `now` and returns them. A record renewed concurrently is not
    /// deleted (the delete is conditional on the expiry it read).
    async fn remove_expired(&self, now: i64) -> Result<Vec<InstanceRecord>, RegistryStoreError>;
}
