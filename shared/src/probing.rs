//! Probe rounds (issue 13 item 2): every live instance in the registry with a health URL is asked
//! with a GET, and the results go through [`Ingest`] as ordinary series
//! ([`crate::registry::probe::probe_request`]). Local mode's probe loop and the scheduled probe
//! function both run [`probe_round`]/[`probe_rounds`], and after them [`health_round`] (the
//! health scores, their series and live `health` events). Above `ingest` in the layers (the registry
//! itself stays below it, so the receiver can record OTLP sightings).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Empty;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;

use serde::Serialize;

use crate::alerts::webhook::{self, SinkConnector};
use crate::ingest::Ingest;
use std::collections::BTreeSet;

use crate::ports::{AlertStore, LiveEvent, LiveEventSink, MetricStore, StoreError, StreamSink};
use crate::registry::probe::{probe_request, ProbeResult, ProbeSettings, ProbeTarget};
use crate::registry::score::{self, ScoreSettings};
use crate::registry::{Registry, RegistryError};

/// What one round of probes did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeRoundReport {
    pub probed: usize,
    pub up: usize,
    /// The receiver's status for the results (200 when kept; 0 when nothing was probed).
    pub ingest_status: u16,
}

/// One round: every live instance with a health URL is probed and the results go to `ingest`
/// as one OTLP metrics request — locally into the embedded stream, on AWS into Kinesis, so they
/// take the exactly-once path of pushed data. Local mode's probe loop and the scheduled probe
/// function both run this.
pub async fn probe_round<S: StreamSink + ?Sized>(
    registry: &Registry,
    prober: &Prober,
    ingest: &Ingest<S>,
    now: i64,
) -> Result<ProbeRoundReport, RegistryError> {
    let targets = ProbeTarget::of(&registry.instances(now).await?);
    if targets.is_empty() {
        return Ok(ProbeRoundReport::default());
    }
    let results = prober.probe_all(targets).await;
    for result in results.iter().filter(|r| !r.up) {
        tracing::debug!(service = %result.target.service, instance = %result.target.instance, error = ?result.error, "health probe failed");
    }
    let response = ingest.handle_metrics(&probe_request(&results)).await;
    if response.status != 200 {
        tracing::warn!(
            status = response.status,
            "the receiver refused health probe results"
        );
    }
    Ok(ProbeRoundReport {
        probed: results.len(),
        up: results.iter().filter(|r| r.up).count(),
        ingest_status: response.status,
    })
}

/// `rounds` rounds, `gap` apart (from start to start): the scheduled function runs two, 30 s
/// apart, because EventBridge Scheduler cannot run more often than once a minute.
pub async fn probe_rounds<S: StreamSink + ?Sized>(
    registry: &Registry,
    prober: &Prober,
    ingest: &Ingest<S>,
    rounds: u32,
    gap: Duration,
    now: impl Fn() -> i64,
) -> Vec<Result<ProbeRoundReport, RegistryError>> {
    let mut reports = Vec::new();
    for round in 0..rounds {
        let started = tokio::time::Instant::now();
        reports.push(probe_round(registry, prober, ingest, now()).await);
        if round + 1 < rounds {
            tokio::time::sleep_until(started + gap).await;
        }
    }
    reports
}

/// Probes health URLs over the alert sinks' HTTP(S) client (hyper + rustls with ring).
pub struct Prober {
    client: Client<SinkConnector, Empty<Bytes>>,
    settings: ProbeSettings,
}

impl Prober {
    pub fn new(settings: ProbeSettings) -> Result<Prober, String> {
        Ok(Prober {
            client: webhook::client()?,
            settings,
        })
    }

    pub fn settings(&self) -> ProbeSettings {
        self.settings
    }

    /// Probes every target, at most `concurrency` at once; results in no particular order.
    pub async fn probe_all(&self, targets: Vec<ProbeTarget>) -> Vec<ProbeResult> {
        futures::stream::iter(targets.into_iter().take(self.settings.max_targets))
            .map(|target| self.probe(target))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await
    }

    pub async fn probe(&self, target: ProbeTarget) -> ProbeResult {
        let at_unix_nano = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let started = Instant::now();
        let outcome = self.request(&target.url).await;
        let duration = match &outcome {
            Err(ProbeFailure::Timeout) => self.settings.timeout,
            _ => started.elapsed(),
        };
        let (up, status, error) = match outcome {
            Ok(status) if self.settings.healthy(status) => (true, Some(status), None),
            Ok(status) => (false, Some(status), Some(format!("status {status}"))),
            Err(ProbeFailure::Timeout) => (
                false,
                None,
                Some(format!("no response within {:?}", self.settings.timeout)),
            ),
            Err(ProbeFailure::Other(reason)) => (false, None, Some(reason)),
        };
        ProbeResult {
            target,
            up,
            duration,
            status,
            error,
            at_unix_nano,
        }
    }

    async fn request(&self, url: &str) -> Result<u16, ProbeFailure> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header("user-agent", "flowscope-probe")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeFailure::Other(format!("invalid request: {e}")))?;
        // The head only: the body is dropped unread with the response (the connection closes).
        let response = tokio::time::timeout(self.settings.timeout, self.client.request(request))
            .await
            .map_err(|_| ProbeFailure::Timeout)?
            .map_err(|e| ProbeFailure::Other(describe(&e)))?;
        Ok(response.status().as_u16())
    }
}

