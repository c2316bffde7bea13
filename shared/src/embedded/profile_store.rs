//! The local [`ProfileStore`]: one redb file (`profiles.redb` in the data directory) with
//! - trees: `service (length-prefixed) | type | minute (order-preserving) | labels hash (8 bytes)` →
//!   the item (below), so one service and type over a time range is one contiguous scan;
//! - expiry: `expires_at | item key` → (), so purging reads only what expired;
//! - types: `service \x1f type` → (), for the service list.
//!
//! An item: version byte, then varints: expiry, total, the labels (JSON, length-prefixed), the
//! applied contributions (count, then each length-prefixed), then the tree
//! ([`StackTree::encode`], deflated). redb runs write transactions one at a time, so a merge's
//! read-check-write is atomic.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use async_trait::async_trait;
use bytes::Buf;
use prost::encoding::{decode_varint, encode_varint};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use super::ordered_keys::{from_ordered_i64, ordered_i64, service_prefix, take_expired, time_key};
use super::redb_file::{blocking, RedbFile};
use super::EmbeddedError;
use crate::ports::profiles::{MergeOutcome, MinuteLimits, ProfileKey, ProfileStore, StoredMinute};
use crate::ports::StoreError;
use crate::profiles::tree::StackTree;
use crate::profiles::ProfileType;

const TREES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("profile_trees");
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("profile_expiry");
const TYPES: TableDefinition<&str, ()> = TableDefinition::new("profile_types");
const ITEM_VERSION: u8 = 1;
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// redb-backed [`ProfileStore`]. Clones share one database.
#[derive(Clone)]
pub struct RedbProfileStore {
    db: RedbFile,
}

impl RedbProfileStore {
    pub fn open(path: &Path) -> Result<RedbProfileStore, EmbeddedError> {
        Ok(RedbProfileStore {
            db: RedbFile::open(path, "profile store", Some(CACHE_BYTES), create_tables)?,
        })
    }

    /// Resolves once the file is closed: every clone and every call still running has dropped it.
    pub fn released(&self) -> super::Released {
        self.db.released()
    }
}

fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(TREES)?;
    txn.open_table(EXPIRY)?;
    txn.open_table(TYPES)?;
    Ok(())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn type_byte(t: ProfileType) -> u8 {
    ProfileType::ALL.iter().position(|x| *x == t).unwrap_or(0) as u8
}

fn scan_prefix(service: &str, t: ProfileType) -> Vec<u8> {
    let mut key = service_prefix(service);
    key.push(type_byte(t));
    key
}

fn labels_hash(labels: &BTreeMap<String, String>) -> [u8; 8] {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

fn item_key(key: &ProfileKey, minute: i64) -> Vec<u8> {
    let mut k = scan_prefix(&key.service, key.profile_type);
    k.extend_from_slice(&ordered_i64(minute));
    k.extend_from_slice(&labels_hash(&key.labels));
    k
}

struct Item {
    expires_at: i64,
    total: u64,
    labels: BTreeMap<String, String>,
    applied: Vec<String>,
    /// Deflated [`StackTree::encode`] bytes.
    tree: Vec<u8>,
}

fn encode_item(item: &Item) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![ITEM_VERSION];
    encode_varint(item.expires_at as u64, &mut out);
    encode_varint(item.total, &mut out);
    let labels = serde_json::to_vec(&item.labels).map_err(unavailable)?;
    encode_varint(labels.len() as u64, &mut out);
    out.extend_from_slice(&labels);
    encode_varint(item.applied.len() as u64, &mut out);
    for c in &item.applied {
        encode_varint(c.len() as u64, &mut out);
        out.extend_from_slice(c.as_bytes());
    }
    out.extend_from_slice(&item.tree);
    Ok(out)
}

