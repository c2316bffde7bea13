//! Scheduled (EventBridge, every minute): probe every registered instance's health URL twice, 30 s
//! apart (the scheduler's finest rate is one minute), and write the results into Kinesis through the
//! same `Ingest` as pushed OTLP, so they take the exactly-once aggregation path (docs/registry.md).
//! After each probe round, compute every service's health score (docs/health-score.md): the scores
//! go into Kinesis as the `flowscope.health.score` series and into the live table as `health`
//! events, which the fan-out function pushes to subscribed WebSocket clients (infra/README.md).
//! Each round first removes lapsed leases (`expired` / `forgotten` `registry` events, same path).
//!
//! Env: `REGISTRY_TABLE`, `STREAM_NAME`, `BUCKETS_TABLE`, `SERIES_TABLE`, `ALERTS_TABLE` (the
//! score's inputs), `LIVE_TABLE` (optional: without it no `health` events are sent); optional
//! `PROBE_TIMEOUT_SECONDS` (5), `PROBE_CONCURRENCY` (16), `PROBE_EXPECTED_STATUS` (any 2xx).

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use flowscope_core::aws::lambda::{now_unix_s, required_env};
use flowscope_core::aws::{
    config, DynamoAlertStore, DynamoLiveEvents, DynamoRegistryStore, DynamoStore, KinesisStream,
    TableNames,
};
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::ports::{LiveEventSink, NoLiveEvents, StreamSink};
use flowscope_core::probing::{probe_and_score_rounds, HealthPorts, Prober};
use flowscope_core::registry::probe::ProbeSettings;
use flowscope_core::registry::score::ScoreSettings;
use flowscope_core::registry::{Registry, RegistryLimits};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

/// Two rounds per one-minute invocation: every instance is probed every 30 s.
const ROUNDS: u32 = 2;
const GAP: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let live: Arc<dyn LiveEventSink> = match std::env::var("LIVE_TABLE") {
        Ok(table) if !table.trim().is_empty() => Arc::new(DynamoLiveEvents::new(&config, table)),
        _ => Arc::new(NoLiveEvents),
    };
    // Lapsed leases removed by each round go out as `registry` events through the live table.
    let registry = Registry::new(
        Arc::new(DynamoRegistryStore::new(
            &config,
            required_env("REGISTRY_TABLE")?,
        )),
        RegistryLimits::default(),
    )
    .with_live_events(live.clone());
    let stream: Arc<dyn StreamSink> =
        Arc::new(KinesisStream::new(&config, required_env("STREAM_NAME")?));
    let ingest = Ingest::new(stream, IngestLimits::default());
    let settings = ProbeSettings::default().with_env(|k| std::env::var(k).ok())?;
    let prober = Prober::new(settings)?;
    let tables = TableNames {
        buckets: required_env("BUCKETS_TABLE")?,
        series: required_env("SERIES_TABLE")?,
        alerts: required_env("ALERTS_TABLE")?,
        ..TableNames::default()
    };
    let metrics = DynamoStore::new(&config, tables.clone());
    let alerts = DynamoAlertStore::new(&config, tables.alerts.clone());
    let score = ScoreSettings {
        probe_timeout_s: settings.timeout.as_secs_f64(),
        ..ScoreSettings::default()
    };
    let ports = HealthPorts {
        registry: &registry,
        metrics: &metrics,
        alerts: &alerts,
        ingest: &ingest,
        live: live.as_ref(),
    };
    let (ports, prober, score) = (&ports, &prober, &score);
    run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            for round in probe_and_score_rounds(ports, prober, score, ROUNDS, GAP, now_unix_s).await
            {
                lambda_runtime::tracing::info!(expired = ?round.expired, probe = ?round.probe, health = ?round.health, "probe round");
                round.expired?;
                round.probe?;
                round.health?;
            }
            Ok::<(), Error>(())
        },
    ))
    .await
}
