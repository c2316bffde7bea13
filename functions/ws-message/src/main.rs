//! WebSocket messages (`subscribe`, `ping`, anything else): update the subscription, reply to the
//! sender through `PostToConnection` — a subscribe with the snapshot (or catch-up) read from the
//! buckets and series tables.
//!
//! Env: `CONNECTIONS_TABLE`, `WS_MANAGEMENT_ENDPOINT`, `BUCKETS_TABLE`, `SERIES_TABLE`,
//! `SNAPSHOT_MAX_SERIES` (optional, default 1000).

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use flowscope_core::aws::lambda::snapshot::SnapshotConfig;
use flowscope_core::aws::lambda::websocket;
use flowscope_core::aws::{config, ApiGatewayPusher, DynamoConnections, DynamoStore, TableNames};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let connections = DynamoConnections::from_env(&config)?;
    let pusher = ApiGatewayPusher::from_env(&config)?;
    let store = DynamoStore::new(&config, TableNames::from_env());
    let snapshot = SnapshotConfig::from_env()?;
    let (connections, pusher, store, snapshot) = (&connections, &pusher, &store, &snapshot);
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            websocket::handle_message(connections, pusher, store, snapshot, &event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
