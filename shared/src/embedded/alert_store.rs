//! The local [`AlertStore`]: alert states, transition history, silences and dead letters in one redb
//! file (beside the metric store's: redb opens a file once per process, and alerts have their own life
//! cycle).
//!
//! A conditional state write and its history entries are one redb write transaction, and redb runs
//! write transactions one at a time, so "compare version, then write" is atomic. History keys are
//! `at (order-preserving i64 BE) | sequence (u64 BE)`, so a time range is one contiguous scan; expiry
//! has its own time-first index, as in the metric store, so purging reads only what has expired.

use std::path::Path;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ordered_keys::{ordered_i64, take_expired, time_key};
use super::redb_file::{blocking, RedbFile};
use super::EmbeddedError;
use crate::alerts::notify::DeadLetter;
use crate::alerts::silence::Silence;
use crate::alerts::state::{AlertState, AlertTransition};
use crate::ports::{AlertStore, AlertStoreError, PutOutcome};

/// fingerprint → [version][JSON of AlertState].
const STATES: TableDefinition<&str, &[u8]> = TableDefinition::new("alert_states");
/// at | sequence → [version][JSON of AlertTransition].
const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("alert_history");
/// expires_at | history key → ().
const HISTORY_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("alert_history_expiry");
/// silence id → [version][JSON of Silence].
const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("alert_silences");
/// failed_at | id → [version][JSON of DeadLetter].
const DEAD_LETTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("alert_dead_letters");
/// expires_at | dead letter key → ().
const DEAD_LETTER_EXPIRY: TableDefinition<&[u8], ()> =
    TableDefinition::new("alert_dead_letter_expiry");
/// Counters (the history sequence).
const META: TableDefinition<&str, u64> = TableDefinition::new("alert_meta");

const HISTORY_SEQUENCE: &str = "history_sequence";
const ITEM_VERSION: u8 = 1;

/// redb-backed [`AlertStore`]. Clones share one database.
/// redb's page cache for alert states, history and silences: small tables. redb's default (1 GiB)
/// would let the cache grow with the file.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct RedbAlertStore {
    pub(super) db: RedbFile,
}

impl RedbAlertStore {
    /// Resolves once the file is closed: every clone and every call still running has dropped it.
    pub fn released(&self) -> super::Released {
        self.db.released()
    }

    /// Opens (or creates) the alert store at `path`.
    pub fn open(path: &Path) -> Result<RedbAlertStore, EmbeddedError> {
        Ok(RedbAlertStore {
            db: RedbFile::open(path, "alert store", Some(CACHE_BYTES), create_tables)?,
        })
    }
}

fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(STATES)?;
    txn.open_table(HISTORY)?;
    txn.open_table(HISTORY_EXPIRY)?;
    txn.open_table(SILENCES)?;
    txn.open_table(DEAD_LETTERS)?;
    txn.open_table(DEAD_LETTER_EXPIRY)?;
    txn.open_table(META)?;
    Ok(())
}

fn unavailable(e: impl std::fmt::Display) -> AlertStoreError {
    AlertStoreError::Unavailable(e.to_string())
}