enum ProbeFailure {
    Timeout,
    Other(String),
}

fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// What one health round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealthRoundReport {
    /// Services scored (known or unknown score).
    pub services: usize,
    /// Services with a known score (each one a `flowscope.health.score` point).
    pub scored: usize,
    /// `health` events handed to the live sink (0 when it failed).
    pub events: usize,
    /// The receiver's status for the score series (200 when kept; 0 when nothing was known).
    pub ingest_status: u16,
}

/// What a health round reads and writes: the registry (its instances' services are scored even
/// before they send telemetry; it keeps the latest scores for `GET /api/services`), the metric
/// store (series catalog and buckets: probe results, telemetry freshness), the alert store
/// (firing alerts), the receiver for the score series, and the live sink for `health` events.
pub struct HealthPorts<'a, S: StreamSink + ?Sized> {
    pub registry: &'a Registry,
    pub metrics: &'a dyn MetricStore,
    pub alerts: &'a dyn AlertStore,
    pub ingest: &'a Ingest<S>,
    pub live: &'a dyn LiveEventSink,
}

/// One health round (docs/health-score.md): every service of the metric store and the registry is
/// scored, the scores are kept in the registry, pushed as live `health` events and written as the
/// `flowscope.health.score` series through `ingest` (locally the embedded stream, on AWS Kinesis:
/// the exactly-once path). Local mode's health loop and the scheduled probe function run this.
/// A service whose inputs cannot be read is left out of this round; only a failure to list the
/// services fails the round.
pub async fn health_round<S: StreamSink + ?Sized>(
    ports: &HealthPorts<'_, S>,
    settings: &ScoreSettings,
    now: i64,
    now_unix_nano: u64,
) -> Result<HealthRoundReport, StoreError> {
    let mut services: BTreeSet<String> = ports.metrics.list_services().await?.into_iter().collect();
    match ports.registry.instances(now).await {
        Ok(instances) => services.extend(instances.into_iter().map(|i| i.service)),
        Err(e) => tracing::warn!(error = %e, "listing registered services to score failed"),
    }
    let states = score::alert_states(ports.alerts).await;
    let mut scores = Vec::with_capacity(services.len());
    for service in services {
        match score::gather(ports.metrics, &states, &service, now).await {
            Ok(inputs) => {
                let health = score::score(&inputs, settings, now);
                scores.push((service, health));
            }
            Err(e) => tracing::warn!(%service, error = %e, "reading health inputs failed"),
        }
    }
    ports.registry.set_health(&scores);
    let mut report = HealthRoundReport {
        services: scores.len(),
        scored: scores.iter().filter(|(_, h)| h.score.is_some()).count(),
        ..HealthRoundReport::default()
    };
    let events: Vec<LiveEvent> = scores
        .iter()
        .map(|(service, health)| {
            LiveEvent::new(
                service.clone(),
                score::HealthEvent::new(service, health, now).to_json(),
            )
        })
        .collect();
    match ports.live.publish(&events).await {
        Ok(()) => report.events = events.len(),
        Err(e) => tracing::warn!(error = %e, "pushing health events failed"),
    }
    let request = score::score_request(&scores, now_unix_nano);
    if !request.resource_metrics.is_empty() {
        let response = ports.ingest.handle_metrics(&request).await;
        if response.status != 200 {
            tracing::warn!(
                status = response.status,
                "the receiver refused health scores"
            );
        }
        report.ingest_status = response.status;
    }
    Ok(report)
}

/// One round of the scheduled probe function: lapsed leases removed, the probes, then the health
/// scores.
#[derive(Debug)]
pub struct ScheduledRound {
    /// Records removed because their lease or retention lapsed (each one a `registry` event
    /// through the registry's live sink).
    pub expired: Result<usize, RegistryError>,
    pub probe: Result<ProbeRoundReport, RegistryError>,
    pub health: Result<HealthRoundReport, StoreError>,
}

/// The scheduled probe function's work (`functions/probe`): `rounds` rounds `gap` apart (start to
/// start), each [`Registry::expire`] (on AWS nothing else removes lapsed leases and says so: DynamoDB's
/// TTL deletes silently, and days late), then a [`probe_round`], then a [`health_round`] over the
/// same registry and receiver. The scores read the probe series the aggregator has applied so far, so a round's
/// score reflects the probes of the round before it (≤ 30 s old) — as local mode's health loop,
/// which runs on its own clock.
pub async fn probe_and_score_rounds<S: StreamSink + ?Sized>(
    ports: &HealthPorts<'_, S>,
    prober: &Prober,
    settings: &ScoreSettings,
    rounds: u32,
    gap: Duration,
    now: impl Fn() -> i64,
) -> Vec<ScheduledRound> {
    let mut out = Vec::new();
    for round in 0..rounds {
        let started = tokio::time::Instant::now();
        let expired = ports
            .registry
            .expire(now())
            .await
            .map(|events| events.len());
        let probe = probe_round(ports.registry, prober, ports.ingest, now()).await;
        let health = health_round(ports, settings, now(), unix_nanos()).await;
        out.push(ScheduledRound {
            expired,
            probe,
            health,
        });
        if round + 1 < rounds {
            tokio::time::sleep_until(started + gap).await;
        }
    }
    out
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
