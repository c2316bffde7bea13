//! Sampled traces on DynamoDB (`TRACES_TABLE`, see `infra/dynamodb.md`): the [`TraceStore`] the
//! aggregator writes and the query function reads.
//!
//! Items, all in one `pk`/`sk` table with TTL on `expires_at`:
//! - span: `pk = <trace id hex>`, `sk = span#<span id hex>`, `span` = the span in the stream record
//!   format;
//! - trace: `pk = <trace id hex>`, `sk = meta`: kept flag, expiry, the [`TraceSummary`] and a
//!   `version` for optimistic concurrency;
//! - listing: `pk = svc#<service>`, `sk = <start, 20 digits>#<trace id hex>`, for kept traces only,
//!   so "recent traces of a service" is one Query newest first, never a Scan.
//!
//! A write upserts its spans, then recomputes the summary from every stored span of the trace and
//! stores it with a condition on `version`. Recomputing (rather than adding the new spans to the old
//! summary) makes a replay after a crash harmless, and the version condition makes the last summary
//! written include every span whose writer finished: a writer that loses the race reads again.
//! Listing items are checked against the trace item on read, so one left behind by a crash between
//! the two writes is never shown.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::item::{self, get_n, get_opt_b, get_s, get_string_list, Item, ItemError};
use super::state::{batch_get, batch_write};
use super::{now_unix_s, query_all, CONFLICT_RETRY};
use crate::aws::errors;
use crate::aws::retry::RetryPolicy;
use crate::ports::{TraceStore, TraceStoreError, TraceSummary, TraceWrite};
use crate::record::{self, RecordPayload};
use crate::spans::{hex, Span};

const META_SK: &str = "meta";
const SPAN_SK_PREFIX: &str = "span#";
const LISTING_PK_PREFIX: &str = "svc#";
/// Span items carry their TTL rounded up to the hour: a trace's expiry moves later with almost every
/// write, and rounding lets most writes leave the already stored spans alone.
const SPAN_TTL_GRANULARITY_S: i64 = 3600;
/// DynamoDB refuses items above 400 KB; a span this large is dropped (with a warning) rather than
/// failing the whole batch forever.
const MAX_SPAN_BYTES: usize = 350 * 1024;

/// The trace store on DynamoDB.
pub struct DynamoTraceStore {
    client: Client,
    table: String,
    retry: RetryPolicy,
}

impl DynamoTraceStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), table)
    }

    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        DynamoTraceStore {
            client,
            table: table.into(),
            retry: CONFLICT_RETRY,
        }
    }

    /// Replaces the retry policy for version conflicts and unprocessed batch items.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn table(&self) -> Result<&str, TraceStoreError> {
        super::table(&self.table, "TRACES_TABLE")
    }
}

// ---- errors ----

/// Throttling → [`TraceStoreError::Throttled`] (the caller backs off), anything else → `Unavailable`.
fn trace_error<E, R>(operation: &str, error: &SdkError<E, R>) -> TraceStoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    TraceStoreError::from(super::store_error(operation, error))
}

fn corrupt(pk: &str, sk: &str, error: impl std::fmt::Display) -> TraceStoreError {
    TraceStoreError::Corrupt {
        key: format!("{pk}/{sk}"),
        reason: error.to_string(),
    }
}

// ---- keys ----

fn trace_pk(trace_id: &[u8; 16]) -> String {
    hex(trace_id)
}

fn span_sk(span_id: &[u8; 8]) -> String {
    format!("{SPAN_SK_PREFIX}{}", hex(span_id))
}

fn listing_pk(service: &str) -> String {
    format!("{LISTING_PK_PREFIX}{service}")
}

/// Zero-padded so that string order is numeric order.
fn listing_sk(start_unix_nano: u64, trace_id: &[u8; 16]) -> String {
    format!("{start_unix_nano:020}#{}", hex(trace_id))
}

fn parse_listing_sk(sk: &str) -> Option<(u64, [u8; 16])> {
    let (start, trace) = sk.split_once('#')?;
    Some((start.parse().ok()?, parse_hex(trace)?))
}

fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    ::hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn key(pk: String, sk: String) -> Item {
    Item::from([
        ("pk".to_string(), item::s(pk)),
        ("sk".to_string(), item::s(sk)),
    ])
}

