//! Loading the SDK configuration once per process (per Lambda cold start).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_http_client::tls;

/// Region assumed by [`load_for_emulators`] when the environment names none.
pub const EMULATOR_REGION: &str = "us-east-1";

/// The standard configuration chain (environment, profile, container/instance credentials, and the
/// `AWS_ENDPOINT_URL*` overrides) with rustls on ring as the HTTP client: the SDK's default client
/// would pull in aws-lc, which roughly doubles build time and binary size.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(rustls_ring_client())
        .load()
        .await
}

/// Like [`load`], but for emulators (DynamoDB Local, kinesis-mock) that accept any credentials: falls
/// back to [`EMULATOR_REGION`] and to fixed dummy credentials when the environment gives none, instead
/// of probing the instance metadata service for minutes.
pub async fn load_for_emulators() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(rustls_ring_client())
        .region(Region::new(emulator_region()));
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && std::env::var_os("AWS_PROFILE").is_none()
    {
        // DynamoDB Local refuses access key ids with anything but letters and digits.
        loader = loader.credentials_provider(Credentials::new(
            "flowscopeemulator",
            "flowscopeemulator",
            None,
            None,
            "flowscope-emulator-fallback",
        ));
    }
    loader.load().await
}

/// True when `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `DYNAMODB`, `KINESIS`) points
/// the SDK somewhere else than AWS: emulator tests run only then, and never against a real account.
pub fn endpoint_configured(service: &str) -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    set("AWS_ENDPOINT_URL")
        || set(&format!(
            "AWS_ENDPOINT_URL_{}",
            service.to_ascii_uppercase()
        ))
}

/// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else [`EMULATOR_REGION`]. (The SDK's region chain would
/// also ask the instance metadata service, which only makes an emulator run wait.)
fn emulator_region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|r| !r.trim().is_empty()))
        .unwrap_or_else(|| EMULATOR_REGION.to_string())
}

fn rustls_ring_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}
