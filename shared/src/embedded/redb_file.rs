//! What the redb stores (metrics, traces, alerts) do alike with their file: open it with every table
//! created up front ([`RedbFile::open`]), and run each port call as one closure on the blocking pool
//! ([`blocking`]).
//!
//! redb opens a file only once per process, so each store keeps its own [`RedbFile`]; only this code is
//! shared.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, WriteTransaction};

use super::released::{ReleaseGuard, Released};
use super::EmbeddedError;
use crate::ports::StoreError;

/// A port error that can say the store is unavailable.
pub(super) trait Unavailable {
    fn unavailable(reason: String) -> Self;
}

impl Unavailable for StoreError {
    fn unavailable(reason: String) -> Self {
        StoreError::Unavailable(reason)
    }
}

/// One store's redb database. Clones share it.
#[derive(Clone)]
pub(super) struct RedbFile {
    db: Arc<Held>,
    released: Released,
    /// What the store is called in errors ("trace store" → "trace store task failed: …").
    name: &'static str,
}

impl RedbFile {
    /// Opens (or creates) the database at `path`, creating its directory, with a page cache of
    /// `cache_bytes` (`None`: redb's default), and creates every table with `create_tables` so read
    /// transactions never meet a missing one.
    pub(super) fn open(
        path: &Path,
        name: &'static str,
        cache_bytes: Option<usize>,
        create_tables: impl FnOnce(&WriteTransaction) -> Result<(), redb::TableError>,
    ) -> Result<RedbFile, EmbeddedError> {
        let database_error = |reason: String| EmbeddedError::Database {
            path: PathBuf::from(path),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(EmbeddedError::io("creating", parent))?;
        }
        let mut builder = Database::builder();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder
            .create(path)
            .map_err(|e| database_error(e.to_string()))?;
        let txn = db
            .begin_write()
            .map_err(|e| database_error(e.to_string()))?;
        create_tables(&txn).map_err(|e| database_error(e.to_string()))?;
        txn.commit().map_err(|e| database_error(e.to_string()))?;
        let (guard, released) = ReleaseGuard::new();
        Ok(RedbFile {
            db: Arc::new(Held { db, _guard: guard }),
            released,
            name,
        })
    }
}

/// The database and, dropped after it (fields drop in order), the guard that signals it closed.
struct Held {
    db: Database,
    _guard: ReleaseGuard,
}

impl RedbFile {
    /// Resolves once this file is closed: every clone and every port call still running on the
    /// blocking pool has dropped it.
    pub(super) fn released(&self) -> Released {
        self.released.clone()
    }
}

/// Runs `work` on `file`'s database on the blocking pool: redb does synchronous file I/O.
pub(super) async fn blocking<T, E, F>(file: &RedbFile, work: F) -> Result<T, E>
where
    T: Send + 'static,
    E: Unavailable + Send + 'static,
    F: FnOnce(&Database) -> Result<T, E> + Send + 'static,
{
    let db = file.db.clone();
    tokio::task::spawn_blocking(move || work(&db.db))
        .await
        .map_err(|e| E::unavailable(format!("{} task failed: {e}", file.name)))?
}
