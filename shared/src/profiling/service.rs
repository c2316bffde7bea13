//! [`ProfileService`]: pushes in (read, merged into their minute exactly once, announced to a
//! [`ProfileListener`]), and the reads behind `/api/profiles/*`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::ports::profiles::{MergeOutcome, MinuteLimits, ProfileKey, ProfileStore};
use crate::ports::StoreError;
use crate::profiles::limits::{Limit, Refusals};
use crate::profiles::push::{self, Push, PushLimits, PushParams};
use crate::profiles::tree::StackTree;
use crate::profiles::view::{self, DiffGraph, FlameGraph, Timeline, TimelinePoint, TopFunctions};
use crate::profiles::{pprof, ProfileError, ProfileType};

/// Default retention of per-minute trees: 7 days.
pub const DEFAULT_RETENTION_SECS: i64 = 7 * 86_400;
/// The longest range a tree read merges (`from`..`to`): 7 days of minutes.
pub const MAX_RANGE_SECS: i64 = 7 * 86_400;

/// A merge that changed a minute: what the live `profile` event and the total series carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedMinute {
    pub service: String,
    pub profile_type: ProfileType,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub minute: i64,
    /// What this push added.
    pub added: u64,
    /// The minute's total for this label set after the merge.
    pub minute_total: u64,
}

/// What one push did: the minutes it changed, what limits refused, and whether anything of it is
/// stored (a redelivery counts as stored: it was, the first time).
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub merged: Vec<MergedMinute>,
    pub refused: Refusals,
    pub kept: bool,
}

/// Told about every merge that changed a minute (local mode: live event, total series).
#[async_trait]
pub trait ProfileListener: Send + Sync {
    async fn merged(&self, merged: &[MergedMinute]);
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileServiceError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ProfileServiceError {
    pub fn status(&self) -> u16 {
        match self {
            ProfileServiceError::Profile(ProfileError::TooLarge(_)) => 413,
            ProfileServiceError::Profile(ProfileError::Malformed(_))
            | ProfileServiceError::BadRequest(_) => 400,
            ProfileServiceError::Store(StoreError::Throttled(_)) => 503,
            _ => 500,
        }
    }
}

/// A read's selection: service, type, range (unix seconds, `to` exclusive), optional label filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub service: String,
    pub profile_type: ProfileType,
    pub from: i64,
    pub to: i64,
    /// Every pair must match the label set's value.
    pub labels: BTreeMap<String, String>,
}

pub struct ProfileService {
    store: Arc<dyn ProfileStore>,
    limits: PushLimits,
    retention_secs: i64,
    listener: Option<Arc<dyn ProfileListener>>,
}

impl ProfileService {
    pub fn new(store: Arc<dyn ProfileStore>, limits: PushLimits, retention_secs: i64) -> Self {
        ProfileService {
            store,
            limits,
            retention_secs,
            listener: None,
        }
    }

