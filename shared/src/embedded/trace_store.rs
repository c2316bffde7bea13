//! The local [`TraceStore`]: sampled spans in their own redb file, `traces.redb` (redb opens a file
//! once per process, and traces have their own life cycle and TTL).
//!
//! Tables, keyed so that every read is one contiguous range:
//! - spans: `trace id | span id` → the span in the stream record format (compact, versioned);
//! - traces: `trace id` → the trace's item (kept flag, expiry, running [`TraceSummary`]);
//! - by service: `service length (u32 BE) | service | start (u64 BE) | trace id` → (), for kept traces
//!   only: newest first is a reverse range scan;
//! - expiry: `expires_at (order-preserving i64 BE) | trace id` → (), so purging reads only what expired.
//!
//! Every call is one redb transaction on the blocking pool; anything that does not decode is
//! [`TraceStoreError::Corrupt`], never a panic.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use prost::Message;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::ordered_keys::{ordered_i64, service_prefix};
use super::redb_file::{blocking, RedbFile};
use super::{unix_now_ms, EmbeddedError};
use crate::ports::{TraceStore, TraceStoreError, TraceSummary, TraceWrite};
use crate::record::{self, RecordPayload};
use crate::spans::{hex, Span};

/// File name of the store inside the directory given to [`RedbTraceStore::open`].
pub const FILE_NAME: &str = "traces.redb";

const SPANS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trace_spans");
const TRACES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("traces");
const BY_SERVICE: TableDefinition<&[u8], ()> = TableDefinition::new("traces_by_service");
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("trace_expiry");

const ITEM_VERSION: u8 = 1;
/// redb's page cache; local mode shares the machine with everything else.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// redb-backed [`TraceStore`]. Clones share one database.
#[derive(Clone)]
pub struct RedbTraceStore {
    db: RedbFile,
}

impl RedbTraceStore {
    /// Resolves once the file is closed: every clone and every call still running has dropped it.
    pub fn released(&self) -> super::Released {
        self.db.released()
    }

    /// Opens (or creates) `traces.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<RedbTraceStore, EmbeddedError> {
        // `dir` as given (the file's parent may be spelled differently), so an error names it as given.
        std::fs::create_dir_all(dir).map_err(EmbeddedError::io("creating", PathBuf::from(dir)))?;
        Ok(RedbTraceStore {
            db: RedbFile::open(
                &dir.join(FILE_NAME),
                "trace store",
                Some(CACHE_BYTES),
                create_tables,
            )?,
        })
    }
}

fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    for table in [SPANS, TRACES] {
        txn.open_table(table)?;
    }
    for table in [BY_SERVICE, EXPIRY] {
        txn.open_table(table)?;
    }
    Ok(())
}

fn unavailable(e: impl Display) -> TraceStoreError {
    TraceStoreError::Unavailable(e.to_string())
}

fn corrupt(key: &[u8], reason: impl Display) -> TraceStoreError {
    TraceStoreError::Corrupt {
        key: hex(key),
        reason: reason.to_string(),
    }
}

