//! Pushing to WebSocket clients through API Gateway's `@connections` management API.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use bytes::Bytes;

use super::errors;
use crate::ports::{ConnectionPusher, PushError};

/// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`; the SDK appends
/// `/@connections/{id}`.
pub const ENDPOINT_VARIABLE: &str = "WS_MANAGEMENT_ENDPOINT";

pub struct ApiGatewayPusher {
    client: Client,
}

impl ApiGatewayPusher {
    /// A pusher for the WebSocket API stage at `endpoint`.
    pub fn new(config: &SdkConfig, endpoint: &str) -> Self {
        let client_config = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint.trim_end_matches('/'))
            .build();
        ApiGatewayPusher {
            client: Client::from_conf(client_config),
        }
    }

    /// A pusher for the endpoint in `WS_MANAGEMENT_ENDPOINT`.
    pub fn from_env(config: &SdkConfig) -> Result<Self, PushError> {
        let endpoint = std::env::var(ENDPOINT_VARIABLE)
            .ok()
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| PushError::Failed(format!("{ENDPOINT_VARIABLE} is not set")))?;
        Ok(Self::new(config, &endpoint))
    }
}

#[async_trait]
impl ConnectionPusher for ApiGatewayPusher {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), PushError> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(payload.to_vec()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                let gone = matches!(
                    error.as_service_error(),
                    Some(PostToConnectionError::GoneException(_))
                ) || error
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 410);
                if gone {
                    Err(PushError::Gone)
                } else {
                    Err(PushError::Failed(errors::describe(
                        "PostToConnection",
                        &error,
                    )))
                }
            }
        }
    }
}
