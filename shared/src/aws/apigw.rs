//! Pushing to WebSocket clients through API Gateway's `@connections` management API.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_apigatewaymanagement::config::{ConfigBag, Intercept, RuntimeComponents};
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
        Self::with_api_key(config, endpoint, None)
    }

    /// A pusher that also sends `x-api-key: <key>` on every call: local mode's `@connections`
    /// requires the `--token` credential (on AWS the endpoint is IAM-protected and this is `None`).
    pub fn with_api_key(config: &SdkConfig, endpoint: &str, api_key: Option<&str>) -> Self {
        let mut builder = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint.trim_end_matches('/'));
        if let Some(key) = api_key.filter(|k| !k.is_empty()) {
            builder = builder.interceptor(ApiKeyHeader(key.to_string()));
        }
        ApiGatewayPusher {
            client: Client::from_conf(builder.build()),
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

/// Adds `x-api-key` to each request, before SigV4 signing (which leaves the header alone).
struct ApiKeyHeader(String);

impl std::fmt::Debug for ApiKeyHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyHeader(<redacted>)")
    }
}

impl Intercept for ApiKeyHeader {
    fn name(&self) -> &'static str {
        "ApiKeyHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-api-key", self.0.clone());
        Ok(())
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
