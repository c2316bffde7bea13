//! Kinesis batches in (event source mapping with ReportBatchItemFailures): fold points into buckets
//! in DynamoDB exactly once, set poison records aside, answer with the lowest failed sequence number.
//!
//! Metric points become buckets; spans become RED metrics, service-graph edges and sampled traces.
//!
//! Kept traces' `trace` events go to the live table, whose stream feeds the fan-out function.
//!
//! Env: `BUCKETS_TABLE`, `SERIES_TABLE`, `STATE_TABLE`, `TRACES_TABLE`, `LIVE_TABLE` (optional: without
//! it no `trace` events), `POISON_QUEUE_URL` (optional).

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use flowscope_core::aws::lambda::kinesis::handle_kinesis_event_with_live;
use flowscope_core::aws::lambda::poison::PoisonQueue;
use flowscope_core::aws::{config, DynamoLiveEvents, DynamoStore, DynamoTraceStore, TableNames};
use flowscope_core::model::Retention;
use flowscope_core::pipeline::ShardProcessor;
use flowscope_core::telemetry::emf;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let tables = TableNames::from_env();
    let store = Arc::new(DynamoStore::new(&config, tables.clone()));
    let traces = Arc::new(DynamoTraceStore::new(&config, tables.traces.clone()));
    let live = Some(tables.live.clone())
        .filter(|table| !table.is_empty())
        .map(|table| DynamoLiveEvents::new(&config, table));
    let aggregator = ShardProcessor::new(store, traces, Retention::default());
    let poison = std::env::var("POISON_QUEUE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| PoisonQueue::new(&config, url));
    let (aggregator, poison, live) = (&aggregator, poison.as_ref(), live.as_ref());
    let function = &emf::function_name("aggregator");
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            let started = std::time::Instant::now();
            let records = event.payload.records.len();
            let result = handle_kinesis_event_with_live(aggregator, poison, live, event.payload)
                .await
                .map_err(Error::from);
            // One CloudWatch EMF line per batch: its size, the records to redeliver, its duration.
            let failed = result
                .as_ref()
                .map_or(records, |r| r.batch_item_failures.len());
            emf::aggregator_line(
                function,
                emf::now_ms(),
                records,
                failed,
                started.elapsed().as_secs_f64(),
            )
            .emit();
            result
        },
    ))
    .await
}