fn span_ttl(expires_at: i64) -> i64 {
    expires_at
        .div_euclid(SPAN_TTL_GRANULARITY_S)
        .saturating_add(1)
        .saturating_mul(SPAN_TTL_GRANULARITY_S)
}

// ---- items ----

/// A trace's `meta` item.
#[derive(Debug, Clone, PartialEq)]
struct TraceMeta {
    kept: bool,
    expires_at_unix_s: i64,
    summary: TraceSummary,
    version: u64,
}

impl TraceMeta {
    /// Listing keys (`pk`, `sk`) of the trace: one per service, for kept traces only.
    fn listing_keys(&self) -> BTreeSet<(String, String)> {
        if !self.kept {
            return BTreeSet::new();
        }
        let sk = listing_sk(self.summary.start_unix_nano, &self.summary.trace_id);
        self.summary
            .services
            .iter()
            .map(|service| (listing_pk(service), sk.clone()))
            .collect()
    }

    fn same_content(&self, other: &TraceMeta) -> bool {
        self.kept == other.kept
            && self.expires_at_unix_s == other.expires_at_unix_s
            && self.summary == other.summary
    }

    fn to_item(&self) -> Item {
        let s = &self.summary;
        let mut out = key(trace_pk(&s.trace_id), META_SK.to_string());
        out.insert("kept".into(), AttributeValue::Bool(self.kept));
        out.insert("expires_at".into(), item::n(self.expires_at_unix_s));
        out.insert("version".into(), item::n(self.version));
        out.insert("start".into(), item::n(s.start_unix_nano));
        out.insert("duration".into(), item::n(s.duration_nanos));
        out.insert("span_count".into(), item::n(s.span_count));
        out.insert("error".into(), AttributeValue::Bool(s.error));
        if let Some(service) = &s.root_service {
            out.insert("root_service".into(), item::s(service.as_str()));
        }
        if let Some(name) = &s.root_name {
            out.insert("root_name".into(), item::s(name.as_str()));
        }
        out.insert(
            "services".into(),
            AttributeValue::L(s.services.iter().map(|v| item::s(v.as_str())).collect()),
        );
        out
    }

    fn from_item(trace_id: [u8; 16], item: &Item) -> Result<TraceMeta, ItemError> {
        let optional_s = |name: &str| -> Result<Option<String>, ItemError> {
            match item.get(name) {
                None => Ok(None),
                Some(_) => get_s(item, name).map(|v| Some(v.to_string())),
            }
        };
        Ok(TraceMeta {
            kept: get_bool(item, "kept")?,
            expires_at_unix_s: get_n(item, "expires_at")?,
            version: get_n(item, "version")?,
            summary: TraceSummary {
                trace_id,
                root_service: optional_s("root_service")?,
                root_name: optional_s("root_name")?,
                start_unix_nano: get_n(item, "start")?,
                duration_nanos: get_n(item, "duration")?,
                span_count: get_n(item, "span_count")?,
                error: get_bool(item, "error")?,
                services: get_string_list(item, "services")?,
            },
        })
    }
}

fn get_bool(item: &Item, attribute: &str) -> Result<bool, ItemError> {
    match item.get(attribute) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        Some(_) => Err(ItemError {
            attribute: attribute.to_string(),
            reason: "is not a boolean".into(),
        }),
        None => Err(ItemError {
            attribute: attribute.to_string(),
            reason: "is missing".into(),
        }),
    }
}

fn encode_span(span: &Span) -> Vec<u8> {
    // One span alone always makes exactly one record.
    record::encode_spans(std::slice::from_ref(span))
        .into_iter()
        .next()
        .map(|entry| entry.data.to_vec())
        .unwrap_or_default()
}

fn span_item(trace_pk: &str, span_id: &[u8; 8], encoded: Vec<u8>, ttl: i64) -> Item {
    let mut out = key(trace_pk.to_string(), span_sk(span_id));
    out.insert("span".into(), item::b(encoded));
    out.insert("expires_at".into(), item::n(ttl));
    out
}

fn put(item: Item) -> Result<WriteRequest, TraceStoreError> {
    let request = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| TraceStoreError::Unavailable(format!("PutRequest: {e}")))?;
    Ok(WriteRequest::builder().put_request(request).build())
}

