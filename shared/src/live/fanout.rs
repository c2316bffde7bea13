//! Delivering a batch of updates to every subscribed connection: one message per connection per flush,
//! concurrent posts, and removal of connections the gateway reports gone (410).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::hub::LiveBatch;
pub use super::wire::MAX_MESSAGE_BYTES;
use super::wire::{encode_flush_update, LiveUpdate, ServerMessage};
use crate::ports::{ConnectionPusher, ConnectionStore, ConnectionStoreError, PushError};
use crate::traces::TraceEvent;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FanoutReport {
    pub messages_posted: u64,
    pub connections_reached: u64,
    pub gone_removed: u64,
    pub failed: u64,
}

pub struct Fanout<'a, C: ConnectionStore + ?Sized, P: ConnectionPusher + ?Sized> {
    connections: &'a C,
    pusher: &'a P,
}

impl<'a, C: ConnectionStore + ?Sized, P: ConnectionPusher + ?Sized> Fanout<'a, C, P> {
    pub fn new(connections: &'a C, pusher: &'a P) -> Self {
        Fanout {
            connections,
            pusher,
        }
    }

    /// Sends `updates` (tagged with `seq`) to every connection subscribed to them.
    pub async fn deliver(
        &self,
        seq: u64,
        updates: &[LiveUpdate],
    ) -> Result<FanoutReport, ConnectionStoreError> {
        let posts: Vec<(String, Vec<Bytes>)> = self
            .route(updates)
            .await?
            .into_iter()
            .map(|(connection, updates)| {
                let payloads = split_messages(&connection, seq, updates);
                (connection, payloads)
            })
            .collect();
        self.post_all(posts).await
    }

    /// Sends a flush: each connection gets its metric updates in one `metrics_update` message (split
    /// only past the size limit) and the trace events touching its services in one `trace` message.
    pub async fn deliver_batch(
        &self,
        batch: &LiveBatch,
    ) -> Result<FanoutReport, ConnectionStoreError> {
        let flushed_at_us = unix_micros();
        let routed = self.route(&batch.updates).await?;
        // Most connections subscribe alike: each distinct set of updates is encoded once and the
        // connections receiving it share the bytes (10,000 dashboards on one service cost one
        // encoding per flush, not 10,000).
        // Keyed by the updates' addresses in `batch`: equal keys are the same updates.
        let mut encoded: HashMap<Vec<usize>, Vec<Bytes>> = HashMap::new();
        let mut posts: Vec<(String, Vec<Bytes>)> = Vec::with_capacity(routed.len());
        // Filled only when the flush carries trace events (to add them to the same posts).
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut key: Vec<usize> = Vec::new();
        for (connection, updates) in routed {
            key.clear();
            key.extend(
                updates
                    .iter()
                    .map(|u| std::ptr::from_ref::<LiveUpdate>(u) as usize),
            );
            let payloads = match encoded.get(&key) {
                Some(payloads) => payloads.clone(),
                None => {
                    let parts =
                        encode_flush_update(batch.seq, flushed_at_us, &updates, MAX_MESSAGE_BYTES);
                    warn_oversized(&connection, parts.oversized);
                    let payloads: Vec<Bytes> = parts.texts.into_iter().map(Bytes::from).collect();
                    encoded.insert(key.clone(), payloads.clone());
                    payloads
                }
            };
            if !batch.traces.is_empty() {
                index.insert(connection.clone(), posts.len());
            }
            posts.push((connection, payloads));
        }
        drop(encoded);
        for (connection, traces) in self.route_traces(&batch.traces).await? {
            let message = ServerMessage::Trace {
                seq: batch.seq,
                traces: traces.into_iter().cloned().collect(),
            };
            let encoded = message.into_parts(MAX_MESSAGE_BYTES);
            warn_oversized(&connection, encoded.oversized);
            let texts = encoded.texts.into_iter().map(Bytes::from);
            match index.get(&connection) {
                Some(&i) => posts[i].1.extend(texts),
                None => posts.push((connection, texts.collect())),
            }
        }
        self.post_all(posts).await
    }

