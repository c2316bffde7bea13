//! The local API Gateway's live connections: what `PostToConnection` reaches in local mode, both
//! in-process (fan-out) and over HTTP (`/@connections/{id}`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use flowscope_core::live::MAX_MESSAGE_BYTES;
use flowscope_core::ports::{ConnectionPosts, ConnectionPusher, PushError};
use tokio::sync::{mpsc, Notify};

/// Bytes counted per queued message on top of its text, so a flood of empty messages is bounded too.
const PER_MESSAGE_OVERHEAD: usize = 64;

/// Bounds of one local WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsLimits {
    /// Largest message (and frame) a client may send; larger closes the connection with 1009.
    pub max_inbound_bytes: usize,
    /// Bytes of server messages waiting for one client; a client further behind is closed with
    /// 1013 and resynchronises with a fresh snapshot when it reconnects.
    pub send_queue_bytes: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_inbound_bytes: 64 * 1024,
            send_queue_bytes: 1024 * 1024,
        }
    }
}

/// A message waiting in a connection's send queue. The text shares the fan-out's bytes: a flush
/// posted to 10,000 connections is one allocation, not 10,000 copies (and, through
/// [`ConnectionPusher::post_batch`], checked and read once, not once per connection).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub text: Utf8Bytes,
    /// The message's `seq` (flush), when it has one.
    pub seq: Option<u64>,
    /// A `metrics_update`: the writer skips it when a snapshot or catch-up already covers its `seq`.
    pub is_update: bool,
}

impl Outgoing {
    /// A pushed payload as a queued message: within the size limit and UTF-8 text, or why not.
    fn prepare(payload: Bytes) -> Result<Outgoing, String> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "message of {} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
                payload.len()
            ));
        }
        let text =
            Utf8Bytes::try_from(payload).map_err(|_| "payload is not UTF-8 text".to_string())?;
        Ok(Outgoing::new(text))
    }

    fn new(text: Utf8Bytes) -> Outgoing {
        let (kind, seq) = envelope_head(text.as_str()).unwrap_or_else(|| {
            #[derive(serde::Deserialize)]
            struct Head {
                #[serde(rename = "type")]
                kind: String,
                seq: Option<u64>,
            }
            match serde_json::from_str::<Head>(text.as_str()) {
                Ok(head) => (head.kind, head.seq),
                Err(_) => (String::new(), None),
            }
        });
        Outgoing {
            seq,
            is_update: kind == "metrics_update",
            text,
        }
    }

    fn cost(&self) -> usize {
        self.text.len() + PER_MESSAGE_OVERHEAD
    }
}

/// `type` and `seq` of a server message that starts `{"type":"…","seq":N` — as every message the
/// server encodes does (fields in declaration order) — without parsing the rest of it. `None`
/// otherwise: the caller parses the whole message.
fn envelope_head(text: &str) -> Option<(String, Option<u64>)> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    let end = rest.find('"')?;
    let (kind, rest) = (&rest[..end], &rest[end + 1..]);
    if kind.contains('\\') {
        return None;
    }
    let Some(rest) = rest.strip_prefix(r#","seq":"#) else {
        return rest.starts_with('}').then(|| (kind.to_string(), None));
    };
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if !matches!(rest.as_bytes().get(digits), Some(b',' | b'}')) {
        return None;
    }
    Some((kind.to_string(), Some(rest[..digits].parse().ok()?)))
}

/// Why a connection's writer must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `DeleteConnection` (`DELETE /@connections/{id}`).
    Deleted,
    /// The client fell more than the send-queue bound behind.
    FellBehind,
}

/// No resync asked for (see [`Queue::resync_seq`]).
const NO_RESYNC: u64 = u64::MAX;

/// One connection's send-queue accounting and signals, shared by the pushers and its writer.
///
/// A message that does not fit the byte bound is not queued: the client is owed a resync instead
/// (its writer drops what is queued and streams a fresh snapshot, paced by the socket). Messages
/// arriving meanwhile are dropped, since the snapshot covers them. If a later flush arrives while
/// that resync has still not been started, the client is not reading: it is closed.
pub struct Queue {
    bytes: AtomicUsize,
    /// 0: running; otherwise a [`StopReason`].
    stop: AtomicU8,
    stopped: Notify,
    /// The `seq` of the first message refused while a resync is owed; [`NO_RESYNC`] when none is.
    resync_seq: AtomicU64,
    resync_owed: std::sync::atomic::AtomicBool,
    resync: Notify,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            bytes: AtomicUsize::new(0),
            stop: AtomicU8::new(0),
            stopped: Notify::new(),
            resync_seq: AtomicU64::new(NO_RESYNC),
            resync_owed: std::sync::atomic::AtomicBool::new(false),
            resync: Notify::new(),
        }
    }
}