fn delete(pk: String, sk: String) -> Result<WriteRequest, TraceStoreError> {
    let request = DeleteRequest::builder()
        .set_key(Some(key(pk, sk)))
        .build()
        .map_err(|e| TraceStoreError::Unavailable(format!("DeleteRequest: {e}")))?;
    Ok(WriteRequest::builder().delete_request(request).build())
}

/// What one Query of a trace's partition finds.
struct StoredTrace {
    meta: Option<TraceMeta>,
    /// Each span with the TTL its item carries.
    spans: Vec<(Span, i64)>,
}

fn decode_trace(trace_id: [u8; 16], items: &[Item]) -> Result<StoredTrace, TraceStoreError> {
    let pk = trace_pk(&trace_id);
    let mut stored = StoredTrace {
        meta: None,
        spans: Vec::new(),
    };
    for item in items {
        let sk = get_s(item, "sk").map_err(|e| corrupt(&pk, "?", e))?;
        if sk == META_SK {
            stored.meta =
                Some(TraceMeta::from_item(trace_id, item).map_err(|e| corrupt(&pk, sk, e))?);
        } else if sk.starts_with(SPAN_SK_PREFIX) {
            let bytes = get_opt_b(item, "span")
                .map_err(|e| corrupt(&pk, sk, e))?
                .ok_or_else(|| corrupt(&pk, sk, "attribute `span` is missing"))?;
            let span = match record::decode(bytes) {
                Ok(RecordPayload::Spans(spans)) => spans
                    .into_iter()
                    .next()
                    .ok_or_else(|| corrupt(&pk, sk, "span record holds no span"))?,
                Ok(RecordPayload::Metrics(_)) => {
                    return Err(corrupt(&pk, sk, "holds metrics, not a span"))
                }
                Err(e) => return Err(corrupt(&pk, sk, e)),
            };
            let ttl = get_n(item, "expires_at").map_err(|e| corrupt(&pk, sk, e))?;
            stored.spans.push((span, ttl));
        }
    }
    Ok(stored)
}

/// The summary of every stored span. Spans are folded in start order, so the root is the earliest
/// parentless span whatever order the writes came in.
fn summarize(trace_id: [u8; 16], spans: &[(Span, i64)]) -> TraceSummary {
    let mut ordered: Vec<&Span> = spans.iter().map(|(span, _)| span).collect();
    ordered.sort_by_key(|s| (s.start_unix_nano, s.span_id));
    let mut summary = TraceSummary::empty(trace_id);
    for span in ordered {
        summary.absorb(span);
    }
    summary
}

enum MetaWrite {
    Written,
    Conflict,
}

impl DynamoTraceStore {
    /// The trace item and every span of a trace, in one strongly consistent Query.
    async fn read_trace(&self, trace_id: [u8; 16]) -> Result<StoredTrace, TraceStoreError> {
        let request = self
            .client
            .query()
            .table_name(self.table()?)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", item::s(trace_pk(&trace_id)))
            .consistent_read(true);
        let items = query_all(request, "Query (trace)").await?;
        decode_trace(trace_id, &items)
    }

