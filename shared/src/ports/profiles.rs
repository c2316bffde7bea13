//! Storage of per-minute stack trees (issue 14): one item per (service, profile type, label set,
//! minute), merged exactly once per contribution. The embedded adapter is
//! `crate::embedded::RedbProfileStore` (one redb file in the data directory).
//!
//! Exactly once: every merge names its contribution (a push's hash, or a stream record's shard and
//! sequence number); the item keeps the contributions it has applied, and a contribution seen again
//! (a client retry, a redelivered batch) changes nothing.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::store::StoreError;
use crate::profiles::tree::StackTree;
use crate::profiles::ProfileType;

/// The profile store's error: the one [`StoreError`] of every storage port.
pub type ProfileStoreError = StoreError;

/// What a stored tree belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileKey {
    pub service: String,
    pub profile_type: ProfileType,
    pub labels: BTreeMap<String, String>,
}

/// The result of [`ProfileStore::merge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged; `minute_total` is the item's total after it, `new_minute` whether the item was
    /// created, `refused` the value left out because the minute's tree reached
    /// [`MinuteLimits::max_nodes`] (0 when everything was merged).
    Applied {
        minute_total: u64,
        new_minute: bool,
        refused: u64,
    },
    /// This contribution was merged before: nothing changed.
    Duplicate,
    /// The item does not exist and the service, type and minute already have
    /// [`MinuteLimits::max_label_sets`] label sets: nothing was merged.
    LabelSetLimit,
}

/// Bounds of one stored minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteLimits {
    /// Nodes of one item's tree (the root included).
    pub max_nodes: usize,
    /// Items (label sets) per service, profile type and minute.
    pub max_label_sets: usize,
}

impl MinuteLimits {
    pub const UNBOUNDED: MinuteLimits = MinuteLimits {
        max_nodes: usize::MAX,
        max_label_sets: usize::MAX,
    };
}

/// One stored minute of one label set.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMinute {
    /// Unix seconds.
    pub minute: i64,
    pub labels: BTreeMap<String, String>,
    pub total: u64,
    /// `None` when only totals were asked for.
    pub tree: Option<StackTree>,
}

#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Merges `tree` into the item of `key` and `minute` (unix seconds, a minute start) unless the
    /// item has applied `contribution` already. The item lives at least until `expires_at_unix_s`.
    /// Within `limits`: see [`MergeOutcome`].
    async fn merge(
        &self,
        key: &ProfileKey,
        minute: i64,
        contribution: &str,
        tree: &StackTree,
        expires_at_unix_s: i64,
        limits: MinuteLimits,
    ) -> Result<MergeOutcome, ProfileStoreError>;

    /// The items of a service and type with `from <= minute < to` (unix seconds), every label set,
    /// oldest first; with their trees when `trees` is set.
    async fn minutes(
        &self,
        service: &str,
        profile_type: ProfileType,
        from: i64,
        to: i64,
        trees: bool,
    ) -> Result<Vec<StoredMinute>, ProfileStoreError>;

    /// Every service with stored profiles and its types, sorted.
    async fn services(&self) -> Result<Vec<(String, Vec<ProfileType>)>, ProfileStoreError>;

    /// Deletes the items that expired before `now_unix_s`; returns how many.
    async fn purge_expired(&self, now_unix_s: i64) -> Result<usize, ProfileStoreError>;
}