fn encode<T: Serialize>(value: &T, key: &str) -> Result<Vec<u8>, AlertStoreError> {
    let mut out = vec![ITEM_VERSION];
    serde_json::to_writer(&mut out, value).map_err(|e| AlertStoreError::Corrupt {
        key: key.to_string(),
        reason: format!("cannot encode: {e}"),
    })?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, AlertStoreError> {
    let corrupt = |reason: String| AlertStoreError::Corrupt {
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

fn next_sequence(txn: &WriteTransaction) -> Result<u64, AlertStoreError> {
    let mut meta = txn.open_table(META).map_err(unavailable)?;
    let next = meta
        .get(HISTORY_SEQUENCE)
        .map_err(unavailable)?
        .map_or(0, |v| v.value())
        + 1;
    meta.insert(HISTORY_SEQUENCE, next).map_err(unavailable)?;
    Ok(next)
}

fn append_history(
    txn: &WriteTransaction,
    entries: &[AlertTransition],
    expires_at: i64,
) -> Result<(), AlertStoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut history = txn.open_table(HISTORY).map_err(unavailable)?;
    let mut expiry = txn.open_table(HISTORY_EXPIRY).map_err(unavailable)?;
    for entry in entries {
        let key = time_key(entry.at, &next_sequence(txn)?.to_be_bytes());
        history
            .insert(&key[..], &encode(entry, &entry.fingerprint)?[..])
            .map_err(unavailable)?;
        expiry
            .insert(&time_key(expires_at, &key)[..], ())
            .map_err(unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl AlertStore for RedbAlertStore {
    async fn get_state(&self, fingerprint: &str) -> Result<Option<AlertState>, AlertStoreError> {
        let fingerprint = fingerprint.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let states = txn.open_table(STATES).map_err(unavailable)?;
            match states.get(fingerprint.as_str()).map_err(unavailable)? {
                Some(value) => decode(value.value(), &fingerprint).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_states(&self) -> Result<Vec<AlertState>, AlertStoreError> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let states = txn.open_table(STATES).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in states.iter().map_err(unavailable)? {
                let (key, value) = entry.map_err(unavailable)?;
                out.push(decode(value.value(), key.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_state(
        &self,
        state: &AlertState,
        expected_version: u64,
        history: &[AlertTransition],
        history_expires_at: i64,
    ) -> Result<PutOutcome, AlertStoreError> {
        let mut state = state.clone();
        let history = history.to_vec();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let stored: Option<AlertState> = {
                let states = txn.open_table(STATES).map_err(unavailable)?;
                let value = states
                    .get(state.fingerprint.as_str())
                    .map_err(unavailable)?;
                match value {
                    Some(v) => Some(decode(v.value(), &state.fingerprint)?),
                    None => None,
                }
            };
            let stored_version = stored.as_ref().map_or(0, |s| s.version);
            if stored_version != expected_version {
                txn.abort().map_err(unavailable)?;
                return Ok(PutOutcome::Conflict {
                    current: stored.map(Box::new),
                });
            }
            state.version = expected_version + 1;
            {
                let mut states = txn.open_table(STATES).map_err(unavailable)?;
                states
                    .insert(
                        state.fingerprint.as_str(),
                        &encode(&state, &state.fingerprint)?[..],
                    )
                    .map_err(unavailable)?;
            }
            append_history(&txn, &history, history_expires_at)?;
            txn.commit().map_err(unavailable)?;
            Ok(PutOutcome::Written {
                version: state.version,
            })
        })
        .await
    }

    async fn history(
        &self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, AlertStoreError> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let history = txn.open_table(HISTORY).map_err(unavailable)?;
            let (lower, upper) = (ordered_i64(from), ordered_i64(to));
            let mut out = Vec::new();
            // Newest first: with a limit, the latest transitions are the ones that matter.
            for entry in history
                .range::<&[u8]>(&lower[..]..&upper[..])
                .map_err(unavailable)?
                .rev()
            {
                let (key, value) = entry.map_err(unavailable)?;
                out.push(decode(
                    value.value(),
                    &format!("history {:?}", key.value()),
                )?);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), AlertStoreError> {
        let silence = silence.clone();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut silences = txn.open_table(SILENCES).map_err(unavailable)?;
                silences
                    .insert(silence.id.as_str(), &encode(&silence, &silence.id)?[..])
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn list_silences(&self) -> Result<Vec<Silence>, AlertStoreError> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let silences = txn.open_table(SILENCES).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in silences.iter().map_err(unavailable)? {
                let (key, value) = entry.map_err(unavailable)?;
                out.push(decode(value.value(), key.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_silence(&self, id: &str) -> Result<bool, AlertStoreError> {
        let id = id.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let existed = {
                let mut silences = txn.open_table(SILENCES).map_err(unavailable)?;
                let removed = silences.remove(id.as_str()).map_err(unavailable)?;
                removed.is_some()
            };
            txn.commit().map_err(unavailable)?;
            Ok(existed)
        })
        .await
    }

    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), AlertStoreError> {
        let letter = letter.clone();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut letters = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
                let mut expiry = txn.open_table(DEAD_LETTER_EXPIRY).map_err(unavailable)?;
                let key = time_key(letter.failed_at, letter.id.as_bytes());
                letters
                    .insert(&key[..], &encode(&letter, &letter.id)?[..])
                    .map_err(unavailable)?;
                expiry
                    .insert(&time_key(letter.expires_at, &key)[..], ())
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, AlertStoreError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let letters = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in letters.iter().map_err(unavailable)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = entry.map_err(unavailable)?;
                out.push(decode(
                    value.value(),
                    &format!("dead letter {:?}", key.value()),
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, AlertStoreError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let mut deleted = 0;
            {
                let mut history = txn.open_table(HISTORY).map_err(unavailable)?;
                let mut expiry = txn.open_table(HISTORY_EXPIRY).map_err(unavailable)?;
                for key in take_expired::<AlertStoreError>(&mut expiry, now_unix_s)? {
                    if history.remove(&key[..]).map_err(unavailable)?.is_some() {
                        deleted += 1;
                    }
                }
            }
            {
                let mut letters = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
                let mut expiry = txn.open_table(DEAD_LETTER_EXPIRY).map_err(unavailable)?;
                for key in take_expired::<AlertStoreError>(&mut expiry, now_unix_s)? {
                    if letters.remove(&key[..]).map_err(unavailable)?.is_some() {
                        deleted += 1;
                    }
                }
            }
            {
                // Silences are few; an ended one goes at the first purge after its end.
                let mut silences = txn.open_table(SILENCES).map_err(unavailable)?;
                let mut ended = Vec::new();
                for entry in silences.iter().map_err(unavailable)? {
                    let (key, value) = entry.map_err(unavailable)?;
                    match decode::<Silence>(value.value(), key.value()) {
                        Ok(s) if s.ends_at <= now_unix_s => ended.push(key.value().to_string()),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "keeping a corrupt silence item")
                        }
                    }
                }
                for id in ended {
                    if silences.remove(id.as_str()).map_err(unavailable)?.is_some() {
                        deleted += 1;
                    }
                }
            }
            txn.commit().map_err(unavailable)?;
            Ok(deleted)
        })
        .await
    }
}
