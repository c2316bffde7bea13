//! The service registry (issue 13 item 1): instances known from OTLP resource attributes and from an
//! explicit API with leases, merged into one view per instance, with limits and live `registry`
//! events. Storage is the [`RegistryStore`] port (redb locally, DynamoDB on AWS).
//!
//! Records are kept per (service, instance, source), so a lease that lapses removes only what the
//! registration said, never what OTLP reported about the same instance.
//!
//! OTLP sightings are throttled by a last-write cache ([`Registry::observe`]): an instance already
//! written within `otlp_refresh_s` costs a hash lookup, so a busy receiver writes each instance at
//! most once per refresh interval per process, never once per request.

pub mod probe;
pub mod score;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::ports::registry::{InstanceRecord, InstanceSource, PutKind, RegistryStore};
use crate::ports::StoreError;
use crate::ports::{LiveEvent, LiveEventSink};

/// The registry's limits (flags and env vars of `flowscope local`, README `## Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Instances (per source) the registry holds; a registration beyond it is refused (507).
    pub max_instances: usize,
    /// Longest lease a registration may take, in seconds.
    pub max_lease_s: i64,
    /// The lease when a registration names none.
    pub default_lease_s: i64,
    /// Bytes of metadata (keys + values) one registration may carry.
    pub max_metadata_bytes: usize,
    /// How long an instance seen only through OTLP stays listed after its last sighting.
    pub otlp_retention_s: i64,
    /// How often one process writes a sighting of the same instance.
    pub otlp_refresh_s: i64,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_instances: 10_000,
            max_lease_s: 3_600,
            default_lease_s: 60,
            max_metadata_bytes: 4_096,
            otlp_retention_s: 86_400,
            otlp_refresh_s: 60,
        }
    }
}

/// Longest service or instance name, and longest URL.
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_URL_BYTES: usize = 2_048;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Full(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::Invalid(_) => 400,
            RegistryError::NotFound(_) => 404,
            RegistryError::Full(_) => 507,
            RegistryError::Store(StoreError::Throttled(_)) => 429,
            RegistryError::Store(_) => 503,
        }
    }
}

/// `POST /api/registry/instances`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub service: String,
    pub instance: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub health_url: Option<String>,
    #[serde(default)]
    pub metrics_url: Option<String>,
    /// Lease in seconds; [`RegistryLimits::default_lease_s`] when absent.
    #[serde(default)]
    pub lease_seconds: Option<i64>,
}

