//! API keys and WebSocket tokens: configured as SHA-256 hashes so no key is ever stored in clear.
//!
//! One check serves every entry point (local gateway, query function, `$connect`): the presented
//! credential is hashed and compared with every accepted digest in constant time, and a refusal says
//! whether the credential was missing or wrong ([`AuthError`]), which is what the 401 body carries.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The `WWW-Authenticate` challenge sent with every 401 of the query API and the WebSocket.
pub const CHALLENGE: &str = "Bearer realm=\"flowscope\"";

/// Why a request was refused; the `Display` text is the reason given to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential in the places this entry point reads.
    #[error("missing credential: send `Authorization: Bearer <token>` or `x-api-key: <token>`")]
    MissingHeader,
    /// No `?token=` on a WebSocket handshake (browsers cannot set headers there).
    #[error("missing credential: connect with ?token=<token>")]
    MissingQueryToken,
    /// A credential was presented and matches no accepted key.
    #[error("invalid credential")]
    Invalid,
}

impl AuthError {
    /// The JSON body of the 401: `{"error": "<reason>"}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({ "error": self.to_string() }).to_string()
    }
}

/// Accepted keys, held as lowercase SHA-256 hex digests.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    hashes: Vec<String>,
}

/// Lowercase hex SHA-256 of `key`: the form keys are configured in (`printf %s KEY | sha256sum`).
pub fn hash_key(key: &str) -> String {
    crate::spans::hex(&Sha256::digest(key.as_bytes()))
}