    async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
        operation: &str,
    ) -> Result<(), TraceStoreError> {
        let table = self.table()?;
        for chunk in requests.chunks(25) {
            batch_write(&self.client, &self.retry, table, chunk.to_vec(), operation).await?;
        }
        Ok(())
    }

    /// Stores `meta` if the stored trace item is still at `previous` (absent: none stored).
    async fn put_meta(
        &self,
        meta: &TraceMeta,
        previous: Option<u64>,
    ) -> Result<MetaWrite, TraceStoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(self.table()?)
            .set_item(Some(meta.to_item()));
        request = match previous {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(version) => request
                .condition_expression("version = :version")
                .expression_attribute_values(":version", item::n(version)),
        };
        match request.send().await {
            Ok(_) => Ok(MetaWrite::Written),
            Err(e) if errors::code(&e) == Some("ConditionalCheckFailedException") => {
                Ok(MetaWrite::Conflict)
            }
            Err(e) => Err(trace_error("PutItem (trace)", &e)),
        }
    }

    async fn write_one(&self, write: &TraceWrite) -> Result<(), TraceStoreError> {
        let trace_id = write.trace_id;
        let pk = trace_pk(&trace_id);
        // BatchWriteItem refuses a request naming one key twice: the last copy of a span wins.
        let mut spans: BTreeMap<[u8; 8], &Span> = BTreeMap::new();
        for span in write.spans.iter().filter(|s| s.trace_id == trace_id) {
            spans.insert(span.span_id, span);
        }
        let ttl = span_ttl(write.expires_at_unix_s);
        let mut puts = Vec::with_capacity(spans.len());
        for (span_id, span) in spans {
            let encoded = encode_span(span);
            if encoded.len() > MAX_SPAN_BYTES {
                tracing::warn!(
                    trace = %pk,
                    span = %hex(&span_id),
                    bytes = encoded.len(),
                    "dropping a span too large for a DynamoDB item"
                );
                continue;
            }
            puts.push(put(span_item(&pk, &span_id, encoded, ttl))?);
        }
        self.batch_write(puts, "BatchWriteItem (spans)").await?;

        let mut attempts = self.retry.start();
        loop {
            if !attempts.next().await {
                return Err(TraceStoreError::Throttled(format!(
                    "trace {pk}: still conflicting with other writers after {} attempts",
                    attempts.made()
                )));
            }
            let stored = self.read_trace(trace_id).await?;
            let old = stored.meta;
            let expires_at = old.as_ref().map_or(write.expires_at_unix_s, |o| {
                o.expires_at_unix_s.max(write.expires_at_unix_s)
            });
            let meta = TraceMeta {
                kept: old.as_ref().is_some_and(|o| o.kept) || write.kept,
                expires_at_unix_s: expires_at,
                summary: summarize(trace_id, &stored.spans),
                version: old.as_ref().map_or(1, |o| o.version + 1),
            };

            // Spans stored under an earlier, shorter expiry must live as long as the trace.
            let mut extend = Vec::new();
            for (span, span_expiry) in &stored.spans {
                if *span_expiry < expires_at {
                    let item =
                        span_item(&pk, &span.span_id, encode_span(span), span_ttl(expires_at));
                    extend.push(put(item)?);
                }
            }
            self.batch_write(extend, "BatchWriteItem (span expiry)")
                .await?;

            let unchanged = old.as_ref().is_some_and(|o| o.same_content(&meta));
            if !unchanged {
                match self
                    .put_meta(&meta, old.as_ref().map(|o| o.version))
                    .await?
                {
                    MetaWrite::Written => {}
                    MetaWrite::Conflict => continue,
                }
            }

            // Listing items: drop the keys the trace moved away from, (re)write the current ones so
            // that their TTL follows the trace's and a crash before this point is repaired.
            let new_keys = meta.listing_keys();
            let mut requests = Vec::new();
            if let Some(old) = old.as_ref().filter(|_| !unchanged) {
                for (lpk, lsk) in old.listing_keys().difference(&new_keys) {
                    requests.push(delete(lpk.clone(), lsk.clone())?);
                }
            }
            for (lpk, lsk) in &new_keys {
                let mut listing = key(lpk.clone(), lsk.clone());
                listing.insert("expires_at".into(), item::n(meta.expires_at_unix_s));
                requests.push(put(listing)?);
            }
            return self
                .batch_write(requests, "BatchWriteItem (trace listing)")
                .await;
        }
    }

    /// The trace items of `trace_ids` (strongly consistent), by trace id.
    async fn get_metas(
        &self,
        trace_ids: &[[u8; 16]],
    ) -> Result<HashMap<[u8; 16], TraceMeta>, TraceStoreError> {
        let table = self.table()?;
        let mut unique: Vec<[u8; 16]> = trace_ids.to_vec();
        unique.sort();
        unique.dedup();
        let keys: Vec<Item> = unique
            .iter()
            .map(|id| key(trace_pk(id), META_SK.to_string()))
            .collect();
        let items = batch_get(
            &self.client,
            &self.retry,
            table,
            keys,
            "BatchGetItem (traces)",
        )
        .await?;
        let mut found = HashMap::new();
        for item in &items {
            let pk = get_s(item, "pk").map_err(|e| corrupt("?", META_SK, e))?;
            let trace_id =
                parse_hex::<16>(pk).ok_or_else(|| corrupt(pk, META_SK, "pk is not a trace id"))?;
            let meta = TraceMeta::from_item(trace_id, item).map_err(|e| corrupt(pk, META_SK, e))?;
            found.insert(trace_id, meta);
        }
        Ok(found)
    }
}