#[async_trait]
impl TraceStore for RedbTraceStore {
    async fn write(&self, writes: &[TraceWrite]) -> Result<(), TraceStoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let writes = writes.to_vec();
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            write_in(&txn, &writes)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Option<Vec<Span>>, TraceStoreError> {
        let trace_id = *trace_id;
        let now = unix_now_ms() / 1000;
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let traces = txn.open_table(TRACES).map_err(unavailable)?;
            let Some(value) = traces.get(&trace_id[..]).map_err(unavailable)? else {
                return Ok(None);
            };
            let item = TraceItem::decode_from(&trace_id, value.value())?;
            // Expired but not yet purged reads as absent, as it will be after the purge.
            if !item.kept || item.expires_at_unix_s < now {
                return Ok(None);
            }
            let spans_table = txn.open_table(SPANS).map_err(unavailable)?;
            let (from, to) = span_range(&trace_id);
            let mut spans = Vec::new();
            for entry in spans_table
                .range::<&[u8]>(&from[..]..=&to[..])
                .map_err(unavailable)?
            {
                let (key, value) = entry.map_err(unavailable)?;
                spans.push(decode_span(key.value(), value.value())?);
            }
            spans.sort_by_key(|s| (s.start_unix_nano, s.span_id));
            Ok(Some(spans))
        })
        .await
    }

    async fn recent_traces(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<TraceSummary>, TraceStoreError> {
        let prefix = service_prefix(service);
        let now = unix_now_ms() / 1000;
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let index = txn.open_table(BY_SERVICE).map_err(unavailable)?;
            let traces = txn.open_table(TRACES).map_err(unavailable)?;
            let mut end = prefix.clone();
            end.extend_from_slice(&[0xff; 24]);
            let mut out = Vec::new();
            for entry in index
                .range::<&[u8]>(&prefix[..]..=&end[..])
                .map_err(unavailable)?
                .rev()
            {
                if out.len() >= limit {
                    break;
                }
                let (key, ()) = entry.map(|(k, _)| (k, ())).map_err(unavailable)?;
                let Some(trace_id) = trailing_trace_id(key.value()) else {
                    continue;
                };
                let Some(value) = traces.get(&trace_id[..]).map_err(unavailable)? else {
                    continue;
                };
                let item = TraceItem::decode_from(&trace_id, value.value())?;
                if item.kept && item.expires_at_unix_s >= now {
                    out.push(item.summary);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, TraceStoreError> {
        blocking(&self.db, move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let deleted = purge_in(&txn, now_unix_s)?;
            txn.commit().map_err(unavailable)?;
            Ok(deleted)
        })
        .await
    }
}

/// Applies every [`TraceWrite`] inside the caller's transaction, in order.
fn write_in(txn: &WriteTransaction, writes: &[TraceWrite]) -> Result<(), TraceStoreError> {
    let mut traces = txn.open_table(TRACES).map_err(unavailable)?;
    let mut spans = txn.open_table(SPANS).map_err(unavailable)?;
    let mut index = txn.open_table(BY_SERVICE).map_err(unavailable)?;
    let mut expiry = txn.open_table(EXPIRY).map_err(unavailable)?;
    for write in writes {
        let trace_id = write.trace_id;
        let old = match traces.get(&trace_id[..]).map_err(unavailable)? {
            Some(value) => Some(TraceItem::decode_from(&trace_id, value.value())?),
            None => None,
        };
        let mut item = old.clone().unwrap_or_else(|| TraceItem {
            kept: false,
            expires_at_unix_s: write.expires_at_unix_s,
            summary: TraceSummary::empty(trace_id),
        });
        for span in write.spans.iter().filter(|s| s.trace_id == trace_id) {
            let key = span_key(&trace_id, &span.span_id);
            let encoded = encode_span(span);
            // Only a span the trace did not hold yet changes its summary: rewriting is idempotent.
            if spans
                .insert(&key[..], &encoded[..])
                .map_err(unavailable)?
                .is_none()
            {
                item.summary.absorb(span);
            }
        }
        item.kept |= write.kept;
        item.expires_at_unix_s = item.expires_at_unix_s.max(write.expires_at_unix_s);

        if let Some(old) = old.as_ref().filter(|old| old.kept) {
            for key in index_keys(old) {
                index.remove(&key[..]).map_err(unavailable)?;
            }
        }
        if item.kept {
            for key in index_keys(&item) {
                index.insert(&key[..], ()).map_err(unavailable)?;
            }
        }
        if let Some(old) = &old {
            expiry
                .remove(&expiry_key(old.expires_at_unix_s, &trace_id)[..])
                .map_err(unavailable)?;
        }
        expiry
            .insert(&expiry_key(item.expires_at_unix_s, &trace_id)[..], ())
            .map_err(unavailable)?;
        traces
            .insert(&trace_id[..], &item.encode()[..])
            .map_err(unavailable)?;
    }
    Ok(())
}

fn purge_in(txn: &WriteTransaction, now: i64) -> Result<u64, TraceStoreError> {
    let mut traces = txn.open_table(TRACES).map_err(unavailable)?;
    let mut spans = txn.open_table(SPANS).map_err(unavailable)?;
    let mut index = txn.open_table(BY_SERVICE).map_err(unavailable)?;
    let mut expiry = txn.open_table(EXPIRY).map_err(unavailable)?;
    let upper = ordered_i64(now);
    let mut expired = Vec::new();
    for entry in expiry.range::<&[u8]>(..&upper[..]).map_err(unavailable)? {
        let (key, _) = entry.map_err(unavailable)?;
        expired.push(key.value().to_vec());
    }
    let mut deleted = 0;
    for key in expired {
        expiry.remove(&key[..]).map_err(unavailable)?;
        let Some(trace_id) = trailing_trace_id(&key) else {
            continue;
        };
        let item = match traces.remove(&trace_id[..]).map_err(unavailable)? {
            Some(value) => TraceItem::decode_from(&trace_id, value.value()).ok(),
            None => continue,
        };
        deleted += 1;
        if let Some(item) = item.filter(|i| i.kept) {
            for key in index_keys(&item) {
                index.remove(&key[..]).map_err(unavailable)?;
            }
        }
        let (from, to) = span_range(&trace_id);
        let mut span_keys = Vec::new();
        for entry in spans
            .range::<&[u8]>(&from[..]..=&to[..])
            .map_err(unavailable)?
        {
            let (key, _) = entry.map_err(unavailable)?;
            span_keys.push(key.value().to_vec());
        }
        for key in span_keys {
            spans.remove(&key[..]).map_err(unavailable)?;
        }
    }
    Ok(deleted)
}

// ---- keys ----

fn span_key(trace_id: &[u8; 16], span_id: &[u8; 8]) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(trace_id);
    key[16..].copy_from_slice(span_id);
    key
}

fn span_range(trace_id: &[u8; 16]) -> ([u8; 24], [u8; 24]) {
    (span_key(trace_id, &[0; 8]), span_key(trace_id, &[0xff; 8]))
}

fn index_keys(item: &TraceItem) -> Vec<Vec<u8>> {
    item.summary
        .services
        .iter()
        .map(|service| {
            let mut key = service_prefix(service);
            key.extend_from_slice(&item.summary.start_unix_nano.to_be_bytes());
            key.extend_from_slice(&item.summary.trace_id);
            key
        })
        .collect()
}

fn trailing_trace_id(key: &[u8]) -> Option<[u8; 16]> {
    key.len()
        .checked_sub(16)
        .and_then(|at| key[at..].try_into().ok())
}

fn expiry_key(expires_at: i64, trace_id: &[u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&ordered_i64(expires_at));
    key[8..].copy_from_slice(trace_id);
    key
}

// ---- values ----

fn encode_span(span: &Span) -> Vec<u8> {
    // One span alone always makes exactly one record.
    record::encode_spans(std::slice::from_ref(span))
        .into_iter()
        .next()
        .map(|entry| entry.data.to_vec())
        .unwrap_or_default()
}

fn decode_span(key: &[u8], value: &[u8]) -> Result<Span, TraceStoreError> {
    match record::decode(value) {
        Ok(RecordPayload::Spans(spans)) => spans
            .into_iter()
            .next()
            .ok_or_else(|| corrupt(key, "span record holds no span")),
        Ok(RecordPayload::Metrics(_)) => Err(corrupt(key, "holds metrics, not a span")),
        Err(e) => Err(corrupt(key, e)),
    }
}

/// A trace's item.
#[derive(Debug, Clone)]
struct TraceItem {
    kept: bool,
    expires_at_unix_s: i64,
    summary: TraceSummary,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TraceItemMessage {
    #[prost(bool, tag = "1")]
    kept: bool,
    #[prost(int64, tag = "2")]
    expires_at_unix_s: i64,
    #[prost(fixed64, tag = "3")]
    start_unix_nano: u64,
    #[prost(uint64, tag = "4")]
    duration_nanos: u64,
    #[prost(uint64, tag = "5")]
    span_count: u64,
    #[prost(bool, tag = "6")]
    error: bool,
    #[prost(string, optional, tag = "7")]
    root_service: Option<String>,
    #[prost(string, optional, tag = "8")]
    root_name: Option<String>,
    #[prost(string, repeated, tag = "9")]
    services: Vec<String>,
}

impl TraceItem {
    fn encode(&self) -> Vec<u8> {
        let s = &self.summary;
        let message = TraceItemMessage {
            kept: self.kept,
            expires_at_unix_s: self.expires_at_unix_s,
            start_unix_nano: s.start_unix_nano,
            duration_nanos: s.duration_nanos,
            span_count: s.span_count,
            error: s.error,
            root_service: s.root_service.clone(),
            root_name: s.root_name.clone(),
            services: s.services.clone(),
        };
        let mut out = Vec::with_capacity(1 + message.encoded_len());
        out.push(ITEM_VERSION);
        message.encode_raw(&mut out);
        out
    }

    fn decode_from(trace_id: &[u8; 16], bytes: &[u8]) -> Result<TraceItem, TraceStoreError> {
        let body = match bytes.split_first() {
            Some((&ITEM_VERSION, body)) => body,
            Some((version, _)) => {
                return Err(corrupt(trace_id, format!("unknown item version {version}")))
            }
            None => return Err(corrupt(trace_id, "empty item")),
        };
        let message = TraceItemMessage::decode(body).map_err(|e| corrupt(trace_id, e))?;
        Ok(TraceItem {
            kept: message.kept,
            expires_at_unix_s: message.expires_at_unix_s,
            summary: TraceSummary {
                trace_id: *trace_id,
                root_service: message.root_service,
                root_name: message.root_name,
                start_unix_nano: message.start_unix_nano,
                duration_nanos: message.duration_nanos,
                span_count: message.span_count,
                error: message.error,
                services: message.services,
            },
        })
    }
}
