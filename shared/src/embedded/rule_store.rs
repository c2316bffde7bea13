//! The local [`RuleStore`]: the alert rules written through the API, one row of the alert store's redb
//! file (table `alert_rules`, key `current`, value `[item version][JSON of StoredRules]`). redb runs
//! write transactions one at a time, so "compare version, then write" is atomic.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::alert_store::RedbAlertStore;
use super::redb_file::blocking;
use crate::ports::{RulePut, RuleStore, StoreError, StoredRules};

/// `current` → [item version][JSON of StoredRules]. Created by the first write; a read before it
/// meets no table and answers "no document".
const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("alert_rules");
const KEY: &str = "current";
const ITEM_VERSION: u8 = 1;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: format!("alert_rules/{KEY}"),
        reason: reason.to_string(),
    }
}

fn decode(bytes: &[u8]) -> Result<StoredRules, StoreError> {
    match bytes.split_first() {
        Some((&ITEM_VERSION, json)) => serde_json::from_slice(json).map_err(corrupt),
        Some((version, _)) => Err(corrupt(format!("unknown item version {version}"))),
        None => Err(corrupt("empty item")),
    }
}

#[async_trait]
impl RuleStore for RedbAlertStore {
    async fn current(&self) -> Result<Option<StoredRules>, StoreError> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = match txn.open_table(RULES) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            };
            match table.get(KEY).map_err(unavailable)? {
                Some(value) => decode(value.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put(&self, expected: u64, text: &str, now: i64) -> Result<RulePut, StoreError> {
        let text = text.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let outcome = {
                let mut table = txn.open_table(RULES).map_err(unavailable)?;
                let current = match table.get(KEY).map_err(unavailable)? {
                    Some(value) => decode(value.value())?.version,
                    None => 0,
                };
                if current != expected {
                    RulePut::Conflict { current }
                } else {
                    let stored = StoredRules {
                        version: expected + 1,
                        text,
                        updated_at: now,
                    };
                    let mut bytes = vec![ITEM_VERSION];
                    serde_json::to_writer(&mut bytes, &stored).map_err(corrupt)?;
                    table.insert(KEY, &bytes[..]).map_err(unavailable)?;
                    RulePut::Written {
                        version: stored.version,
                    }
                }
            };
            match outcome {
                RulePut::Written { .. } => txn.commit().map_err(unavailable)?,
                RulePut::Conflict { .. } => txn.abort().map_err(unavailable)?,
            }
            Ok(outcome)
        })
        .await
    }
}
