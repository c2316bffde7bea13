//! Per-ingest-key rate limits: each key gets a token bucket of data items (data points + spans) per
//! second and one of requests per second. A key over either gets 429 with `Retry-After` (as the
//! OTLP/HTTP specification asks of a throttled exporter) and nothing of that request is kept; other
//! keys are unaffected.
//!
//! Buckets are GCRA rate limiters from `governor` (the well-kept Rust rate-limiting crate), keyed by
//! [`KeyId`], in memory: local mode has one per process; on AWS each ingest container has its own,
//! so the fine limit holds per container (N warm containers admit up to N × the rate), and the
//! coarse, account-wide limit is API Gateway's stage throttling (see README `## Limits`). No store
//! write per request.
//!
//! The set of tracked keys is bounded ([`KeyLimits::max_keys`]): when full, keys whose buckets
//! are back to full are forgotten first; if every tracked key is still mid-bucket, further new keys
//! share one overflow bucket, so a flood of fresh keys can neither grow memory nor escape the limit.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

/// Who a request counts against: a short digest of the credential it presented (never the key
/// itself), or [`KeyId::anonymous`] for requests without one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Requests that present no credential (local mode's open OTLP port) share this one.
    pub fn anonymous() -> KeyId {
        KeyId("anonymous".to_string())
    }

    /// The bucket new keys share when the tracked set is full.
    fn overflow() -> KeyId {
        KeyId("overflow".to_string())
    }

    /// `key-` + the first 12 hex digits of the credential's SHA-256: enough to tell keys apart in a
    /// refusal or a log line, without revealing the key.
    pub fn of_credential(credential: &str) -> KeyId {
        let digest = Sha256::digest(credential.as_bytes());
        KeyId(format!("key-{}", &crate::spans::hex(&digest)[..12]))
    }

    /// The credential of an OTLP request: `x-api-key`, else `Authorization: Bearer`; anonymous
    /// without either.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> KeyId {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = header("authorization").and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
        match header("x-api-key").or(bearer).map(str::trim) {
            Some(credential) if !credential.is_empty() => KeyId::of_credential(credential),
            _ => KeyId::anonymous(),
        }
    }

    /// The key of an authenticated principal (`key:<12 hex digits>`, see
    /// [`crate::tokens::key_id`]): the same id as [`KeyId::of_credential`] of that key, whether the
    /// request presented the key itself or a token issued from it.
    pub fn of_subject(subject: &str) -> KeyId {
        match subject.strip_prefix("key:") {
            Some(hex) => KeyId(format!("key-{hex}")),
            None => KeyId(subject.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The limits every key gets. 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// Data points + spans per second, per key.
    pub items_per_second: u32,
    /// Requests per second, per key.
    pub requests_per_second: u32,
    /// Most keys tracked at once (see the module documentation).
    pub max_keys: usize,
}

impl Default for KeyLimits {
    fn default() -> Self {
        KeyLimits {
            items_per_second: 1_000_000,
            requests_per_second: 10_000,
            max_keys: 10_000,
        }
    }
}

impl KeyLimits {
    /// The ingest function's variables: `KEY_POINTS_PER_SECOND`, `KEY_REQUESTS_PER_SECOND`,
    /// `KEY_MAX_KEYS` (unset or blank: the default; 0: no limit); not a whole number is an error.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let read = |name: &str| -> Result<Option<u64>, String> {
            match env(name).filter(|t| !t.trim().is_empty()) {
                None => Ok(None),
                Some(text) => text
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("{name}={text:?} is not a whole number")),
            }
        };
        let rate = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(n) = read("KEY_POINTS_PER_SECOND")? {
            self.items_per_second = rate(n);
        }
        if let Some(n) = read("KEY_REQUESTS_PER_SECOND")? {
            self.requests_per_second = rate(n);
        }
        if let Some(n) = read("KEY_MAX_KEYS")? {
            self.max_keys = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(self)
    }
}