impl Queue {
    /// Completes once the queue overflowed and the client is owed a fresh snapshot.
    pub async fn resync_owed(&self) {
        loop {
            let notified = self.resync.notified();
            if self.resync_owed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The writer starts the resync: pushes from now on are queued again.
    pub fn start_resync(&self) {
        self.resync_seq.store(NO_RESYNC, Ordering::Release);
        self.resync_owed.store(false, Ordering::Release);
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        match self.stop.load(Ordering::Acquire) {
            1 => Some(StopReason::Deleted),
            2 => Some(StopReason::FellBehind),
            _ => None,
        }
    }

    fn request_stop(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Deleted => 1,
            StopReason::FellBehind => 2,
        };
        if self
            .stop
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.stopped.notify_one();
        }
    }

    /// Completes once the connection must stop (at once if it already must).
    pub async fn stopped(&self) -> StopReason {
        loop {
            let notified = self.stopped.notified();
            if let Some(reason) = self.stop_reason() {
                return reason;
            }
            notified.await;
        }
    }
}

/// What a connection's writer holds: its queue's receiving end and accounting.
pub struct Registration {
    pub inbox: mpsc::UnboundedReceiver<Outgoing>,
    pub queue: Arc<Queue>,
}

struct Handle {
    outbox: mpsc::UnboundedSender<Outgoing>,
    queue: Arc<Queue>,
    connected_at_ms: i64,
    source_ip: String,
}

/// The live section of `/api/pipeline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LiveConnectionStats {
    pub connections: usize,
    /// Bytes queued for all connections now.
    pub queued_bytes: usize,
    /// The most one connection has had queued since start (never above `send_queue_limit_bytes`).
    pub queued_bytes_peak: usize,
    pub send_queue_limit_bytes: usize,
    /// Connections closed for falling behind by more than the limit.
    pub closed_behind: u64,
    /// Times a queue overflowed and its client was sent a fresh snapshot instead.
    pub resyncs: u64,
}

/// Shards of the open-connection map: a flush posting to 10,000 connections, connects and
/// disconnects do not all wait for one lock.
const SHARDS: usize = 64;

type Shard = HashMap<String, Handle>;

pub struct LocalConnections {
    open: Box<[Mutex<Shard>]>,
    limits: WsLimits,
    queued_bytes: AtomicUsize,
    queued_bytes_peak: AtomicUsize,
    closed_behind: AtomicU64,
    resyncs: AtomicU64,
}

impl Default for LocalConnections {
    fn default() -> Self {
        LocalConnections::new(WsLimits::default())
    }
}

/// What `GET /@connections/{id}` returns, shaped like API Gateway's GetConnection.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub connected_at: String,
    pub identity: Identity,
    pub last_active_at: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub source_ip: String,
}

