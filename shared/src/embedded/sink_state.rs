//! The local [`SinkStateStore`]: what stateful notification sinks remember per group (the Jira
//! sink's issue per service), rows of the alert store's redb file (table `alert_sink_state`, key
//! `sink \0 group`, value the sink's JSON). The table is created by the first write; a read before
//! it finds nothing.

use async_trait::async_trait;
use redb::{ReadableDatabase, TableDefinition, TableError};

use super::alert_store::RedbAlertStore;
use super::redb_file::blocking;
use crate::ports::{SinkStateStore, StoreError};

/// `sink \0 group` → the sink's JSON.
const SINK_STATE: TableDefinition<&str, &str> = TableDefinition::new("alert_sink_state");

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Sink names and groups are text without NUL (names come from the rules file, groups are service
/// names), so the separator keeps keys apart.
fn key(sink: &str, group: &str) -> String {
    format!("{sink}\0{group}")
}

#[async_trait]
impl SinkStateStore for RedbAlertStore {
    async fn get_sink_state(&self, sink: &str, group: &str) -> Result<Option<String>, StoreError> {
        let key = key(sink, group);
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = match txn.open_table(SINK_STATE) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            };
            Ok(table
                .get(key.as_str())
                .map_err(unavailable)?
                .map(|v| v.value().to_string()))
        })
        .await
    }

    async fn put_sink_state(&self, sink: &str, group: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key(sink, group), value.to_string());
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(SINK_STATE).map_err(unavailable)?;
                table
                    .insert(key.as_str(), value.as_str())
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn delete_sink_state(&self, sink: &str, group: &str) -> Result<bool, StoreError> {
        let key = key(sink, group);
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let existed = {
                let mut table = txn.open_table(SINK_STATE).map_err(unavailable)?;
                let existed = table.remove(key.as_str()).map_err(unavailable)?.is_some();
                existed
            };
            txn.commit().map_err(unavailable)?;
            Ok(existed)
        })
        .await
    }
}
