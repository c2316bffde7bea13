//! DynamoDB Streams of the buckets table and of the live table in: push each changed 1-minute bucket
//! (`metrics_update`) and each kept trace's hops (`trace`) to the connections subscribed to their
//! services, one message of each kind per connection per invocation; forget connections gone (410).
//!
//! Env: `SERIES_TABLE`, `CONNECTIONS_TABLE`, `WS_MANAGEMENT_ENDPOINT`.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use aws_lambda_events::event::dynamodb::Event;
use flowscope_core::aws::lambda::streams::handle_bucket_stream;
use flowscope_core::aws::{config, ApiGatewayPusher, DynamoConnections, DynamoStore, TableNames};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let store = DynamoStore::new(&config, TableNames::from_env());
    let connections = DynamoConnections::from_env(&config)?;
    let pusher = ApiGatewayPusher::from_env(&config)?;
    let (store, connections, pusher) = (&store, &connections, &pusher);
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        handle_bucket_stream(store, connections, pusher, &event.payload)
            .await
            .map(|_report| ())
            .map_err(Error::from)
    }))
    .await
}
