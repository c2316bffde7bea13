//! The alert rules replaced through the API (`PUT /api/alert-rules`, issue 13 item 6): one versioned
//! document, the rule file's text as sent. Versions start at 1 and go up by one with each write; a
//! write names the version it replaces, so two writers cannot clobber each other (the loser sees
//! [`RulePut::Conflict`]). The alerts table holds it on AWS, the alert store's redb file locally.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::store::StoreError;

/// The current rules document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRules {
    /// 1 for the first write, then one more with each.
    pub version: u64,
    /// The rule file (YAML or JSON) as it was accepted.
    pub text: String,
    /// Unix seconds of the write.
    pub updated_at: i64,
}

/// What a conditional [`RuleStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulePut {
    /// Stored as `version`.
    Written { version: u64 },
    /// The stored version was not the expected one; nothing was written. `current` is the version
    /// found (0: none).
    Conflict { current: u64 },
}

#[async_trait]
pub trait RuleStore: Send + Sync {
    /// The current document, `None` before the first write.
    async fn current(&self) -> Result<Option<StoredRules>, StoreError>;

    /// Stores `text` as version `expected + 1` if the current version is `expected` (0: there is no
    /// document yet).
    async fn put(&self, expected: u64, text: &str, now: i64) -> Result<RulePut, StoreError>;
}
