//! The service registry in local mode: the redb registry store, the lease sweep, live `registry`
//! events to WebSocket clients, and the health-probe loop whose results go through the same
//! `Ingest` as pushed OTLP (so `flowscope.probe.up` / `flowscope.probe.duration` are ordinary series).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use flowscope_core::ingest::Ingest;
use flowscope_core::live::{Fanout, FanoutEvents};

use flowscope_core::ports::{
    AlertStore, ConnectionPusher, ConnectionStore, MetricStore, StreamSink,
};
use flowscope_core::probing::{self as probe, Prober};
use flowscope_core::registry::probe::ProbeSettings;
use flowscope_core::registry::score::ScoreSettings;
use flowscope_core::registry::{Registry, RegistryLimits};
use tokio::sync::broadcast::error::RecvError;

use super::unix_now;

/// How often lapsed leases are removed (and `expired` events sent). A lapsed lease is left out of
/// every listing at once; the sweep only deletes it and says so.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Flags of the registry and its health probes (README `## Limits`).
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// How often every registered instance with a health URL is probed (e.g. 30s, 1m).
    #[arg(long, env = "FLOWSCOPE_PROBE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub probe_interval: Duration,
    /// Longest wait for a health endpoint's response head; no answer in time counts as down.
    #[arg(long, env = "FLOWSCOPE_PROBE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// The status that counts as healthy (default: any 2xx).
    #[arg(long, env = "FLOWSCOPE_PROBE_EXPECTED_STATUS",
          value_parser = clap::value_parser!(u16).range(100..=599))]
    pub probe_expected_status: Option<u16>,
    /// Health probes in flight at once.
    #[arg(long, env = "FLOWSCOPE_PROBE_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub probe_concurrency: u64,
    /// Registered instances the registry holds; more registrations are refused with 507.
    #[arg(long, env = "FLOWSCOPE_REGISTRY_MAX_INSTANCES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub registry_max_instances: u64,
    /// Longest lease a registration may take (e.g. 1h).
    #[arg(long, env = "FLOWSCOPE_REGISTRY_MAX_LEASE", default_value = "1h", value_parser = parse_duration)]
    pub registry_max_lease: Duration,
    /// The lease of a registration that names none.
    #[arg(long, env = "FLOWSCOPE_REGISTRY_DEFAULT_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub registry_default_lease: Duration,
    /// Bytes of metadata (keys + values) one registration may carry.
    #[arg(long, env = "FLOWSCOPE_REGISTRY_MAX_METADATA_BYTES", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    pub registry_max_metadata_bytes: u64,
    /// How long an instance seen only in OTLP resource attributes stays listed after its last sighting.
    #[arg(long, env = "FLOWSCOPE_REGISTRY_OTLP_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub registry_otlp_retention: Duration,
    /// How often an instance registered with a `metrics_url` is scraped (docs/registry.md).
    #[arg(long, env = "FLOWSCOPE_REGISTRY_SCRAPE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub registry_scrape_interval: Duration,
    /// How often every service's health score is computed, pushed and stored (docs/health-score.md).
    #[arg(long, env = "FLOWSCOPE_HEALTH_SCORE_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub health_score_interval: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration {text:?} ({e}): write a number with a unit, like 500ms, 30s or 1m"
        )
    })?;
    if duration < Duration::from_millis(100) {
        return Err(format!("duration {text:?} is shorter than 100ms"));
    }
    Ok(duration)
}

fn whole_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs().max(1)).unwrap_or(i64::MAX)
}

impl RegistryArgs {
    pub fn limits(&self) -> anyhow::Result<RegistryLimits> {
        let limits = RegistryLimits {
            max_instances: usize::try_from(self.registry_max_instances)?,
            max_lease_s: whole_seconds(self.registry_max_lease),
            default_lease_s: whole_seconds(self.registry_default_lease),
            max_metadata_bytes: usize::try_from(self.registry_max_metadata_bytes)?,
            otlp_retention_s: whole_seconds(self.registry_otlp_retention),
            ..RegistryLimits::default()
        };
        anyhow::ensure!(
            limits.default_lease_s <= limits.max_lease_s,
            "--registry-default-lease is longer than --registry-max-lease"
        );
        Ok(limits)
    }

    pub fn probe_settings(&self) -> ProbeSettings {
        ProbeSettings {
            interval: self.probe_interval,
            timeout: self.probe_timeout,
            expected_status: self.probe_expected_status,
            concurrency: usize::try_from(self.probe_concurrency).unwrap_or(16),
            max_targets: usize::try_from(self.registry_max_instances).unwrap_or(usize::MAX),
        }
    }
}

