//! Kinesis batches in (event source mapping with ReportBatchItemFailures): fold points into buckets
//! in DynamoDB exactly once, set poison records aside, answer with the lowest failed sequence number.
//!
//! Env: `BUCKETS_TABLE`, `SERIES_TABLE`, `STATE_TABLE`, `POISON_QUEUE_URL` (optional).

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::aws::lambda::kinesis::handle_kinesis_event;
use flowscope_core::aws::lambda::poison::PoisonQueue;
use flowscope_core::aws::{config, DynamoStore, TableNames};
use flowscope_core::model::Retention;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let store = Arc::new(DynamoStore::new(&config, TableNames::from_env()));
    let aggregator = Aggregator::new(store, Retention::default());
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