/// Why a key's request is refused (the 429's message) and when to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("ingest key {key} is over its limit of {limit} requests per second; retry after {retry_after_seconds} s")]
    Requests {
        key: String,
        limit: u32,
        retry_after_seconds: u64,
    },
    #[error("ingest key {key} is over its limit of {limit} data points and spans per second ({items} in this request); nothing of it was kept, retry after {retry_after_seconds} s")]
    Items {
        key: String,
        limit: u32,
        items: u64,
        retry_after_seconds: u64,
    },
}

impl KeyRefusal {
    pub fn retry_after_seconds(&self) -> u64 {
        match self {
            KeyRefusal::Requests {
                retry_after_seconds,
                ..
            }
            | KeyRefusal::Items {
                retry_after_seconds,
                ..
            } => *retry_after_seconds,
        }
    }
}

/// The buckets of every key.
pub struct KeyLimiter {
    limits: KeyLimits,
    items: Option<DefaultKeyedRateLimiter<KeyId>>,
    requests: Option<DefaultKeyedRateLimiter<KeyId>>,
    /// The largest item count one check may ask for (the items bucket's burst).
    items_burst: u32,
    clock: DefaultClock,
}

impl std::fmt::Debug for KeyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLimiter")
            .field("limits", &self.limits)
            .finish()
    }
}