fn check_name(what: &str, value: &str) -> Result<(), RegistryError> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES {
        return Err(RegistryError::Invalid(format!(
            "{what} must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(RegistryError::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// An http(s) URL with a host, at most [`MAX_URL_BYTES`].
pub fn check_url(what: &str, url: &str) -> Result<(), RegistryError> {
    if url.len() > MAX_URL_BYTES {
        return Err(RegistryError::Invalid(format!(
            "{what} is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| RegistryError::Invalid(format!("{what} {url:?} is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(RegistryError::Invalid(format!(
            "{what} must be an http:// or https:// URL with a host"
        )));
    }
    Ok(())
}

impl Registration {
    pub fn parse(body: &[u8], limits: &RegistryLimits) -> Result<Registration, RegistryError> {
        let registration: Registration = serde_json::from_slice(body)
            .map_err(|e| RegistryError::Invalid(format!("invalid registration: {e}")))?;
        registration.validate(limits)?;
        Ok(registration)
    }

    pub fn validate(&self, limits: &RegistryLimits) -> Result<(), RegistryError> {
        check_name("service", &self.service)?;
        check_name("instance", &self.instance)?;
        for (what, value) in [("version", &self.version), ("host", &self.host)] {
            if let Some(value) = value {
                check_name(what, value)?;
            }
        }
        let metadata_bytes: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata_bytes > limits.max_metadata_bytes {
            return Err(RegistryError::Invalid(format!(
                "metadata is {metadata_bytes} bytes, more than the limit of {} (--registry-max-metadata-bytes)",
                limits.max_metadata_bytes
            )));
        }
        for (what, url) in [
            ("health_url", &self.health_url),
            ("metrics_url", &self.metrics_url),
        ] {
            if let Some(url) = url {
                check_url(what, url)?;
            }
        }
        let lease = self.lease_seconds.unwrap_or(limits.default_lease_s);
        if lease < 1 || lease > limits.max_lease_s {
            return Err(RegistryError::Invalid(format!(
                "lease_seconds must be between 1 and {} (--registry-max-lease)",
                limits.max_lease_s
            )));
        }
        Ok(())
    }

    fn record(&self, limits: &RegistryLimits, now: i64) -> InstanceRecord {
        let lease = self.lease_seconds.unwrap_or(limits.default_lease_s);
        InstanceRecord {
            service: self.service.clone(),
            instance: self.instance.clone(),
            source: InstanceSource::Registered,
            version: self.version.clone(),
            host: self.host.clone(),
            metadata: self.metadata.clone(),
            health_url: self.health_url.clone(),
            metrics_url: self.metrics_url.clone(),
            first_seen: now,
            last_seen: now,
            lease_ttl_s: Some(lease),
            expires_at: now.saturating_add(lease),
        }
    }
}

/// An instance as OTLP resource attributes describe it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sighting {
    pub service: String,
    pub instance: String,
    pub version: Option<String>,
    pub host: Option<String>,
    /// `telemetry.sdk.*` attributes.
    pub sdk: BTreeMap<String, String>,
}

impl Sighting {
    /// The sighting in a resource's flattened attributes; `None` without `service.instance.id`
    /// (an instance needs an id; the service alone is already known from its series).
    pub fn from_attributes<'a>(
        service: &str,
        mut get: impl FnMut(&str) -> Option<&'a str>,
        sdk: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Option<Sighting> {
        // Flowscope's own probe results describe an instance; they are not a sighting of it.
        if get(probe::PROBE_RESOURCE_ATTRIBUTE).is_some() {
            return None;
        }
        let instance = get("service.instance.id").filter(|i| !i.is_empty())?;
        let bounded = |v: &str| v.len() <= MAX_NAME_BYTES && !v.chars().any(char::is_control);
        if !bounded(service) || !bounded(instance) {
            return None;
        }
        let optional =
            |v: Option<&str>| v.filter(|v| !v.is_empty() && bounded(v)).map(String::from);
        Some(Sighting {
            service: service.to_string(),
            instance: instance.to_string(),
            version: optional(get("service.version")),
            host: optional(get("host.name")),
            sdk: sdk
                .filter(|(k, v)| k.starts_with("telemetry.sdk.") && bounded(k) && bounded(v))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }
}

/// The lease of a registered instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseView {
    pub ttl_seconds: i64,
    pub expires_at: i64,
}

/// One instance, merged from every source that knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceView {
    pub service: String,
    pub instance: String,
    /// Registered first, then OTLP, then scraped.
    pub version: Option<String>,
    pub host: Option<String>,
    pub sources: Vec<InstanceSource>,
    pub metadata: BTreeMap<String, String>,
    pub health_url: Option<String>,
    pub metrics_url: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub lease: Option<LeaseView>,
}

impl InstanceView {
    /// Merges the live records of one instance (same service and instance), in source order.
    fn merge(records: &[&InstanceRecord]) -> Option<InstanceView> {
        let mut sorted: Vec<&InstanceRecord> = records.to_vec();
        sorted.sort_by_key(|r| match r.source {
            InstanceSource::Registered => 0,
            InstanceSource::Otlp => 1,
            InstanceSource::Scraped => 2,
        });
        let first = sorted.first()?;
        let pick =
            |f: fn(&InstanceRecord) -> Option<&String>| sorted.iter().find_map(|r| f(r)).cloned();
        let mut metadata = BTreeMap::new();
        for record in sorted.iter().rev() {
            metadata.extend(record.metadata.clone());
        }
        let mut sources: Vec<InstanceSource> = sorted.iter().map(|r| r.source).collect();
        sources.sort();
        Some(InstanceView {
            service: first.service.clone(),
            instance: first.instance.clone(),
            version: pick(|r| r.version.as_ref()),
            host: pick(|r| r.host.as_ref()),
            sources,
            metadata,
            health_url: pick(|r| r.health_url.as_ref()),
            metrics_url: pick(|r| r.metrics_url.as_ref()),
            first_seen: sorted.iter().map(|r| r.first_seen).min().unwrap_or(0),
            last_seen: sorted.iter().map(|r| r.last_seen).max().unwrap_or(0),
            lease: sorted
                .iter()
                .find(|r| r.source == InstanceSource::Registered)
                .and_then(|r| {
                    r.lease_ttl_s.map(|ttl| LeaseView {
                        ttl_seconds: ttl,
                        expires_at: r.expires_at,
                    })
                }),
        })
    }
}

/// Merges live records into one view per (service, instance), sorted.
pub fn merge_records(records: &[InstanceRecord], now: i64) -> Vec<InstanceView> {
    let mut groups: BTreeMap<(&str, &str), Vec<&InstanceRecord>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.is_live(now)) {
        groups
            .entry((&record.service, &record.instance))
            .or_default()
            .push(record);
    }
    groups
        .values()
        .filter_map(|group| InstanceView::merge(group))
        .collect()
}

/// What the registry knows about one service, for `GET /api/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServiceInstances {
    pub instances: Vec<InstanceView>,
    pub versions: Vec<String>,
    pub sources: Vec<InstanceSource>,
}

/// Groups instance views by service.
pub fn by_service(views: Vec<InstanceView>) -> BTreeMap<String, ServiceInstances> {
    let mut out: BTreeMap<String, ServiceInstances> = BTreeMap::new();
    for view in views {
        let entry = out
            .entry(view.service.clone())
            .or_insert_with(|| ServiceInstances {
                instances: Vec::new(),
                versions: Vec::new(),
                sources: Vec::new(),
            });
        if let Some(version) = &view.version {
            if !entry.versions.contains(version) {
                entry.versions.push(version.clone());
            }
        }
        for source in &view.sources {
            if !entry.sources.contains(source) {
                entry.sources.push(*source);
            }
        }
        entry.instances.push(view);
    }
    for entry in out.values_mut() {
        entry.versions.sort();
        entry.sources.sort();
    }
    out
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistryAction {
    /// A new registration (or a registration replacing a lapsed one).
    Registered,
    /// A registration of an instance that was registered already (metadata, URLs or lease changed).
    Updated,
    Deregistered,
    /// The lease ran out without a heartbeat.
    Expired,
    /// First OTLP sighting (or the first after the previous one lapsed).
    Discovered,
    /// An OTLP-only instance not seen for the retention.
    Forgotten,
}

/// The tag of a [`RegistryEvent`]: always `"registry"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RegistryEventType {
    #[serde(rename = "registry")]
    Registry,
}

/// A live `registry` event (`docs/websocket.md`; in `docs/websocket.server.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegistryEvent {
    #[serde(rename = "type")]
    pub kind: RegistryEventType,
    pub action: RegistryAction,
    pub service: String,
    pub instance: String,
    pub source: InstanceSource,
    /// The instance as merged after the change; `null` when no source knows it any more.
    pub current: Option<InstanceView>,
    /// Unix seconds.
    pub at: i64,
}

impl RegistryEvent {
    fn new(
        action: RegistryAction,
        record: &InstanceRecord,
        current: Option<&InstanceView>,
        at: i64,
    ) -> RegistryEvent {
        RegistryEvent {
            kind: RegistryEventType::Registry,
            action,
            service: record.service.clone(),
            instance: record.instance.clone(),
            source: record.source,
            current: current.cloned(),
            at,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The registry: the store, its limits and the OTLP sighting cache.
pub struct Registry {
    store: Arc<dyn RegistryStore>,
    limits: RegistryLimits,
    /// (service, instance) → unix seconds of this process's last sighting write.
    written: Mutex<HashMap<(String, String), i64>>,
    /// Every change, for whoever pushes live `registry` events (local mode's fan-out).
    events: tokio::sync::broadcast::Sender<RegistryEvent>,
    /// The latest health score per service (set by whoever computes them), for `GET /api/services`.
    health: Mutex<BTreeMap<String, score::HealthScore>>,
    /// Where changes go as live `registry` events besides [`Registry::subscribe`] (on AWS the live
    /// table, whose stream feeds the fan-out function; locally none: the push loop subscribes).
    live: Option<Arc<dyn LiveEventSink>>,
}

/// Events a slow subscriber may lag behind before it misses some (it is told how many).
const EVENT_BUFFER: usize = 1024;

/// Entries of the sighting cache before it is cleared (bounds its memory).
const MAX_CACHED_SIGHTINGS: usize = 100_000;

impl Registry {
    pub fn new(store: Arc<dyn RegistryStore>, limits: RegistryLimits) -> Registry {
        Registry {
            store,
            limits,
            written: Mutex::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            health: Mutex::new(BTreeMap::new()),
            live: None,
        }
    }

    /// Sends every change also to `sink` as a live `registry` event (a failed send is logged: the
    /// change itself is stored, and `GET /api/services` shows it).
    pub fn with_live_events(mut self, sink: Arc<dyn LiveEventSink>) -> Registry {
        self.live = Some(sink);
        self
    }

    /// Replaces the latest health scores (services absent from `scores` are forgotten).
    pub fn set_health(&self, scores: &[(String, score::HealthScore)]) {
        if let Ok(mut health) = self.health.lock() {
            *health = scores.iter().cloned().collect();
        }
    }

    /// The latest health score of `service`, when one was computed.
    pub fn health_of(&self, service: &str) -> Option<score::HealthScore> {
        self.health.lock().ok()?.get(service).cloned()
    }

    /// Every registry change from now on (registrations, deregistrations, expiries, discoveries).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    async fn publish(&self, events: &[RegistryEvent]) {
        for event in events {
            // No subscriber is not an error.
            let _ = self.events.send(event.clone());
        }
        if let (Some(live), false) = (&self.live, events.is_empty()) {
            let events: Vec<LiveEvent> = events
                .iter()
                .map(|e| LiveEvent::new(e.service.clone(), e.to_json()))
                .collect();
            if let Err(e) = live.publish(&events).await {
                tracing::warn!(error = %e, "sending live registry events failed");
            }
        }
    }

    pub fn limits(&self) -> RegistryLimits {
        self.limits
    }

    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        &self.store
    }

    async fn view_of(
        &self,
        service: &str,
        instance: &str,
        now: i64,
    ) -> Result<Option<InstanceView>, RegistryError> {
        let records: Vec<InstanceRecord> = self
            .store
            .list()
            .await?
            .into_iter()
            .filter(|r| r.service == service && r.instance == instance)
            .collect();
        Ok(merge_records(&records, now).into_iter().next())
    }

    /// Registers (or re-registers) an instance; refuses a new one beyond `max_instances`.
    pub async fn register(
        &self,
        registration: &Registration,
        now: i64,
    ) -> Result<(InstanceView, RegistryEvent), RegistryError> {
        registration.validate(&self.limits)?;
        let records = self.store.list().await?;
        let exists = records.iter().any(|r| {
            r.is_live(now)
                && r.source == InstanceSource::Registered
                && r.service == registration.service
                && r.instance == registration.instance
        });
        let registered = records
            .iter()
            .filter(|r| r.is_live(now) && r.source == InstanceSource::Registered)
            .count();
        if !exists && registered >= self.limits.max_instances {
            return Err(RegistryError::Full(format!(
                "the registry holds {registered} registered instances, its limit (--registry-max-instances)"
            )));
        }
        let kind = self
            .store
            .put(&registration.record(&self.limits, now))
            .await?;
        let view = self
            .view_of(&registration.service, &registration.instance, now)
            .await?
            .ok_or_else(|| {
                RegistryError::NotFound("the registration lapsed as it was written".into())
            })?;
        let action = match kind {
            PutKind::Created => RegistryAction::Registered,
            PutKind::Updated => RegistryAction::Updated,
        };
        let record = registration.record(&self.limits, now);
        let event = RegistryEvent::new(action, &record, Some(&view), now);
        self.publish(std::slice::from_ref(&event)).await;
        Ok((view, event))
    }

    /// Renews a registered instance's lease; 404 when it is not registered or its lease ran out.
    pub async fn heartbeat(
        &self,
        service: &str,
        instance: &str,
        now: i64,
    ) -> Result<InstanceView, RegistryError> {
        self.store
            .renew(service, instance, InstanceSource::Registered, now)
            .await?
            .ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "no live registration of {service}/{instance}: register it again"
                ))
            })?;
        self.view_of(service, instance, now)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("{service}/{instance} lapsed")))
    }

    /// Removes a registration (what OTLP says about the instance stays).
    pub async fn deregister(
        &self,
        service: &str,
        instance: &str,
        now: i64,
    ) -> Result<RegistryEvent, RegistryError> {
        let removed = self
            .store
            .remove(service, instance, InstanceSource::Registered)
            .await?
            .filter(|r| r.is_live(now))
            .ok_or_else(|| {
                RegistryError::NotFound(format!("no registration of {service}/{instance}"))
            })?;
        let current = self.view_of(service, instance, now).await?;
        let event = RegistryEvent::new(
            RegistryAction::Deregistered,
            &removed,
            current.as_ref(),
            now,
        );
        self.publish(std::slice::from_ref(&event)).await;
        Ok(event)
    }

    /// Every live instance, merged.
    pub async fn instances(&self, now: i64) -> Result<Vec<InstanceView>, RegistryError> {
        Ok(merge_records(&self.store.list().await?, now))
    }

    /// Removes lapsed records (leases without heartbeat, OTLP sightings past retention) and says so.
    pub async fn expire(&self, now: i64) -> Result<Vec<RegistryEvent>, RegistryError> {
        let removed = self.store.remove_expired(now).await?;
        if removed.is_empty() {
            return Ok(Vec::new());
        }
        let remaining = merge_records(&self.store.list().await?, now);
        let events: Vec<RegistryEvent> = removed
            .iter()
            .map(|record| {
                let current = remaining
                    .iter()
                    .find(|v| v.service == record.service && v.instance == record.instance);
                let action = match record.source {
                    InstanceSource::Registered => RegistryAction::Expired,
                    _ => RegistryAction::Forgotten,
                };
                RegistryEvent::new(action, record, current, now)
            })
            .collect();
        self.publish(&events).await;
        Ok(events)
    }

    /// Records OTLP sightings, writing only those this process has not written within
    /// `otlp_refresh_s`. Returns `discovered` events for instances new to the registry.
    pub async fn observe(
        &self,
        sightings: impl IntoIterator<Item = Sighting>,
        now: i64,
    ) -> Result<Vec<RegistryEvent>, RegistryError> {
        let due: Vec<Sighting> = {
            let Ok(mut written) = self.written.lock() else {
                return Ok(Vec::new());
            };
            if written.len() > MAX_CACHED_SIGHTINGS {
                written.clear();
            }
            let mut due = Vec::new();
            let mut seen_here = BTreeSet::new();
            for sighting in sightings {
                let key = (sighting.service.clone(), sighting.instance.clone());
                if !seen_here.insert(key.clone()) {
                    continue;
                }
                let fresh = written
                    .get(&key)
                    .is_some_and(|at| now - at < self.limits.otlp_refresh_s);
                if !fresh {
                    written.insert(key, now);
                    due.push(sighting);
                }
            }
            due
        };
        let mut events = Vec::new();
        for sighting in due {
            let record = InstanceRecord {
                service: sighting.service,
                instance: sighting.instance,
                source: InstanceSource::Otlp,
                version: sighting.version,
                host: sighting.host,
                metadata: sighting.sdk,
                health_url: None,
                metrics_url: None,
                first_seen: now,
                last_seen: now,
                lease_ttl_s: None,
                expires_at: now.saturating_add(self.limits.otlp_retention_s),
            };
            match self.store.put(&record).await {
                Ok(PutKind::Created) => {
                    let view = self.view_of(&record.service, &record.instance, now).await?;
                    events.push(RegistryEvent::new(
                        RegistryAction::Discovered,
                        &record,
                        view.as_ref(),
                        now,
                    ));
                }
                Ok(PutKind::Updated) => {}
                Err(e) => {
                    self.publish(&events).await;
                    // Written again on a later sighting.
                    if let Ok(mut written) = self.written.lock() {
                        written.remove(&(record.service.clone(), record.instance.clone()));
                    }
                    return Err(e.into());
                }
            }
        }
        self.publish(&events).await;
        Ok(events)
    }

    /// Records a successful scrape of an instance's `metrics_url` (source `scraped`), live for
    /// `ttl_s` (three scrape intervals: a target no longer scraped lapses and is `forgotten`).
    /// Returns a `discovered` event when the record is new.
    pub async fn scraped(
        &self,
        service: &str,
        instance: &str,
        metrics_url: &str,
        ttl_s: i64,
        now: i64,
    ) -> Result<Option<RegistryEvent>, RegistryError> {
        let record = InstanceRecord {
            service: service.to_string(),
            instance: instance.to_string(),
            source: InstanceSource::Scraped,
            version: None,
            host: None,
            metadata: BTreeMap::new(),
            health_url: None,
            metrics_url: Some(metrics_url.to_string()),
            first_seen: now,
            last_seen: now,
            lease_ttl_s: None,
            expires_at: now.saturating_add(ttl_s.max(1)),
        };
        if self.store.put(&record).await? != PutKind::Created {
            return Ok(None);
        }
        let view = self.view_of(service, instance, now).await?;
        let event = RegistryEvent::new(RegistryAction::Discovered, &record, view.as_ref(), now);
        self.publish(std::slice::from_ref(&event)).await;
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(json: &str) -> Result<Registration, RegistryError> {
        Registration::parse(json.as_bytes(), &RegistryLimits::default())
    }

    #[test]
    fn a_registration_is_validated() {
        assert!(registration(r#"{"service":"api","instance":"a1"}"#).is_ok());
        let refused = [
            r#"{"service":"","instance":"a1"}"#,
            r#"{"service":"api"}"#,
            r#"{"service":"api","instance":"a1","lease_seconds":0}"#,
            r#"{"service":"api","instance":"a1","lease_seconds":3601}"#,
            r#"{"service":"api","instance":"a1","health_url":"ftp://x/"}"#,
            r#"{"service":"api","instance":"a1","health_url":"/healthz"}"#,
            r#"{"service":"api","instance":"a1","unknown":1}"#,
            r#"{"service":"a\u0000","instance":"a1"}"#,
        ];
        for body in refused {
            assert!(
                matches!(registration(body), Err(RegistryError::Invalid(_))),
                "{body} must be refused"
            );
        }
        let big = format!(
            r#"{{"service":"api","instance":"a1","metadata":{{"k":"{}"}}}}"#,
            "x".repeat(4096)
        );
        assert!(matches!(registration(&big), Err(RegistryError::Invalid(_))));
    }

    fn record(source: InstanceSource, version: &str, expires_at: i64) -> InstanceRecord {
        InstanceRecord {
            service: "api".into(),
            instance: "a1".into(),
            source,
            version: Some(version.into()),
            host: None,
            metadata: BTreeMap::new(),
            health_url: None,
            metrics_url: None,
            first_seen: 10,
            last_seen: 20,
            lease_ttl_s: (source == InstanceSource::Registered).then_some(30),
            expires_at,
        }
    }

    #[test]
    fn records_of_one_instance_merge_with_the_registration_first() {
        let records = [
            record(InstanceSource::Otlp, "2.0", 1000),
            record(InstanceSource::Registered, "1.0", 50),
        ];
        let views = merge_records(&records, 40);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].version.as_deref(), Some("1.0"));
        assert_eq!(
            views[0].sources,
            vec![InstanceSource::Otlp, InstanceSource::Registered]
        );
        assert_eq!(views[0].lease.as_ref().map(|l| l.expires_at), Some(50));
        // After the lease: only what OTLP said.
        let views = merge_records(&records, 50);
        assert_eq!(views[0].version.as_deref(), Some("2.0"));
        assert_eq!(views[0].lease, None);
    }
}