impl LocalConnections {
    pub fn new(limits: WsLimits) -> Self {
        LocalConnections {
            open: (0..SHARDS).map(|_| Mutex::default()).collect(),
            limits,
            queued_bytes: AtomicUsize::new(0),
            queued_bytes_peak: AtomicUsize::new(0),
            closed_behind: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> WsLimits {
        self.limits
    }

    /// The shard holding `connection_id`.
    fn open(&self, connection_id: &str) -> std::sync::MutexGuard<'_, Shard> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(connection_id);
        self.open[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, connection_id: &str, source_ip: String) -> Registration {
        let (outbox, inbox) = mpsc::unbounded_channel();
        let queue = Arc::new(Queue::default());
        self.open(connection_id).insert(
            connection_id.to_string(),
            Handle {
                outbox,
                queue: queue.clone(),
                connected_at_ms: now_ms(),
                source_ip,
            },
        );
        Registration { inbox, queue }
    }

    /// The writer took `message` off its queue.
    pub fn dequeued(&self, queue: &Queue, message: &Outgoing) {
        let cost = message.cost();
        queue.bytes.fetch_sub(cost, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
    }

    /// The connection ended: forget it and release what its queue still counted. Its writer drops
    /// the queue's receiving end (and with it the queued messages) right after.
    pub fn unregister(&self, connection_id: &str, queue: &Queue) {
        let mut open = self.open(connection_id);
        if open
            .get(connection_id)
            .is_some_and(|h| std::ptr::eq(Arc::as_ptr(&h.queue), queue))
        {
            open.remove(connection_id);
        }
        drop(open);
        let left = queue.bytes.swap(0, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(left, Ordering::AcqRel);
    }

    pub fn stats(&self) -> LiveConnectionStats {
        LiveConnectionStats {
            connections: self
                .open
                .iter()
                .map(|shard| shard.lock().unwrap_or_else(|p| p.into_inner()).len())
                .sum(),
            queued_bytes: self.queued_bytes.load(Ordering::Acquire),
            queued_bytes_peak: self.queued_bytes_peak.load(Ordering::Acquire),
            send_queue_limit_bytes: self.limits.send_queue_bytes,
            closed_behind: self.closed_behind.load(Ordering::Acquire),
            resyncs: self.resyncs.load(Ordering::Acquire),
        }
    }

    pub fn info(&self, connection_id: &str) -> Option<ConnectionInfo> {
        self.open(connection_id)
            .get(connection_id)
            .map(|h| ConnectionInfo {
                connected_at: rfc3339_ms(h.connected_at_ms),
                identity: Identity {
                    source_ip: h.source_ip.clone(),
                },
                last_active_at: rfc3339_ms(now_ms()),
            })
    }

    /// Closes every connection (local mode is stopping): each socket's task sends a close frame and
    /// ends, dropping the state it holds (and with it the embedded files). Returns how many.
    pub fn close_all(&self) -> usize {
        let mut closed = 0;
        for shard in self.open.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (_, handle) in shard.drain() {
                handle.queue.request_stop(StopReason::Deleted);
                closed += 1;
            }
        }
        closed
    }

    /// Closes a connection as `DeleteConnection` does; false when it does not exist.
    pub fn close(&self, connection_id: &str) -> bool {
        match self.open(connection_id).remove(connection_id) {
            Some(handle) => {
                handle.queue.request_stop(StopReason::Deleted);
                true
            }
            None => false,
        }
    }
}

impl LocalConnections {
    /// Queues `message` for `connection_id`, or owes it a resync, or closes it when it is not
    /// reading (see [`Queue`]).
    fn enqueue(&self, connection_id: &str, message: Outgoing) -> Result<(), PushError> {
        let cost = message.cost();
        // Under the shard's lock, so the check and the send cannot interleave with another post or
        // a close of this connection.
        let mut open = self.open(connection_id);
        let Some(handle) = open.get(connection_id) else {
            return Err(PushError::Gone);
        };
        let queue = &handle.queue;
        if queue.resync_owed.load(Ordering::Acquire) {
            let first_refused = queue.resync_seq.load(Ordering::Acquire);
            match message.seq {
                // A later flush, and the writer has not even started the resync: not reading.
                Some(seq) if first_refused != NO_RESYNC && seq > first_refused => {
                    if let Some(handle) = open.remove(connection_id) {
                        handle.queue.request_stop(StopReason::FellBehind);
                    }
                    self.closed_behind.fetch_add(1, Ordering::AcqRel);
                    return Err(PushError::Failed(format!(
                        "client fell more than {} bytes behind; closing it",
                        self.limits.send_queue_bytes
                    )));
                }
                Some(seq) if first_refused == NO_RESYNC => {
                    queue.resync_seq.store(seq, Ordering::Release);
                }
                _ => {}
            }
            // The snapshot the client is owed covers this message.
            return Ok(());
        }
        let queued = queue.bytes.load(Ordering::Acquire);
        if queued + cost > self.limits.send_queue_bytes {
            queue
                .resync_seq
                .store(message.seq.unwrap_or(NO_RESYNC), Ordering::Release);
            queue.resync_owed.store(true, Ordering::Release);
            queue.resync.notify_one();
            self.resyncs.fetch_add(1, Ordering::AcqRel);
            return Ok(());
        }
        // Counted before the send, so the writer's `dequeued` never subtracts what is not yet added.
        handle.queue.bytes.fetch_add(cost, Ordering::AcqRel);
        self.queued_bytes.fetch_add(cost, Ordering::AcqRel);
        if handle.outbox.send(message).is_err() {
            handle.queue.bytes.fetch_sub(cost, Ordering::AcqRel);
            self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
            return Err(PushError::Gone);
        }
        self.queued_bytes_peak
            .fetch_max(queued + cost, Ordering::AcqRel);
        Ok(())
    }
}

#[async_trait]
impl ConnectionPusher for LocalConnections {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), PushError> {
        let message = Outgoing::prepare(payload).map_err(PushError::Failed)?;
        self.enqueue(connection_id, message)
    }

    /// A whole flush in one pass, without awaiting: each distinct payload (the fan-out shares one
    /// `Bytes` among the connections that get the same message) is checked and read once, then
    /// every connection's queue gets a reference to it.
    async fn post_batch(
        &self,
        posts: Vec<ConnectionPosts<Bytes>>,
    ) -> Vec<ConnectionPosts<Result<(), PushError>>> {
        let mut prepared: HashMap<(usize, usize), Result<Outgoing, String>> = HashMap::new();
        posts
            .into_iter()
            .map(|(connection, payloads)| {
                let mut results = Vec::with_capacity(payloads.len());
                for payload in payloads {
                    // The same address and length within this batch: the same bytes.
                    let key = (payload.as_ptr() as usize, payload.len());
                    let message = prepared
                        .entry(key)
                        .or_insert_with(|| Outgoing::prepare(payload))
                        .clone();
                    let result = message
                        .map_err(PushError::Failed)
                        .and_then(|message| self.enqueue(&connection, message));
                    let gone = matches!(result, Err(PushError::Gone));
                    results.push(result);
                    if gone {
                        break;
                    }
                }
                (connection, results)
            })
            .collect()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Minimal RFC 3339 (UTC, millisecond precision) without a date crate.
fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
    }

    #[tokio::test]
    async fn post_reaches_registered_connection_and_unknown_is_gone() {
        let conns = LocalConnections::default();
        let mut registration = conns.register("abc", "127.0.0.1".into());
        conns.post("abc", Bytes::from_static(b"hi")).await.unwrap();
        match registration.inbox.recv().await {
            Some(message) => assert_eq!(message.text.as_str(), "hi"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            conns.post("nope", Bytes::from_static(b"x")).await,
            Err(PushError::Gone)
        ));
        assert!(conns.close("abc"));
        assert_eq!(registration.queue.stop_reason(), Some(StopReason::Deleted));
        assert!(matches!(
            conns.post("abc", Bytes::from_static(b"x")).await,
            Err(PushError::Gone)
        ));
    }

    #[tokio::test]
    async fn a_batch_reaches_every_connection_with_one_shared_copy_and_keeps_each_bound() {
        let conns = LocalConnections::new(WsLimits {
            send_queue_bytes: 4 * 1024,
            ..WsLimits::default()
        });
        let mut registrations: Vec<(String, Registration)> = (0..200)
            .map(|i| {
                let id = format!("c{i}");
                let registration = conns.register(&id, "127.0.0.1".into());
                (id, registration)
            })
            .collect();
        let flush = Bytes::from(r#"{"type":"metrics_update","seq":1,"updates":[]}"#);
        let trace = Bytes::from(r#"{"type":"trace","seq":1,"traces":[]}"#);
        let mut posts: Vec<ConnectionPosts<Bytes>> = registrations
            .iter()
            .map(|(id, _)| (id.clone(), vec![flush.clone(), trace.clone()]))
            .collect();
        posts.push(("gone".into(), vec![flush.clone(), trace.clone()]));
        posts.push((
            "c0".into(),
            vec![Bytes::from(vec![b'x'; MAX_MESSAGE_BYTES + 1])],
        ));
        let results = conns.post_batch(posts).await;
        assert_eq!(results.len(), 202);
        for (_, results) in &results[..200] {
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        }
        // An unknown connection stops at its first message; an oversized one is refused.
        assert!(matches!(results[200].1[..], [Err(PushError::Gone)]));
        assert!(matches!(results[201].1[..], [Err(PushError::Failed(_))]));
        // Every queue holds the messages in order, and all of them the same bytes.
        let shared = {
            let first = registrations[0].1.inbox.try_recv().unwrap();
            assert_eq!((first.seq, first.is_update), (Some(1), true));
            first.text.as_str().as_ptr()
        };
        for (_, registration) in registrations.iter_mut().skip(1) {
            let update = registration.inbox.try_recv().unwrap();
            assert_eq!(update.text.as_str().as_ptr(), shared);
            let trace = registration.inbox.try_recv().unwrap();
            assert_eq!((trace.seq, trace.is_update), (Some(1), false));
        }
        // The per-connection byte bound holds for batches too: a client that reads nothing is
        // owed a resync once its queue is full, then closed at the next flush.
        let (slow_id, slow) = &registrations[1];
        let big = Bytes::from(format!(
            r#"{{"type":"metrics_update","seq":2,"updates":["{}"]}}"#,
            "x".repeat(3 * 1024)
        ));
        let results = conns
            .post_batch(vec![(slow_id.clone(), vec![big.clone(), big])])
            .await;
        assert!(results[0].1.iter().all(Result::is_ok));
        assert_eq!(conns.stats().resyncs, 1);
        assert!(conns.stats().queued_bytes_peak <= 4 * 1024);
        let next = Bytes::from(r#"{"type":"metrics_update","seq":3,"updates":[]}"#);
        let results = conns.post_batch(vec![(slow_id.clone(), vec![next])]).await;
        assert!(matches!(results[0].1[..], [Err(PushError::Failed(_))]));
        assert_eq!(slow.queue.stop_reason(), Some(StopReason::FellBehind));
        assert_eq!(conns.stats().connections, 199);
    }

    #[tokio::test]
    async fn a_client_past_the_byte_bound_is_owed_a_resync_and_closed_if_it_does_not_take_it() {
        let limit = 200 * 1024;
        let conns = LocalConnections::new(WsLimits {
            send_queue_bytes: limit,
            ..WsLimits::default()
        });
        let slow = conns.register("slow", "127.0.0.1".into());
        let message = |seq: u64| {
            Bytes::from(format!(
                r#"{{"type":"metrics_update","seq":{seq},"updates":["{}"]}}"#,
                "x".repeat(30 * 1024)
            ))
        };
        // One flush larger than the bound: what fits is queued, the rest is owed as a resync.
        for _ in 0..10 {
            conns.post("slow", message(1)).await.unwrap();
        }
        let stats = conns.stats();
        assert!(stats.queued_bytes <= limit && stats.queued_bytes_peak <= limit);
        assert_eq!(stats.resyncs, 1);
        tokio::time::timeout(Duration::from_secs(1), slow.queue.resync_owed())
            .await
            .expect("the writer is told to resync");
        // The next flush arrives and the writer never started the resync: closed.
        assert!(matches!(
            conns.post("slow", message(2)).await,
            Err(PushError::Failed(_))
        ));
        assert_eq!(slow.queue.stop_reason(), Some(StopReason::FellBehind));
        assert_eq!(conns.stats().closed_behind, 1);
        assert!(matches!(
            conns.post("slow", message(3)).await,
            Err(PushError::Gone)
        ));
        conns.unregister("slow", &slow.queue);
        drop(slow);
        assert_eq!(conns.stats().queued_bytes, 0);
        assert_eq!(conns.stats().connections, 0);

        // A writer that takes its resync goes on receiving.
        let mut reader = conns.register("reader", "127.0.0.1".into());
        for _ in 0..10 {
            conns.post("reader", message(4)).await.unwrap();
        }
        reader.queue.start_resync();
        while let Ok(queued) = reader.inbox.try_recv() {
            conns.dequeued(&reader.queue, &queued);
        }
        conns.post("reader", message(5)).await.unwrap();
        assert_eq!(reader.queue.stop_reason(), None);
        assert_eq!(reader.inbox.try_recv().unwrap().seq, Some(5));
    }

    #[test]
    fn queued_updates_carry_their_sequence_number() {
        let update = Outgoing::new(
            r#"{"type":"metrics_update","seq":42,"part":1,"parts":1,"updates":[]}"#.into(),
        );
        assert_eq!((update.seq, update.is_update), (Some(42), true));
        let trace = Outgoing::new(r#"{"type":"trace","seq":43,"traces":[]}"#.into());
        assert_eq!((trace.seq, trace.is_update), (Some(43), false));
        let flush = Outgoing::new(
            r#"{"type":"metrics_update","seq":7,"flushed_at_us":1,"part":1,"parts":1,"updates":[]}"#
                .into(),
        );
        assert_eq!((flush.seq, flush.is_update), (Some(7), true));
        // Not the server's field order: read by parsing the whole message, same answer.
        let reordered = Outgoing::new(r#"{"seq":9, "type":"metrics_update","updates":[]}"#.into());
        assert_eq!((reordered.seq, reordered.is_update), (Some(9), true));
        let pong = Outgoing::new(r#"{"type":"pong"}"#.into());
        assert_eq!((pong.seq, pong.is_update), (None, false));
    }
}