    /// Which trace events each connection wants: those touching a service it subscribed to.
    async fn route_traces<'t>(
        &self,
        traces: &'t [TraceEvent],
    ) -> Result<BTreeMap<String, Vec<&'t TraceEvent>>, ConnectionStoreError> {
        let mut by_service: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, event) in traces.iter().enumerate() {
            for service in event.services() {
                let entry = by_service.entry(service).or_default();
                if entry.last() != Some(&i) {
                    entry.push(i);
                }
            }
        }
        let mut per_connection: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (service, indexes) in by_service {
            for (connection, _) in self.connections.subscribers(service).await? {
                per_connection
                    .entry(connection)
                    .or_default()
                    .extend(indexes.iter().copied());
            }
        }
        Ok(per_connection
            .into_iter()
            .map(|(connection, indexes)| {
                (
                    connection,
                    indexes.into_iter().map(|i| &traces[i]).collect(),
                )
            })
            .collect())
    }

    /// Sends one event (an alert transition, say) to every connection subscribed to `service` —
    /// or, with no service, to those subscribed to everything.
    pub async fn deliver_event(
        &self,
        service: Option<&str>,
        payload: Bytes,
    ) -> Result<FanoutReport, ConnectionStoreError> {
        // No service is named "", so this finds only the subscribers to everything.
        let posts: Vec<(String, Vec<Bytes>)> = self
            .connections
            .subscribers(service.unwrap_or(""))
            .await?
            .into_iter()
            .map(|(connection, _)| (connection, vec![payload.clone()]))
            .collect();
        self.post_all(posts).await
    }

    /// Posts every connection its messages (in order within one connection, so a split message's
    /// parts arrive in sequence) through the pusher's batch, counts the results, and removes the
    /// connections the gateway reported gone. Each connection appears once in `posts`.
    async fn post_all(
        &self,
        posts: Vec<(String, Vec<Bytes>)>,
    ) -> Result<FanoutReport, ConnectionStoreError> {
        let results = self.pusher.post_batch(posts).await;
        let mut report = FanoutReport::default();
        let mut gone = Vec::new();
        for (connection, results) in results {
            let mut reached = false;
            for result in results {
                match result {
                    Ok(()) => {
                        report.messages_posted += 1;
                        reached = true;
                    }
                    Err(PushError::Gone) => {
                        gone.push(connection.clone());
                    }
                    Err(PushError::Failed(reason)) => {
                        tracing::warn!(%connection, %reason, "post to connection failed");
                        report.failed += 1;
                    }
                }
            }
            report.connections_reached += u64::from(reached);
        }
        gone.sort_unstable();
        gone.dedup();
        for connection in &gone {
            // Only the connection the gateway reported gone is removed, never the caller.
            self.connections.delete_connection(connection).await?;
        }
        report.gone_removed = gone.len() as u64;
        Ok(report)
    }

    /// Which updates each connection wants, found per service through the subscription index.
    /// Each connection once, in the order the index first lists it.
    async fn route<'u>(
        &self,
        updates: &'u [LiveUpdate],
    ) -> Result<Vec<(String, Vec<&'u LiveUpdate>)>, ConnectionStoreError> {
        let mut by_service: BTreeMap<&str, Vec<&LiveUpdate>> = BTreeMap::new();
        for update in updates {
            by_service
                .entry(&update.series.service)
                .or_default()
                .push(update);
        }
        let mut per_connection: Vec<(String, Vec<&LiveUpdate>)> = Vec::new();
        // A connection subscribed to several services is listed under each.
        let mut index: HashMap<String, usize> = HashMap::new();
        for (service, service_updates) in by_service {
            for (connection, subscription) in self.connections.subscribers(service).await? {
                let wanted = service_updates
                    .iter()
                    .copied()
                    .filter(|u| subscription.wants(&u.series.service, &u.series.metric));
                match index.get(&connection) {
                    Some(&i) => per_connection[i].1.extend(wanted),
                    None => {
                        index.insert(connection.clone(), per_connection.len());
                        per_connection.push((connection, wanted.collect()));
                    }
                }
            }
        }
        per_connection.retain(|(_, updates)| !updates.is_empty());
        Ok(per_connection)
    }
}

/// One `metrics_update` message, or several numbered parts (same `seq`) when one would exceed
/// [`MAX_MESSAGE_BYTES`].
fn split_messages(connection: &str, seq: u64, updates: Vec<&LiveUpdate>) -> Vec<Bytes> {
    let message = ServerMessage::MetricsUpdate {
        seq,
        part: 1,
        parts: 1,
        updates: updates.into_iter().cloned().collect(),
    };
    let encoded = message.into_parts(MAX_MESSAGE_BYTES);
    warn_oversized(connection, encoded.oversized);
    encoded.texts.into_iter().map(Bytes::from).collect()
}

/// Now in unix microseconds (0 if the clock is before 1970).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn warn_oversized(connection: &str, oversized: usize) {
    if oversized > 0 {
        tracing::warn!(
            %connection,
            oversized,
            limit = MAX_MESSAGE_BYTES,
            "live items larger than one WebSocket message left out (read them from the query API)"
        );
    }
}