impl ApiKeys {
    /// Parses a comma- or whitespace-separated list of SHA-256 hex digests; anything else is an error
    /// so that a clear-text key pasted by mistake is refused rather than silently never matching.
    pub fn from_hashes(list: &str) -> Result<ApiKeys, String> {
        let mut keys = ApiKeys::default();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if item.len() != 64 || !item.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "API key hashes must be 64-digit SHA-256 hex digests; got an entry of {} characters",
                    item.chars().count()
                ));
            }
            keys.insert(item.to_ascii_lowercase());
        }
        Ok(keys)
    }

    pub fn from_clear_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> ApiKeys {
        let mut accepted = ApiKeys::default();
        for key in keys {
            accepted.insert(hash_key(key));
        }
        accepted
    }

    fn insert(&mut self, hash: String) {
        if !self.hashes.contains(&hash) {
            self.hashes.push(hash);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The keys of both sets (the API's keys plus the admin keys, which are API keys too).
    pub fn union(&self, other: &ApiKeys) -> ApiKeys {
        let mut hashes = self.hashes.clone();
        hashes.extend(other.hashes.iter().cloned());
        hashes.sort();
        hashes.dedup();
        ApiKeys { hashes }
    }

    /// True when `presented` hashes to one of the accepted digests. Digests (not keys) are compared,
    /// each one in constant time and all of them every time, so timing reveals nothing about a key.
    pub fn accepts(&self, presented: &str) -> bool {
        if presented.is_empty() {
            return false;
        }
        let presented = hash_key(presented);
        let mut matched = subtle::Choice::from(0u8);
        for accepted in &self.hashes {
            matched |= accepted.as_bytes().ct_eq(presented.as_bytes());
        }
        matched.into()
    }

    /// Checks a credential from request headers (`Authorization: Bearer` or `x-api-key`). An empty
    /// key set accepts nothing: callers that allow anonymous access decide so before calling.
    pub fn check_headers(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&str>,
    ) -> Result<(), AuthError> {
        match Self::key_from_headers(authorization, x_api_key).filter(|k| !k.is_empty()) {
            None => Err(AuthError::MissingHeader),
            Some(key) if self.accepts(key) => Ok(()),
            Some(_) => Err(AuthError::Invalid),
        }
    }

    /// Checks a WebSocket handshake's `?token=`; same rules as [`ApiKeys::check_headers`].
    pub fn check_query_token(&self, token: Option<&str>) -> Result<(), AuthError> {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Err(AuthError::MissingQueryToken),
            Some(token) if self.accepts(token) => Ok(()),
            Some(_) => Err(AuthError::Invalid),
        }
    }

    /// Extracts a key from `Authorization: Bearer <key>` or `x-api-key: <key>` header values.
    pub fn key_from_headers<'a>(
        authorization: Option<&'a str>,
        x_api_key: Option<&'a str>,
    ) -> Option<&'a str> {
        if let Some(value) = x_api_key.map(str::trim).filter(|v| !v.is_empty()) {
            return Some(value);
        }
        let value = authorization?.trim();
        let (scheme, rest) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_configured_keys_only() {
        let keys =
            ApiKeys::from_hashes(&format!("{}, {}", hash_key("alpha"), hash_key("beta"))).unwrap();
        assert!(keys.accepts("alpha"));
        assert!(keys.accepts("beta"));
        assert!(!keys.accepts("gamma"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::default().accepts("alpha"));
    }

    #[test]
    fn hashes_are_read_in_either_case() {
        let keys = ApiKeys::from_hashes(&hash_key("alpha").to_ascii_uppercase()).unwrap();
        assert!(keys.accepts("alpha"));
        assert!(ApiKeys::from_clear_keys(["alpha"]).accepts("alpha"));
    }

    #[test]
    fn refuses_clear_text_in_the_hash_list() {
        assert!(ApiKeys::from_hashes("my-secret-key").is_err());
        // Right length in bytes, not hex (and no panic on a multi-byte character).
        assert!(ApiKeys::from_hashes(&"é".repeat(32)).is_err());
        assert!(ApiKeys::from_hashes(&"g".repeat(64)).is_err());
    }

    #[test]
    fn reads_bearer_and_x_api_key_headers() {
        assert_eq!(
            ApiKeys::key_from_headers(Some("Bearer abc"), None),
            Some("abc")
        );
        assert_eq!(
            ApiKeys::key_from_headers(Some("bearer  abc "), None),
            Some("abc")
        );
        assert_eq!(ApiKeys::key_from_headers(Some("Basic abc"), None), None);
        assert_eq!(ApiKeys::key_from_headers(None, Some("k")), Some("k"));
        assert_eq!(
            ApiKeys::key_from_headers(Some("Bearer abc"), Some(" ")),
            Some("abc")
        );
        assert_eq!(ApiKeys::key_from_headers(None, None), None);
    }

    #[test]
    fn refusals_say_whether_the_credential_was_missing_or_wrong() {
        let keys = ApiKeys::from_clear_keys(["T"]);
        assert_eq!(
            keys.check_headers(None, None),
            Err(AuthError::MissingHeader)
        );
        assert_eq!(
            keys.check_headers(Some("Basic VDo="), None),
            Err(AuthError::MissingHeader)
        );
        assert_eq!(
            keys.check_headers(Some("Bearer "), None),
            Err(AuthError::MissingHeader)
        );
        assert_eq!(
            keys.check_headers(Some("Bearer x"), None),
            Err(AuthError::Invalid)
        );
        assert_eq!(keys.check_headers(Some("Bearer T"), None), Ok(()));
        assert_eq!(keys.check_headers(None, Some("T")), Ok(()));
        assert_eq!(
            keys.check_query_token(None),
            Err(AuthError::MissingQueryToken)
        );
        assert_eq!(
            keys.check_query_token(Some("")),
            Err(AuthError::MissingQueryToken)
        );
        assert_eq!(keys.check_query_token(Some("x")), Err(AuthError::Invalid));
        assert_eq!(keys.check_query_token(Some("T")), Ok(()));
        assert!(AuthError::MissingHeader
            .to_string()
            .starts_with("missing credential: "));
        assert_eq!(
            AuthError::Invalid.json_body(),
            r#"{"error":"invalid credential"}"#
        );
        // No keys configured: nothing is accepted by the check itself.
        assert_eq!(
            ApiKeys::default().check_headers(Some("Bearer T"), None),
            Err(AuthError::Invalid)
        );
    }
}
