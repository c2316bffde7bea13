//! Scheduled (EventBridge, every minute): probe every registered instance's health URL twice, 30 s
//! apart (the scheduler's finest rate is one minute), and write the results into Kinesis through the
//! same `Ingest` as pushed OTLP, so they take the exactly-once aggregation path (docs/registry.md).
//!
//! Env: `REGISTRY_TABLE`, `STREAM_NAME`; optional `PROBE_TIMEOUT_SECONDS` (5), `PROBE_CONCURRENCY`
//! (16), `PROBE_EXPECTED_STATUS` (any 2xx).

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use flowscope_core::aws::lambda::{now_unix_s, required_env};
use flowscope_core::aws::{config, DynamoRegistryStore, KinesisStream};
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::ports::StreamSink;
use flowscope_core::probing::{probe_rounds, Prober};
use flowscope_core::registry::probe::ProbeSettings;
use flowscope_core::registry::{Registry, RegistryLimits};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

/// Two rounds per one-minute invocation: every instance is probed every 30 s.
const ROUNDS: u32 = 2;
const GAP: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let registry = Registry::new(
        Arc::new(DynamoRegistryStore::new(
            &config,
            required_env("REGISTRY_TABLE")?,
        )),
        RegistryLimits::default(),
    );
    let stream: Arc<dyn StreamSink> =
        Arc::new(KinesisStream::new(&config, required_env("STREAM_NAME")?));
    let ingest = Ingest::new(stream, IngestLimits::default());
    let prober = Prober::new(ProbeSettings::default().with_env(|k| std::env::var(k).ok())?)?;
    let (registry, ingest, prober) = (&registry, &ingest, &prober);
    run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            for report in probe_rounds(registry, prober, ingest, ROUNDS, GAP, now_unix_s).await {
                lambda_runtime::tracing::info!(?report, "probe round");
                report?;
            }
            Ok::<(), Error>(())
        },
    ))
    .await
}
