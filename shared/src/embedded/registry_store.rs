//! The local [`RegistryStore`]: one redb table of instance records keyed by
//! `service \x1f instance \x1f source`, each value the record as JSON behind a version byte. redb runs
//! write transactions one at a time, so every read-then-write below is atomic.

use std::path::Path;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::redb_file::{blocking, RedbFile};
use super::EmbeddedError;
use crate::ports::registry::{InstanceRecord, InstanceSource, PutKind, RegistryStore};
use crate::ports::StoreError;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_records");
const ITEM_VERSION: u8 = 1;
/// A small table: redb's default cache would let it grow with the file.
const CACHE_BYTES: usize = 2 * 1024 * 1024;

/// redb-backed [`RegistryStore`]. Clones share one database.
#[derive(Clone)]
pub struct RedbRegistryStore {
    db: RedbFile,
}

impl RedbRegistryStore {
    /// Resolves once the file is closed: every clone and every call still running has dropped it.
    pub fn released(&self) -> super::Released {
        self.db.released()
    }

    pub fn open(path: &Path) -> Result<RedbRegistryStore, EmbeddedError> {
        Ok(RedbRegistryStore {
            db: RedbFile::open(path, "registry store", Some(CACHE_BYTES), create_tables)?,
        })
    }
}

fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(RECORDS)?;
    Ok(())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn key(service: &str, instance: &str, source: InstanceSource) -> String {
    format!("{service}\u{1f}{instance}\u{1f}{}", source.as_str())
}

fn encode(record: &InstanceRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![ITEM_VERSION];
    serde_json::to_writer(&mut out, record).map_err(|e| StoreError::Corrupt {
        key: key(&record.service, &record.instance, record.source),
        reason: format!("cannot encode: {e}"),
    })?;
    Ok(out)
}

fn decode(bytes: &[u8], key: &str) -> Result<InstanceRecord, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    match bytes.split_first() {
        Some((&ITEM_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))
        }
        Some((version, _)) => Err(corrupt(format!("unknown item version {version}"))),
        None => Err(corrupt("empty item".into())),
    }
}

fn read(txn: &WriteTransaction, key: &str) -> Result<Option<InstanceRecord>, StoreError> {
    let table = txn.open_table(RECORDS).map_err(unavailable)?;
    let value = table.get(key).map_err(unavailable)?;
    value.map(|v| decode(v.value(), key)).transpose()
}

fn write(txn: &WriteTransaction, record: &InstanceRecord) -> Result<(), StoreError> {
    let mut table = txn.open_table(RECORDS).map_err(unavailable)?;
    let key = key(&record.service, &record.instance, record.source);
    table
        .insert(key.as_str(), &encode(record)?[..])
        .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl RegistryStore for RedbRegistryStore {
    async fn put(&self, record: &InstanceRecord) -> Result<PutKind, StoreError> {
        let mut record = record.clone();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let key = key(&record.service, &record.instance, record.source);
            let kind = match read(&txn, &key)? {
                Some(stored) if stored.is_live(record.last_seen) => {
                    record.first_seen = stored.first_seen.min(record.first_seen);
                    PutKind::Updated
                }
                _ => PutKind::Created,
            };
            write(&txn, &record)?;
            txn.commit().map_err(unavailable)?;
            Ok(kind)
        })
        .await
    }

    async fn renew(
        &self,
        service: &str,
        instance: &str,
        source: InstanceSource,
        now: i64,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let key = key(service, instance, source);
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let Some(mut record) = read(&txn, &key)? else {
                return Ok(None);
            };
            let Some(ttl) = record.lease_ttl_s.filter(|_| record.is_live(now)) else {
                return Ok(None);
            };
            record.last_seen = now;
            record.expires_at = now.saturating_add(ttl);
            write(&txn, &record)?;
            txn.commit().map_err(unavailable)?;
            Ok(Some(record))
        })
        .await
    }

    async fn remove(
        &self,
        service: &str,
        instance: &str,
        source: InstanceSource,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let key = key(service, instance, source);
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let removed = {
                let mut table = txn.open_table(RECORDS).map_err(unavailable)?;
                let removed = table.remove(key.as_str()).map_err(unavailable)?;
                removed.map(|v| decode(v.value(), &key)).transpose()?
            };
            txn.commit().map_err(unavailable)?;
            Ok(removed)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(RECORDS).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(unavailable)? {
                let (key, value) = entry.map_err(unavailable)?;
                out.push(decode(value.value(), key.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn remove_expired(&self, now: i64) -> Result<Vec<InstanceRecord>, StoreError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let removed = {
                let mut table = txn.open_table(RECORDS).map_err(unavailable)?;
                let mut lapsed = Vec::new();
                for entry in table.iter().map_err(unavailable)? {
                    let (key, value) = entry.map_err(unavailable)?;
                    let record = decode(value.value(), key.value())?;
                    if !record.is_live(now) {
                        lapsed.push((key.value().to_string(), record));
                    }
                }
                for (key, _) in &lapsed {
                    table.remove(key.as_str()).map_err(unavailable)?;
                }
                lapsed.into_iter().map(|(_, r)| r).collect::<Vec<_>>()
            };
            txn.commit().map_err(unavailable)?;
            Ok(removed)
        })
        .await
    }
}
