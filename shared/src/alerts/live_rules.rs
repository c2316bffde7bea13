//! The rules in force, and where they come from (issue 13 item 6): the rule file (or the compiled-in
//! rules) is the seed; once rules were replaced through the API (`PUT /api/alert-rules`) the
//! [`RuleStore`]'s current version is in force. Evaluators call [`RuleSource::refresh`] at each run:
//! one read of the store, and a parse only when the version changed (cache by version).
//!
//! A replacement is validated before it is stored (line:column errors; nothing is stored and the
//! running rules stay), and written conditionally on the version it replaces, so two writers cannot
//! clobber each other.

use std::sync::{Arc, RwLock};

use super::rules::{RuleSet, RulesError};
use crate::ports::{RulePut, RuleStore, StoreError};

/// Largest rules document accepted through the API. Fixed: a DynamoDB item holds at most 400 KB, and
/// a rule file of a thousand rules is about 200 KB.
pub const MAX_RULES_BYTES: usize = 256 * 1024;
/// Unconditional replacements retried when another writer got in between the read and the write.
const REPLACE_ATTEMPTS: usize = 5;
/// How a stored version is named in error messages.
const STORED_NAME: &str = "alert-rules";

/// Rules and the version they are (0: the seed, not written through the API).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub version: u64,
    pub rules: Arc<RuleSet>,
}

/// The rules in force, shared by the evaluator and the API, replaced whole. Clones share them.
#[derive(Debug, Clone)]
pub struct LiveRules {
    current: Arc<RwLock<Versioned>>,
}

impl LiveRules {
    pub fn new(rules: Arc<RuleSet>) -> LiveRules {
        LiveRules {
            current: Arc::new(RwLock::new(Versioned { version: 0, rules })),
        }
    }

    pub fn get(&self) -> Versioned {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn rules(&self) -> Arc<RuleSet> {
        self.get().rules
    }

    /// Puts `rules` in force as `version`.
    pub fn set(&self, version: u64, rules: Arc<RuleSet>) {
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Versioned { version, rules };
    }
}

/// Why a replacement was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// Not valid rules (line:column in the message); nothing was stored.
    #[error(transparent)]
    Invalid(#[from] RulesError),
    #[error("the rules document is {0} bytes, over the limit of {MAX_RULES_BYTES} bytes")]
    TooLarge(usize),
    /// `If-Match` named another version than the current one.
    #[error("the rules are at version {current}, not {expected}: read them again and retry")]
    Conflict { expected: u64, current: u64 },
    /// This deployment keeps no rules store (they are compiled in).
    #[error("this deployment cannot replace its alert rules")]
    Unsupported,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The seed rules, and the store that may hold a newer version.
#[derive(Clone)]
pub struct RuleSource {
    store: Option<Arc<dyn RuleStore>>,
    live: LiveRules,
}

impl RuleSource {
    /// Rules that only change through [`LiveRules::set`] (no store).
    pub fn fixed(rules: Arc<RuleSet>) -> RuleSource {
        RuleSource {
            store: None,
            live: LiveRules::new(rules),
        }
    }

    /// `seed` until the store holds a version.
    pub fn new(store: Arc<dyn RuleStore>, seed: Arc<RuleSet>) -> RuleSource {
        RuleSource {
            store: Some(store),
            live: LiveRules::new(seed),
        }
    }

    /// Shares `live` (the evaluator's and the API's view of the same rules).
    pub fn with_live(mut self, live: LiveRules) -> RuleSource {
        self.live = live;
        self
    }

    pub fn live(&self) -> &LiveRules {
        &self.live
    }

    pub fn store(&self) -> Option<&Arc<dyn RuleStore>> {
        self.store.as_ref()
    }

    /// The rules in force now: the store's current version when it holds one (parsed only when it
    /// changed), else what is in force already. A stored version that does not parse (it was
    /// validated when written, so only a corrupt item) is logged and skipped: the running rules stay.
    pub async fn refresh(&self) -> Result<Versioned, StoreError> {
        let Some(store) = &self.store else {
            return Ok(self.live.get());
        };
        let current = self.live.get();
        let Some(stored) = store.current().await? else {
            return Ok(current);
        };
        if stored.version == current.version {
            return Ok(current);
        }
        match RuleSet::parse(&stored.text, &format!("{STORED_NAME} v{}", stored.version)) {
            Ok(rules) => {
                tracing::info!(
                    version = stored.version,
                    rules = rules.rules.len(),
                    "alert rules version loaded"
                );
                self.live.set(stored.version, Arc::new(rules));
                Ok(self.live.get())
            }
            Err(error) => {
                tracing::error!(version = stored.version, %error, "stored alert rules do not parse; the running rules stay in force");
                Ok(current)
            }
        }
    }

    /// Validates `text` and stores it as the next version, then puts it in force here. With
    /// `if_match` the write happens only if the current version is that one (0: none written yet);
    /// without, it replaces whatever version is current.
    pub async fn replace(
        &self,
        text: &str,
        if_match: Option<u64>,
        now: i64,
    ) -> Result<Versioned, ReplaceError> {
        let store = self.store.as_ref().ok_or(ReplaceError::Unsupported)?;
        if text.len() > MAX_RULES_BYTES {
            return Err(ReplaceError::TooLarge(text.len()));
        }
        let rules = Arc::new(RuleSet::parse(text, "body")?);
        for _ in 0..REPLACE_ATTEMPTS {
            let expected = match if_match {
                Some(version) => version,
                None => store.current().await?.map_or(0, |r| r.version),
            };
            match store.put(expected, text, now).await? {
                RulePut::Written { version } => {
                    tracing::info!(version, rules = rules.rules.len(), "alert rules replaced");
                    self.live.set(version, rules);
                    return Ok(self.live.get());
                }
                RulePut::Conflict { current } if if_match.is_some() => {
                    return Err(ReplaceError::Conflict { expected, current });
                }
                RulePut::Conflict { .. } => continue,
            }
        }
        let current = store.current().await?.map_or(0, |r| r.version);
        Err(ReplaceError::Conflict {
            expected: current.saturating_sub(1),
            current,
        })
    }
}
