//! The accepted API keys, as SHA-256 hashes, loaded once per cold start.

use aws_config::SdkConfig;

use super::LambdaError;
use crate::auth::ApiKeys;
use crate::aws::errors;
use crate::tokens::{Authenticator, Scope, Scopes, TokenIssuer, DEFAULT_TTL_SECONDS};

/// Comma-separated SHA-256 hex hashes given directly (tests, emulators).
pub const HASHES_VARIABLE: &str = "API_KEY_HASHES";
/// Name of the SSM (SecureString) parameter holding the comma-separated hashes.
pub const PARAMETER_VARIABLE: &str = "API_KEYS_PARAMETER";

/// Loads the key hashes from `API_KEY_HASHES`, else from the SSM parameter named by
/// `API_KEYS_PARAMETER`. Fails closed: no source, or an empty list, is an error rather than a
/// function that lets everyone in.
pub async fn load_api_keys(config: &SdkConfig) -> Result<ApiKeys, LambdaError> {
    let hashes = match std::env::var(HASHES_VARIABLE) {
        Ok(list) if !list.trim().is_empty() => list,
        _ => match std::env::var(PARAMETER_VARIABLE) {
            Ok(name) if !name.trim().is_empty() => parameter_value(config, name.trim()).await?,
            _ => {
                return Err(LambdaError::Config(format!(
                    "set {PARAMETER_VARIABLE} (an SSM parameter of key hashes) or {HASHES_VARIABLE}"
                )))
            }
        },
    };
    keys_from_hashes(&hashes)
}

/// SHA-256 hex hashes of the admin keys: the keys that may replace the alert rules
/// (`PUT /api/alert-rules`). Optional; without it nobody may.
pub const ADMIN_HASHES_VARIABLE: &str = "ADMIN_KEY_HASHES";

/// The admin keys from `ADMIN_KEY_HASHES` (empty when unset).
pub fn load_admin_keys() -> Result<ApiKeys, LambdaError> {
    match std::env::var(ADMIN_HASHES_VARIABLE) {
        Ok(list) => ApiKeys::from_hashes(&list)
            .map_err(|e| LambdaError::Config(format!("{ADMIN_HASHES_VARIABLE}: {e}"))),
        Err(_) => Ok(ApiKeys::default()),
    }
}

/// The token signing secret given directly (tests, emulators).
pub const TOKEN_SECRET_VARIABLE: &str = "TOKEN_SECRET";
/// Name of the SSM SecureString parameter holding the token signing secret (≥ 32 bytes).
pub const TOKEN_SECRET_PARAMETER_VARIABLE: &str = "TOKEN_SECRET_PARAMETER";
/// Token lifetime in seconds (default 900).
pub const TOKEN_TTL_VARIABLE: &str = "TOKEN_TTL_SECONDS";

/// The token issuer, when a secret is configured (`TOKEN_SECRET`, else the SSM parameter named by
/// `TOKEN_SECRET_PARAMETER`); none means tokens are off (`POST /api/token` answers 404).
pub async fn load_token_issuer(config: &SdkConfig) -> Result<Option<TokenIssuer>, LambdaError> {
    let secret = match std::env::var(TOKEN_SECRET_VARIABLE) {
        Ok(secret) if !secret.is_empty() => secret,
        _ => match std::env::var(TOKEN_SECRET_PARAMETER_VARIABLE) {
            Ok(name) if !name.trim().is_empty() => parameter_value(config, name.trim()).await?,
            _ => return Ok(None),
        },
    };
    let ttl = match std::env::var(TOKEN_TTL_VARIABLE) {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|ttl| *ttl > 0)
            .ok_or_else(|| {
                LambdaError::Config(format!(
                    "{TOKEN_TTL_VARIABLE} must be a positive number of seconds, got {text:?}"
                ))
            })?,
        Err(_) => DEFAULT_TTL_SECONDS,
    };
    TokenIssuer::new(secret.as_bytes(), ttl)
        .map(Some)
        .map_err(|e| LambdaError::Config(format!("token secret: {e}")))
}

/// Keys and scopes of the functions: the API keys carry `ingest` and `read`, the admin keys
/// (`ADMIN_KEY_HASHES`) every scope; tokens when a secret is configured.
pub async fn load_authenticator(config: &SdkConfig) -> Result<Authenticator, LambdaError> {
    let keys = load_api_keys(config).await?;
    let admin = load_admin_keys()?;
    let auth = Authenticator::new()
        .with_keys(keys, Scopes::of(&[Scope::Ingest, Scope::Read]))
        .with_keys(admin, Scopes::ALL);
    Ok(match load_token_issuer(config).await? {
        Some(issuer) => auth.with_tokens(issuer),
        None => auth,
    })
}

/// Parses the hash list, refusing an empty one.
pub fn keys_from_hashes(list: &str) -> Result<ApiKeys, LambdaError> {
    let keys = ApiKeys::from_hashes(list).map_err(LambdaError::Config)?;
    if keys.is_empty() {
        return Err(LambdaError::Config(
            "the API key hash list is empty: no client could authenticate".to_string(),
        ));
    }
    Ok(keys)
}

/// The secret in the SSM SecureString parameter named by the environment variable `variable`
/// (`None` when the variable is unset or empty): e.g. the Jira sink's API token, named by
/// `FLOWSCOPE_JIRA_TOKEN_PARAMETER`, so the token never sits in the function's configuration.
pub async fn secret_from_parameter(
    config: &SdkConfig,
    variable: &str,
) -> Result<Option<String>, LambdaError> {
    match std::env::var(variable) {
        Ok(name) if !name.trim().is_empty() => parameter_value(config, name.trim()).await.map(Some),
        _ => Ok(None),
    }
}

async fn parameter_value(config: &SdkConfig, name: &str) -> Result<String, LambdaError> {
    let output = aws_sdk_ssm::Client::new(config)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| LambdaError::Aws {
            service: "SSM",
            message: errors::describe("GetParameter", &e),
        })?;
    output
        .parameter()
        .and_then(|p| p.value())
        .map(str::to_string)
        .ok_or_else(|| LambdaError::Config(format!("SSM parameter {name} has no value")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_key;

    #[test]
    fn hash_lists_must_name_at_least_one_key() {
        assert!(matches!(
            keys_from_hashes(" , "),
            Err(LambdaError::Config(_))
        ));
        assert!(matches!(
            keys_from_hashes("not-a-hash"),
            Err(LambdaError::Config(_))
        ));
        let keys = keys_from_hashes(&hash_key("k1")).unwrap();
        assert!(keys.accepts("k1") && !keys.accepts("k2"));
    }
}
