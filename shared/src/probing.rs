//! Probe rounds (issue 13 item 2): every live instance in the registry with a health URL is asked
//! with a GET, and the results go through [`Ingest`] as ordinary series
//! ([`crate::registry::probe::probe_request`]). Local mode's probe loop and the scheduled probe
//! function both run [`probe_round`]/[`probe_rounds`]. Above `ingest` in the layers (the registry
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
use crate::ports::StreamSink;
use crate::registry::probe::{probe_request, ProbeResult, ProbeSettings, ProbeTarget};
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
