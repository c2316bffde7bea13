//! WebSocket messages (`subscribe`, `ping`, anything else): update the subscription, reply to the
//! sender through `PostToConnection`.
//!
//! Env: `CONNECTIONS_TABLE`, `WS_MANAGEMENT_ENDPOINT`.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use flowscope_core::aws::lambda::websocket;
use flowscope_core::aws::{config, ApiGatewayPusher, DynamoConnections};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let connections = DynamoConnections::from_env(&config)?;
    let pusher = ApiGatewayPusher::from_env(&config)?;
    let (connections, pusher) = (&connections, &pusher);
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            websocket::handle_message(connections, pusher, &event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