    pub fn with_listener(mut self, listener: Arc<dyn ProfileListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    pub fn limits(&self) -> PushLimits {
        self.limits
    }

    pub fn store(&self) -> &Arc<dyn ProfileStore> {
        &self.store
    }

    /// Reads and merges one push within the limits; reports the minutes it changed (none for a
    /// redelivery) and what the limits refused.
    pub async fn ingest(
        &self,
        params: &PushParams,
        content_type: Option<&str>,
        body: bytes::Bytes,
        now: i64,
    ) -> Result<IngestReport, ProfileServiceError> {
        let (pushes, refused) = push::read(params, content_type, body, &self.limits, now).await?;
        self.merge_all(pushes, refused).await
    }

    /// Merges read pushes (from any receiver), adding the store's refusals to `refused`.
    pub async fn merge_all(
        &self,
        pushes: Vec<Push>,
        mut refused: Refusals,
    ) -> Result<IngestReport, ProfileServiceError> {
        let mut merged = Vec::with_capacity(pushes.len());
        let mut kept = false;
        for push in pushes {
            let added = push.tree.total();
            match self.merge(push).await? {
                (Some(m), left_out) => {
                    refused.add(Limit::MinuteNodes, left_out);
                    kept |= left_out < added;
                    merged.push(m);
                }
                (None, 0) => kept = true,
                (None, left_out) => refused.add(Limit::LabelSets, left_out),
            }
        }
        if let (Some(listener), false) = (&self.listener, merged.is_empty()) {
            listener.merged(&merged).await;
        }
        Ok(IngestReport {
            merged,
            refused,
            kept,
        })
    }

    /// Merges one push: the minute it changed (if any) and the value the limits left out.
    async fn merge(&self, push: Push) -> Result<(Option<MergedMinute>, u64), ProfileServiceError> {
        let key = ProfileKey {
            service: push.service,
            profile_type: push.profile_type,
            labels: push.labels,
        };
        let expires = push
            .minute
            .saturating_add(60)
            .saturating_add(self.retention_secs);
        let limits = MinuteLimits {
            max_nodes: self.limits.max_minute_nodes,
            max_label_sets: self.limits.max_label_sets,
        };
        let added = push.tree.total();
        match self
            .store
            .merge(
                &key,
                push.minute,
                &push.contribution,
                &push.tree,
                expires,
                limits,
            )
            .await?
        {
            MergeOutcome::Duplicate => Ok((None, 0)),
            MergeOutcome::LabelSetLimit => Ok((None, added)),
            MergeOutcome::Applied {
                minute_total,
                refused,
                ..
            } => Ok((
                Some(MergedMinute {
                    service: key.service,
                    profile_type: key.profile_type,
                    labels: key.labels,
                    minute: push.minute,
                    added: added.saturating_sub(refused),
                    minute_total,
                }),
                refused,
            )),
        }
    }

    pub async fn services(&self) -> Result<Vec<(String, Vec<ProfileType>)>, ProfileServiceError> {
        Ok(self.store.services().await?)
    }

    pub async fn types(&self, service: &str) -> Result<Vec<ProfileType>, ProfileServiceError> {
        Ok(self
            .store
            .services()
            .await?
            .into_iter()
            .find(|(s, _)| s == service)
            .map(|(_, t)| t)
            .unwrap_or_default())
    }

    fn check_range(from: i64, to: i64) -> Result<(), ProfileServiceError> {
        if to <= from {
            return Err(ProfileServiceError::BadRequest(format!(
                "`to` ({to}) must be after `from` ({from})"
            )));
        }
        if to - from > MAX_RANGE_SECS {
            return Err(ProfileServiceError::BadRequest(format!(
                "the range is longer than {} days",
                MAX_RANGE_SECS / 86_400
            )));
        }
        Ok(())
    }

    /// The merged tree of a selection.
    pub async fn tree(&self, sel: &Selection) -> Result<StackTree, ProfileServiceError> {
        Self::check_range(sel.from, sel.to)?;
        let minutes = self
            .store
            .minutes(&sel.service, sel.profile_type, sel.from, sel.to, true)
            .await?;
        let mut tree = StackTree::new();
        for m in minutes {
            if !matches(&m.labels, &sel.labels) {
                continue;
            }
            if let Some(t) = m.tree {
                tree.merge(&t);
            }
        }
        Ok(tree)
    }

    pub async fn timeline(&self, sel: &Selection) -> Result<Timeline, ProfileServiceError> {
        Self::check_range(sel.from, sel.to)?;
        let minutes = self
            .store
            .minutes(&sel.service, sel.profile_type, sel.from, sel.to, false)
            .await?;
        let mut totals: BTreeMap<i64, u64> = BTreeMap::new();
        for m in minutes {
            if matches(&m.labels, &sel.labels) {
                let t = totals.entry(m.minute).or_insert(0);
                *t = t.saturating_add(m.total);
            }
        }
        Ok(Timeline {
            service: sel.service.clone(),
            profile_type: sel.profile_type,
            unit: sel.profile_type.unit().to_string(),
            points: totals
                .into_iter()
                .map(|(minute, total)| TimelinePoint {
                    t: minute.saturating_mul(1000),
                    total,
                })
                .collect(),
        })
    }

    pub async fn flamegraph(
        &self,
        sel: &Selection,
        max_nodes: usize,
    ) -> Result<FlameGraph, ProfileServiceError> {
        let tree = self.tree(sel).await?;
        let (names, levels) = view::flame_levels(&tree, max_nodes);
        Ok(FlameGraph {
            service: sel.service.clone(),
            profile_type: sel.profile_type,
            unit: sel.profile_type.unit().to_string(),
            from: sel.from.saturating_mul(1000),
            to: sel.to.saturating_mul(1000),
            total: tree.total(),
            names,
            levels,
        })
    }

    pub async fn top(
        &self,
        sel: &Selection,
        limit: usize,
    ) -> Result<TopFunctions, ProfileServiceError> {
        let tree = self.tree(sel).await?;
        Ok(TopFunctions {
            unit: sel.profile_type.unit().to_string(),
            total: tree.total(),
            functions: view::top(&tree, limit),
        })
    }

    pub async fn diff(
        &self,
        sel: &Selection,
        base_from: i64,
        base_to: i64,
        max_nodes: usize,
    ) -> Result<DiffGraph, ProfileServiceError> {
        let tree = self.tree(sel).await?;
        let base_sel = Selection {
            from: base_from,
            to: base_to,
            ..sel.clone()
        };
        let base = self.tree(&base_sel).await?;
        let (names, levels) = view::diff_levels(&tree, &base, max_nodes);
        Ok(DiffGraph {
            service: sel.service.clone(),
            profile_type: sel.profile_type,
            unit: sel.profile_type.unit().to_string(),
            from: sel.from.saturating_mul(1000),
            to: sel.to.saturating_mul(1000),
            base_from: base_from.saturating_mul(1000),
            base_to: base_to.saturating_mul(1000),
            total: tree.total(),
            base_total: base.total(),
            names,
            levels,
        })
    }

    /// The selection as a gzip pprof.
    pub async fn pprof(&self, sel: &Selection) -> Result<Vec<u8>, ProfileServiceError> {
        let tree = self.tree(sel).await?;
        Ok(pprof::encode(
            &tree,
            sel.profile_type,
            sel.from.saturating_mul(1_000_000_000),
            (sel.to - sel.from).saturating_mul(1_000_000_000),
        )?)
    }
}

fn matches(labels: &BTreeMap<String, String>, filter: &BTreeMap<String, String>) -> bool {
    filter.iter().all(|(k, v)| labels.get(k) == Some(v))
}
