//! Kinesis batches in (event source mapping with ReportBatchItemFailures): fold points into buckets
//! in DynamoDB exactly once, set poison records aside, answer with the lowest failed sequence number.
//!
//! Metric points become buckets; spans become RED metrics, service-graph edges and sampled traces.
//!
//! Env: `BUCKETS_TABLE`, `SERIES_TABLE`, `STATE_TABLE`, `TRACES_TABLE`, `POISON_QUEUE_URL` (optional).

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use flowscope_core::aws::lambda::kinesis::handle_kinesis_event;
use flowscope_core::aws::lambda::poison::PoisonQueue;
use flowscope_core::aws::{config, DynamoStore, DynamoTraceStore, TableNames};
use flowscope_core::model::Retention;
use flowscope_core::pipeline::ShardProcessor;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let tables = TableNames::from_env();
    let store = Arc::new(DynamoStore::new(&config, tables.clone()));
    let traces = Arc::new(DynamoTraceStore::new(&config, tables.traces));
    let aggregator = ShardProcessor::new(store, traces, Retention::default());
    let poison = std::env::var("POISON_QUEUE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| PoisonQueue::new(&config, url));
    let (aggregator, poison) = (&aggregator, poison.as_ref());
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            handle_kinesis_event(aggregator, poison, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