/// Opens the registry's redb file in the data directory; the signal resolves once it is closed.
pub fn open(
    args: &super::LocalArgs,
) -> anyhow::Result<(Arc<Registry>, flowscope_core::embedded::Released)> {
    let path = args.data_dir.join("registry.redb");
    let store = flowscope_core::embedded::RedbRegistryStore::open(&path)
        .with_context(|| format!("opening the registry store {}", path.display()))?;
    let released = store.released();
    Ok((
        Arc::new(Registry::new(Arc::new(store), args.registry.limits()?)),
        released,
    ))
}

/// Removes lapsed leases every [`SWEEP_INTERVAL`] (their `expired` events go out through
/// [`push_loop`]).
pub async fn sweep_loop(registry: Arc<Registry>) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match registry.expire(unix_now()).await {
            Ok(events) => {
                for event in events {
                    tracing::info!(service = %event.service, instance = %event.instance, action = ?event.action, "registry lease lapsed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "registry expiry failed"),
        }
    }
}

/// Sends every registry change as a `registry` event to the clients subscribed to its service, the
/// way alert events go out.
pub async fn push_loop(
    registry: Arc<Registry>,
    connections: Arc<dyn ConnectionStore>,
    pusher: Arc<dyn ConnectionPusher>,
) {
    let mut events = registry.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "live registry events were dropped (too many at once)"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let fanout = Fanout::new(connections.as_ref(), pusher.as_ref());
        if let Err(e) = fanout
            .deliver_event(Some(&event.service), Bytes::from(event.to_json()))
            .await
        {
            tracing::warn!(error = %e, "pushing a registry event failed");
        }
    }
}

/// Probes every instance with a health URL each interval and ingests the results as OTLP metrics.
pub async fn probe_loop(
    registry: Arc<Registry>,
    ingest: Arc<Ingest<dyn StreamSink>>,
    settings: ProbeSettings,
) {
    let prober = match Prober::new(settings) {
        Ok(prober) => prober,
        Err(reason) => {
            tracing::error!(%reason, "health probes are off: no HTTP client");
            return;
        }
    };
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match probe::probe_round(&registry, &prober, ingest.as_ref(), unix_now()).await {
            Ok(report) => super::metrics::events().probe_round(report.probed, report.up),
            Err(e) => tracing::warn!(error = %e, "listing instances to probe failed"),
        }
    }
}

/// Computes every service's health score each `interval` (`--health-score-interval`), pushes it
/// as a live `health` event, stores it as the `flowscope.health.score` series (through `Ingest`)
/// and keeps the latest for `GET /api/services` (the core's [`probe::health_round`], as the AWS
/// probe function runs it).
pub async fn health_loop(
    registry: Arc<Registry>,
    ports: Ports,
    settings: ScoreSettings,
    interval: Duration,
) {
    let Ports {
        ingest,
        metrics,
        alerts,
        connections,
        pusher,
    } = ports;
    let live = FanoutEvents {
        connections,
        pusher,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ports = probe::HealthPorts {
            registry: &registry,
            metrics: metrics.as_ref(),
            alerts: alerts.as_ref(),
            ingest: ingest.as_ref(),
            live: &live,
        };
        if let Err(e) = probe::health_round(&ports, &settings, unix_now(), now_nanos()).await {
            tracing::warn!(error = %e, "listing services to score failed");
        }
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The ports the registry's loops read and write.
pub struct Ports {
    pub ingest: Arc<Ingest<dyn StreamSink>>,
    pub metrics: Arc<dyn MetricStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub pusher: Arc<dyn ConnectionPusher>,
}

/// Starts the sweep, the live-event push, the probe loop and the health scores.
pub fn spawn_all(
    registry: &Arc<Registry>,
    ports: Ports,
    settings: ProbeSettings,
    health_interval: Duration,
    stopped: &tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
) {
    tasks.spawn(super::until_stopped(
        stopped.clone(),
        sweep_loop(registry.clone()),
    ));
    tasks.spawn(super::until_stopped(
        stopped.clone(),
        push_loop(
            registry.clone(),
            ports.connections.clone(),
            ports.pusher.clone(),
        ),
    ));
    tasks.spawn(super::until_stopped(
        stopped.clone(),
        probe_loop(registry.clone(), ports.ingest.clone(), settings),
    ));
    let score_settings = ScoreSettings {
        probe_timeout_s: settings.timeout.as_secs_f64(),
        ..ScoreSettings::default()
    };
    tasks.spawn(super::until_stopped(
        stopped.clone(),
        health_loop(registry.clone(), ports, score_settings, health_interval),
    ));
}