fn decode_item(bytes: &[u8], key: &[u8]) -> Result<Item, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: hex::encode(key),
        reason: reason.to_string(),
    };
    let mut buf = bytes;
    if buf.first() != Some(&ITEM_VERSION) {
        return Err(corrupt("unknown item version"));
    }
    buf.advance(1);
    let varint = |buf: &mut &[u8]| decode_varint(buf).map_err(|_| corrupt("bad varint"));
    let take = |buf: &mut &[u8]| -> Result<Vec<u8>, StoreError> {
        let len = varint(buf)? as usize;
        if buf.len() < len {
            return Err(corrupt("field past the end"));
        }
        let out = buf[..len].to_vec();
        buf.advance(len);
        Ok(out)
    };
    let expires_at = varint(&mut buf)? as i64;
    let total = varint(&mut buf)?;
    let labels = serde_json::from_slice(&take(&mut buf)?).map_err(|_| corrupt("labels"))?;
    let count = varint(&mut buf)?;
    let mut applied = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        applied.push(String::from_utf8(take(&mut buf)?).map_err(|_| corrupt("contribution"))?);
    }
    Ok(Item {
        expires_at,
        total,
        labels,
        applied,
        tree: buf.to_vec(),
    })
}

fn deflate(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(bytes).map_err(unavailable)?;
    z.finish().map_err(unavailable)
}

fn inflate_tree(bytes: &[u8], key: &[u8]) -> Result<StackTree, StoreError> {
    let mut raw = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_end(&mut raw)
        .map_err(|e| StoreError::Corrupt {
            key: hex::encode(key),
            reason: format!("tree: {e}"),
        })?;
    StackTree::decode(&raw).map_err(|e| StoreError::Corrupt {
        key: hex::encode(key),
        reason: e.to_string(),
    })
}

#[async_trait]
impl ProfileStore for RedbProfileStore {
    async fn merge(
        &self,
        key: &ProfileKey,
        minute: i64,
        contribution: &str,
        tree: &StackTree,
        expires_at_unix_s: i64,
        limits: MinuteLimits,
    ) -> Result<MergeOutcome, StoreError> {
        let (key, contribution, tree) = (key.clone(), contribution.to_string(), tree.clone());
        blocking(&self.db, move |db| {
            let k = item_key(&key, minute);
            let txn = db.begin_write().map_err(unavailable)?;
            let outcome = {
                let mut trees = txn.open_table(TREES).map_err(unavailable)?;
                let stored = trees
                    .get(&k[..])
                    .map_err(unavailable)?
                    .map(|v| decode_item(v.value(), &k))
                    .transpose()?;
                let new_minute = stored.is_none();
                if new_minute && limits.max_label_sets != usize::MAX {
                    // The label sets this service, type and minute have: the keys that share
                    // this one's prefix up to the labels hash.
                    let minute_prefix = &k[..k.len() - 8];
                    let mut upper = minute_prefix.to_vec();
                    upper.extend_from_slice(&[0xff; 9]);
                    let mut count = 0usize;
                    for entry in trees
                        .range::<&[u8]>(minute_prefix..&upper[..])
                        .map_err(unavailable)?
                    {
                        entry.map_err(unavailable)?;
                        count += 1;
                        if count >= limits.max_label_sets {
                            return Ok(MergeOutcome::LabelSetLimit);
                        }
                    }
                }
                let mut item = match stored {
                    Some(item) if item.applied.contains(&contribution) => {
                        return Ok(MergeOutcome::Duplicate);
                    }
                    Some(item) => item,
                    None => Item {
                        expires_at: expires_at_unix_s,
                        total: 0,
                        labels: key.labels.clone(),
                        applied: Vec::new(),
                        tree: Vec::new(),
                    },
                };
                let mut merged = if item.tree.is_empty() {
                    StackTree::new()
                } else {
                    inflate_tree(&item.tree, &k)?
                };
                let refused = merged.merge_bounded(&tree, limits.max_nodes);
                item.total = merged.total();
                item.tree = deflate(&merged.encode())?;
                item.applied.push(contribution);
                let mut expiry = txn.open_table(EXPIRY).map_err(unavailable)?;
                if expires_at_unix_s > item.expires_at || new_minute {
                    expiry
                        .remove(&time_key(item.expires_at, &k)[..])
                        .map_err(unavailable)?;
                    item.expires_at = item.expires_at.max(expires_at_unix_s);
                    expiry
                        .insert(&time_key(item.expires_at, &k)[..], ())
                        .map_err(unavailable)?;
                }
                trees
                    .insert(&k[..], &encode_item(&item)?[..])
                    .map_err(unavailable)?;
                let mut types = txn.open_table(TYPES).map_err(unavailable)?;
                let type_key = format!("{}\u{1f}{}", key.service, key.profile_type.as_str());
                types.insert(type_key.as_str(), ()).map_err(unavailable)?;
                MergeOutcome::Applied {
                    minute_total: item.total,
                    new_minute,
                    refused,
                }
            };
            txn.commit().map_err(unavailable)?;
            Ok(outcome)
        })
        .await
    }

