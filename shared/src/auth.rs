//! API keys and WebSocket tokens: configured as SHA-256 hashes so no key is ever stored in clear.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// Accepted keys, held as lowercase SHA-256 hex digests.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    hashes: HashSet<String>,
}

/// Lowercase hex SHA-256 of `key`: the form keys are configured in (`printf %s KEY | sha256sum`).
pub fn hash_key(key: &str) -> String {
    crate::spans::hex(&Sha256::digest(key.as_bytes()))
}

impl ApiKeys {
    /// Parses a comma- or whitespace-separated list of SHA-256 hex digests; anything else is an error
    /// so that a clear-text key pasted by mistake is refused rather than silently never matching.
    pub fn from_hashes(list: &str) -> Result<ApiKeys, String> {
        let mut hashes = HashSet::new();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if item.len() != 64 || !item.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "API key hashes must be 64-digit SHA-256 hex digests; got an entry of {} characters",
                    item.len()
                ));
            }
            hashes.insert(item.to_ascii_lowercase());
        }
        Ok(ApiKeys { hashes })
    }

    pub fn from_clear_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> ApiKeys {
        ApiKeys {
            hashes: keys.into_iter().map(hash_key).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// True when `presented` hashes to one of the accepted digests. Comparing digests (not keys) means
    /// timing reveals nothing useful about the key.
    pub fn accepts(&self, presented: &str) -> bool {
        !presented.is_empty() && self.hashes.contains(&hash_key(presented))
    }

    /// Extracts a key from `Authorization: Bearer <key>` or `x-api-key: <key>` header values.
    pub fn key_from_headers<'a>(
        authorization: Option<&'a str>,
        x_api_key: Option<&'a str>,
    ) -> Option<&'a str> {
        if let Some(value) = x_api_key {
            return Some(value.trim());
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
    }

    #[test]
    fn refuses_clear_text_in_the_hash_list() {
        assert!(ApiKeys::from_hashes("my-secret-key").is_err());
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
        assert_eq!(ApiKeys::key_from_headers(None, None), None);
    }
}
