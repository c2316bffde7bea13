//! Scheduled (EventBridge, every minute): scrape the Prometheus targets of `SCRAPE_CONFIG` for the
//! scrape slots of this minute and write their samples into Kinesis through the same receiver core
//! as the ingest function, so they take the exactly-once path of pushed OTLP.
//!
//! Besides the config's targets, every live instance of the service registry with a `metrics_url`
//! (read at each invocation when `REGISTRY_TABLE` is set) is a target of the job
//! `flowscope-registry`, with `job`/`instance` = its service and instance id, every
//! `REGISTRY_SCRAPE_INTERVAL_SECONDS` (default 30); one that answers is recorded in the registry with
//! the source `scraped` (live for three intervals, as in local mode), and a new one goes out as a
//! `registry` event through `LIVE_TABLE` (optional).
//!
//! Env: `SCRAPE_CONFIG` (the `prometheus.yml` text: `scrape_configs` with `static_configs` and
//! `http_sd_configs`; may be empty with `REGISTRY_TABLE`), `STREAM_NAME`, `STATE_TABLE` (slot ledger
//! and series limits); optional `REGISTRY_TABLE`, `REGISTRY_SCRAPE_INTERVAL_SECONDS`,
//! `MAX_ATTRIBUTES_PER_POINT`, `MAX_ATTRIBUTE_VALUE_BYTES`, `MAX_POINTS_PER_REQUEST` and the series
//! limits as on the ingest function. Scrape limits: the defaults of `ScrapeLimits`, lowered per job by
//! `sample_limit`, `label_limit`, `body_size_limit`… in the config.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use flowscope_core::aws::lambda::{now_unix_s, required_env};
use flowscope_core::aws::{
    config, DynamoLiveEvents, DynamoRegistryStore, DynamoSeriesAdmission, KinesisStream,
};
use flowscope_core::cardinality::SeriesLimits;
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::ports::StreamSink;
use flowscope_core::registry::{Registry, RegistryLimits};
use flowscope_core::scrape::client::Scraper;
use flowscope_core::scrape::config::ScrapeLimits;
use flowscope_core::scrape::dynamo::DynamoSlotLedger;
use flowscope_core::scrape::registry_source::{
    record_scraped, registry_job, with_job, RegistryScrape,
};
use flowscope_core::scrape::scheduled::{config_from_env_text, run_invocation};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = config::load().await;
    let registry = match std::env::var("REGISTRY_TABLE") {
        Ok(table) if !table.trim().is_empty() => {
            let registry = Registry::new(
                Arc::new(DynamoRegistryStore::new(&sdk, table)),
                RegistryLimits::default(),
            );
            // A newly scraped instance goes out as a live `registry` event (live table → fan-out).
            Some(match std::env::var("LIVE_TABLE") {
                Ok(live) if !live.trim().is_empty() => {
                    registry.with_live_events(Arc::new(DynamoLiveEvents::new(&sdk, live)))
                }
                _ => registry,
            })
        }
        _ => None,
    };
    let config_text = match (std::env::var("SCRAPE_CONFIG"), &registry) {
        (Ok(text), _) => text,
        (Err(_), Some(_)) => "scrape_configs: []\n".to_string(),
        (Err(_), None) => required_env("SCRAPE_CONFIG")?,
    };
    let scrape_config = config_from_env_text(&config_text, &ScrapeLimits::default())?;
    let registry_settings = RegistryScrape {
        interval: std::time::Duration::from_secs(
            match std::env::var("REGISTRY_SCRAPE_INTERVAL_SECONDS") {
                Ok(v) => v.trim().parse::<u64>().ok().filter(|s| *s > 0).ok_or(
                    "REGISTRY_SCRAPE_INTERVAL_SECONDS must be a whole number of seconds above 0",
                )?,
                Err(_) => 30,
            },
        ),
        ..RegistryScrape::default()
    };
    let state_table = required_env("STATE_TABLE")?;
    let stream: Arc<dyn StreamSink> =
        Arc::new(KinesisStream::new(&sdk, required_env("STREAM_NAME")?));
    let limits = IngestLimits::default().with_env(|name| std::env::var(name).ok())?;
    let admission =
        DynamoSeriesAdmission::new(&sdk, state_table.clone(), SeriesLimits::from_env()?);
    let ingest = Ingest::new(stream, limits).with_series_admission(Arc::new(admission));
    let ledger = DynamoSlotLedger::new(&sdk, state_table);
    let scraper = Scraper::new()?;
    let (scrape_config, ingest, ledger, scraper) = (&scrape_config, &ingest, &ledger, &scraper);
    let (registry, registry_settings) = (&registry, &registry_settings);
    run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            // The registry's targets of this minute (a registry that cannot be read leaves them out
            // of this run only: the config's targets are still scraped).
            let config = match registry {
                Some(registry) => {
                    match registry_job(registry, registry_settings, now_unix_s()).await {
                        Ok(job) => with_job(scrape_config, job),
                        Err(error) => {
                            lambda_runtime::tracing::warn!(%error, "reading the registry failed; its targets are not scraped this minute");
                            scrape_config.clone()
                        }
                    }
                }
                None => scrape_config.clone(),
            };
            let report = run_invocation(
                &config,
                scraper,
                ingest,
                ledger,
                now_unix_s(),
                |slot| async move {
                    let wait = slot.saturating_sub(now_unix_s()).max(0) as u64;
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                },
            )
            .await;
            // Registry targets that answered get the source `scraped` (as in local mode).
            if let Some(registry) = registry {
                record_scraped(registry, &report.scraped_instances, now_unix_s()).await;
            }
            lambda_runtime::tracing::info!(?report, "scraped");
            if report.failed.is_empty() {
                Ok::<(), Error>(())
            } else {
                // Failed so that Lambda retries: the slots already written are in the ledger.
                Err(format!(
                    "points of {} targets refused: {:?}",
                    report.failed.len(),
                    report.failed
                )
                .into())
            }
        },
    ))
    .await
}
