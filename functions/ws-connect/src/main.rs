//! WebSocket `$connect`: checks `?token=` (an API key, or a token from `POST /api/token` with the
//! `read` scope) and records the connection.
//!
//! Env: `CONNECTIONS_TABLE`, `API_KEYS_PARAMETER` (SSM) or `API_KEY_HASHES`, `ADMIN_KEY_HASHES`;
//! `TOKEN_SECRET_PARAMETER` (SSM) or `TOKEN_SECRET` for tokens.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use flowscope_core::aws::lambda::{keys, websocket};
use flowscope_core::aws::{config, DynamoConnections};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    // Keys or short-lived tokens (with the `read` scope) in `?token=`.
    let auth = keys::load_authenticator(&config).await?;
    let connections = DynamoConnections::from_env(&config)?;
    let (connections, auth) = (&connections, &auth);
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            websocket::handle_connect_with(connections, auth, &event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