    async fn minutes(
        &self,
        service: &str,
        profile_type: ProfileType,
        from: i64,
        to: i64,
        trees: bool,
    ) -> Result<Vec<StoredMinute>, StoreError> {
        let prefix = scan_prefix(service, profile_type);
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(TREES).map_err(unavailable)?;
            let mut lower = prefix.clone();
            lower.extend_from_slice(&ordered_i64(from));
            let mut upper = prefix.clone();
            upper.extend_from_slice(&ordered_i64(to));
            let mut out = Vec::new();
            for entry in table
                .range::<&[u8]>(&lower[..]..&upper[..])
                .map_err(unavailable)?
            {
                let (k, v) = entry.map_err(unavailable)?;
                let k = k.value();
                let mut minute = [0u8; 8];
                minute.copy_from_slice(&k[prefix.len()..prefix.len() + 8]);
                let item = decode_item(v.value(), k)?;
                let tree = if trees {
                    Some(inflate_tree(&item.tree, k)?)
                } else {
                    None
                };
                out.push(StoredMinute {
                    minute: from_ordered_i64(minute),
                    labels: item.labels,
                    total: item.total,
                    tree,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn services(&self) -> Result<Vec<(String, Vec<ProfileType>)>, StoreError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(TYPES).map_err(unavailable)?;
            let mut out: BTreeMap<String, Vec<ProfileType>> = BTreeMap::new();
            for entry in table.iter().map_err(unavailable)? {
                let (k, _) = entry.map_err(unavailable)?;
                if let Some((service, t)) = k.value().rsplit_once('\u{1f}') {
                    if let Some(t) = ProfileType::parse(t) {
                        out.entry(service.to_string()).or_default().push(t);
                    }
                }
            }
            Ok(out
                .into_iter()
                .map(|(s, mut t)| {
                    t.sort();
                    (s, t)
                })
                .collect())
        })
        .await
    }

    async fn purge_expired(&self, now_unix_s: i64) -> Result<usize, StoreError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let n = {
                let mut expiry = txn.open_table(EXPIRY).map_err(unavailable)?;
                let keys = take_expired::<StoreError>(&mut expiry, now_unix_s)?;
                let mut trees = txn.open_table(TREES).map_err(unavailable)?;
                for k in &keys {
                    trees.remove(&k[..]).map_err(unavailable)?;
                }
                keys.len()
            };
            txn.commit().map_err(unavailable)?;
            Ok(n)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(stacks: &[(&str, u64)]) -> StackTree {
        StackTree::from_folded_pairs(stacks)
    }

    fn key(env: &str) -> ProfileKey {
        ProfileKey {
            service: "api".into(),
            profile_type: ProfileType::Cpu,
            labels: [("env".to_string(), env.to_string())].into(),
        }
    }

    #[tokio::test]
    async fn a_redelivered_contribution_leaves_the_minute_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbProfileStore::open(&dir.path().join("profiles.redb")).unwrap();
        let a = tree(&[("main;a", 3)]);
        let b = tree(&[("main;b", 4)]);
        let first = store
            .merge(&key("p"), 600, "c1", &a, 10_000, MinuteLimits::UNBOUNDED)
            .await
            .unwrap();
        assert_eq!(
            first,
            MergeOutcome::Applied {
                minute_total: 3,
                new_minute: true,
                refused: 0
            }
        );
        assert_eq!(
            store
                .merge(&key("p"), 600, "c2", &b, 10_000, MinuteLimits::UNBOUNDED)
                .await
                .unwrap(),
            MergeOutcome::Applied {
                minute_total: 7,
                new_minute: false,
                refused: 0
            }
        );
        // The same contributions again, in another order: nothing changes.
        assert_eq!(
            store
                .merge(&key("p"), 600, "c2", &b, 10_000, MinuteLimits::UNBOUNDED)
                .await
                .unwrap(),
            MergeOutcome::Duplicate
        );
        assert_eq!(
            store
                .merge(&key("p"), 600, "c1", &a, 10_000, MinuteLimits::UNBOUNDED)
                .await
                .unwrap(),
            MergeOutcome::Duplicate
        );
        // Another label set and another minute are other items.
        store
            .merge(&key("q"), 600, "c1", &a, 10_000, MinuteLimits::UNBOUNDED)
            .await
            .unwrap();
        store
            .merge(&key("p"), 660, "c1", &a, 10_000, MinuteLimits::UNBOUNDED)
            .await
            .unwrap();
        let minutes = store
            .minutes("api", ProfileType::Cpu, 600, 660, true)
            .await
            .unwrap();
        assert_eq!(minutes.len(), 2);
        let p = minutes.iter().find(|m| m.labels["env"] == "p").unwrap();
        assert_eq!(p.total, 7);
        let mut sum = a.clone();
        sum.merge(&b);
        assert_eq!(p.tree.as_ref().unwrap(), &sum);
        assert_eq!(
            store
                .minutes("api", ProfileType::Cpu, 0, 10_000, false)
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(store
            .minutes("api", ProfileType::Wall, 0, 10_000, false)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .minutes("ap", ProfileType::Cpu, 0, 10_000, false)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.services().await.unwrap(),
            vec![("api".to_string(), vec![ProfileType::Cpu])]
        );
        // Reopened: still there.
        drop(store);
        let store = RedbProfileStore::open(&dir.path().join("profiles.redb")).unwrap();
        assert_eq!(
            store
                .merge(&key("p"), 600, "c1", &a, 10_000, MinuteLimits::UNBOUNDED)
                .await
                .unwrap(),
            MergeOutcome::Duplicate
        );
        assert_eq!(store.purge_expired(10_001).await.unwrap(), 3);
        assert!(store
            .minutes("api", ProfileType::Cpu, 0, 10_000, false)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn label_sets_and_tree_nodes_per_minute_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbProfileStore::open(&dir.path().join("profiles.redb")).unwrap();
        let limits = MinuteLimits {
            max_nodes: 4,
            max_label_sets: 2,
        };
        let a = tree(&[("main;a", 3)]);
        for env in ["p", "q"] {
            let outcome = store.merge(&key(env), 600, "c1", &a, 10_000, limits).await;
            assert!(matches!(outcome, Ok(MergeOutcome::Applied { .. })));
        }
        // A third label set in the same minute is refused; existing ones and other minutes merge.
        assert_eq!(
            store
                .merge(&key("r"), 600, "c1", &a, 10_000, limits)
                .await
                .unwrap(),
            MergeOutcome::LabelSetLimit
        );
        assert!(matches!(
            store.merge(&key("r"), 660, "c1", &a, 10_000, limits).await,
            Ok(MergeOutcome::Applied { .. })
        ));
        // root, main, a = 3 nodes: `b` fits, `c;d` does not.
        let b = tree(&[("main;a", 1), ("main;b", 2), ("main;c;d", 5)]);
        assert_eq!(
            store
                .merge(&key("p"), 600, "c2", &b, 10_000, limits)
                .await
                .unwrap(),
            MergeOutcome::Applied {
                minute_total: 6,
                new_minute: false,
                refused: 5
            }
        );
        let minutes = store
            .minutes("api", ProfileType::Cpu, 600, 660, true)
            .await
            .unwrap();
        assert_eq!(minutes.len(), 2);
        let p = minutes.iter().find(|m| m.labels["env"] == "p").unwrap();
        assert_eq!(
            p.tree.as_ref().unwrap(),
            &tree(&[("main;a", 4), ("main;b", 2)])
        );
    }
}