#[async_trait]
impl TraceStore for DynamoTraceStore {
    async fn write(&self, writes: &[TraceWrite]) -> Result<(), TraceStoreError> {
        for write in writes {
            self.write_one(write).await?;
        }
        Ok(())
    }

    async fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Option<Vec<Span>>, TraceStoreError> {
        let stored = self.read_trace(*trace_id).await?;
        // TTL deletes lazily (up to days late): an expired trace reads as absent.
        match stored.meta {
            Some(meta) if meta.kept && meta.expires_at_unix_s >= now_unix_s() => {}
            _ => return Ok(None),
        }
        let mut spans: Vec<Span> = stored.spans.into_iter().map(|(span, _)| span).collect();
        spans.sort_by_key(|s| (s.start_unix_nano, s.span_id));
        Ok(Some(spans))
    }

    async fn recent_traces(
        &self,
        service: &str,
        limit: usize,
    ) -> Result<Vec<TraceSummary>, TraceStoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_unix_s();
        // Listing items of expired or moved traces may still be there: read a little more per page.
        let page = i32::try_from(limit.saturating_add(limit / 2).clamp(10, 100)).unwrap_or(100);
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut start_key: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(self.table()?)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", item::s(listing_pk(service)))
                .scan_index_forward(false)
                .limit(page)
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(|e| trace_error("Query (trace listing)", &e))?;
            let mut candidates = Vec::new();
            for listing in output.items() {
                let sk = get_s(listing, "sk").map_err(|e| corrupt(service, "?", e))?;
                let parsed = parse_listing_sk(sk)
                    .ok_or_else(|| corrupt(&listing_pk(service), sk, "malformed listing key"))?;
                candidates.push(parsed);
            }
            let ids: Vec<[u8; 16]> = candidates.iter().map(|(_, id)| *id).collect();
            let metas = self.get_metas(&ids).await?;
            for (start, trace_id) in candidates {
                let Some(meta) = metas.get(&trace_id) else {
                    continue;
                };
                let current = meta.kept
                    && meta.expires_at_unix_s >= now
                    && meta.summary.start_unix_nano == start
                    && meta.summary.services.iter().any(|s| s == service);
                if current && seen.insert(trace_id) {
                    out.push(meta.summary.clone());
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// DynamoDB's TTL deletes expired items by itself; reads already skip expired traces.
    async fn purge_expired(&self, _now_unix_s: i64) -> Result<u64, TraceStoreError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_keys_sort_by_start_and_parse_back() {
        let trace = [0xab; 16];
        let early = listing_sk(9, &trace);
        let late = listing_sk(10_000_000_000_000_000_000, &trace);
        assert!(early < late, "zero padding keeps numeric order");
        assert_eq!(
            parse_listing_sk(&late),
            Some((10_000_000_000_000_000_000, trace))
        );
        assert_eq!(parse_listing_sk("12#nothex"), None);
        assert_eq!(parse_listing_sk("x#abab"), None);
    }

    #[test]
    fn span_ttl_never_precedes_the_expiry() {
        for expiry in [-5, 0, 1, 3599, 3600, 1_700_000_123] {
            let ttl = span_ttl(expiry);
            assert!(ttl > expiry && ttl - expiry <= SPAN_TTL_GRANULARITY_S);
        }
    }

    #[test]
    fn trace_items_round_trip_and_reject_wrong_types() {
        let mut summary = TraceSummary::empty([7; 16]);
        summary.root_service = Some("web".into());
        summary.root_name = Some("GET /".into());
        summary.start_unix_nano = 42;
        summary.duration_nanos = 5;
        summary.span_count = 3;
        summary.error = true;
        summary.services = vec!["pay".into(), "web".into()];
        let meta = TraceMeta {
            kept: true,
            expires_at_unix_s: 99,
            summary,
            version: 4,
        };
        let mut stored = meta.to_item();
        assert_eq!(TraceMeta::from_item([7; 16], &stored).unwrap(), meta);
        stored.insert("kept".into(), item::s("yes"));
        assert!(TraceMeta::from_item([7; 16], &stored).is_err());
    }
}