/// `Retry-After` is whole seconds: round up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl KeyLimiter {
    /// `items_burst_at_least`: the items bucket holds at least this many (the receiver's
    /// per-request point limit), so one full request of a key at rest always fits.
    pub fn new(limits: KeyLimits, items_burst_at_least: u32) -> KeyLimiter {
        let items_burst = limits.items_per_second.max(items_burst_at_least).max(1);
        let items = NonZeroU32::new(limits.items_per_second).map(|rate| {
            DefaultKeyedRateLimiter::hashmap(
                Quota::per_second(rate).allow_burst(NonZeroU32::new(items_burst).unwrap_or(rate)),
            )
        });
        let requests = NonZeroU32::new(limits.requests_per_second)
            .map(|rate| DefaultKeyedRateLimiter::hashmap(Quota::per_second(rate)));
        KeyLimiter {
            limits,
            items,
            requests,
            items_burst,
            clock: DefaultClock::default(),
        }
    }

    pub fn limits(&self) -> KeyLimits {
        self.limits
    }

    /// The key the buckets count `key` under: itself, or the shared overflow bucket when the
    /// tracked set is full of keys that are all mid-bucket.
    fn tracked(&self, limiter: &DefaultKeyedRateLimiter<KeyId>, key: &KeyId) -> KeyId {
        if limiter.len() < self.limits.max_keys.max(1) {
            return key.clone();
        }
        limiter.retain_recent();
        if limiter.len() < self.limits.max_keys.max(1) {
            key.clone()
        } else {
            KeyId::overflow()
        }
    }

    /// Takes one request from `key`'s request bucket.
    pub fn admit_request(&self, key: &KeyId) -> Result<(), KeyRefusal> {
        let Some(limiter) = &self.requests else {
            return Ok(());
        };
        let counted = self.tracked(limiter, key);
        limiter
            .check_key(&counted)
            .map_err(|not_until| KeyRefusal::Requests {
                key: key.as_str().to_string(),
                limit: self.limits.requests_per_second,
                retry_after_seconds: whole_seconds(not_until.wait_time_from(self.clock.now())),
            })
    }

    /// Takes `items` (data points + spans of one request) from `key`'s items bucket, all or none.
    pub fn admit_items(&self, key: &KeyId, items: u64) -> Result<(), KeyRefusal> {
        let Some(limiter) = &self.items else {
            return Ok(());
        };
        let Some(n) = NonZeroU32::new(u32::try_from(items).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        let counted = self.tracked(limiter, key);
        let refusal = |wait: Duration| KeyRefusal::Items {
            key: key.as_str().to_string(),
            limit: self.limits.items_per_second,
            items,
            retry_after_seconds: whole_seconds(wait),
        };
        match limiter.check_key_n(&counted, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refusal(not_until.wait_time_from(self.clock.now()))),
            // More than a full bucket: never admissible at this limit. The receiver's
            // per-request limit keeps requests below the burst, so this is defence in depth.
            Err(_) => Err(refusal(Duration::from_secs(
                items.div_ceil(u64::from(self.items_burst.max(1))),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_the_tokens_issued_from_it_share_one_bucket_id() {
        let key = "ingest-key-of-team-a";
        let subject = crate::tokens::key_id(key);
        assert_eq!(KeyId::of_subject(&subject), KeyId::of_credential(key));
        assert_ne!(
            KeyId::of_subject(&crate::tokens::key_id("another-key")),
            KeyId::of_credential(key)
        );
    }

    #[test]
    fn a_key_over_its_items_limit_is_refused_and_another_key_is_not() {
        let limiter = KeyLimiter::new(
            KeyLimits {
                items_per_second: 100,
                requests_per_second: 0,
                max_keys: 10,
            },
            0,
        );
        let (bad, good) = (KeyId::of_credential("bad"), KeyId::of_credential("good"));
        assert!(limiter.admit_items(&bad, 100).is_ok(), "a full bucket");
        let refused = limiter.admit_items(&bad, 10).unwrap_err();
        assert_eq!(refused.retry_after_seconds(), 1);
        assert!(refused.to_string().contains(bad.as_str()), "{refused}");
        assert!(limiter.admit_items(&good, 100).is_ok());
    }

    #[test]
    fn requests_are_limited_per_key() {
        let limiter = KeyLimiter::new(
            KeyLimits {
                items_per_second: 0,
                requests_per_second: 2,
                max_keys: 10,
            },
            0,
        );
        let key = KeyId::anonymous();
        assert!(limiter.admit_request(&key).is_ok());
        assert!(limiter.admit_request(&key).is_ok());
        assert!(matches!(
            limiter.admit_request(&key),
            Err(KeyRefusal::Requests { limit: 2, .. })
        ));
        assert!(limiter.admit_items(&key, 1_000_000).is_ok(), "items off");
    }

    #[test]
    fn a_flood_of_new_keys_shares_one_overflow_bucket() {
        let limiter = KeyLimiter::new(
            KeyLimits {
                items_per_second: 10,
                requests_per_second: 0,
                max_keys: 3,
            },
            0,
        );
        for i in 0..3 {
            // Each tracked key is left mid-bucket, so none can be forgotten.
            limiter
                .admit_items(&KeyId::of_credential(&i.to_string()), 10)
                .unwrap();
        }
        let fresh = |i: usize| KeyId::of_credential(&format!("fresh-{i}"));
        assert!(
            limiter.admit_items(&fresh(0), 10).is_ok(),
            "the overflow bucket, full"
        );
        assert!(
            limiter.admit_items(&fresh(1), 10).is_err(),
            "a second new key shares the overflow bucket"
        );
    }

    #[test]
    fn a_request_larger_than_the_bucket_is_refused_with_a_finite_wait() {
        let limiter = KeyLimiter::new(
            KeyLimits {
                items_per_second: 10,
                requests_per_second: 0,
                max_keys: 3,
            },
            0,
        );
        let refused = limiter.admit_items(&KeyId::anonymous(), 25).unwrap_err();
        assert_eq!(refused.retry_after_seconds(), 3);
    }

    #[test]
    fn keys_come_from_x_api_key_or_bearer_and_are_never_shown_in_clear() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(KeyId::from_headers(&headers), KeyId::anonymous());
        headers.insert("authorization", "Bearer s3cret".parse().unwrap());
        let bearer = KeyId::from_headers(&headers);
        assert_eq!(bearer, KeyId::of_credential("s3cret"));
        assert!(!bearer.as_str().contains("s3cret"));
        headers.insert("x-api-key", "other".parse().unwrap());
        assert_eq!(KeyId::from_headers(&headers), KeyId::of_credential("other"));
    }
}
