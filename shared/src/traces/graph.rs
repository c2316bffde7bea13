//! The service graph: edges from a CLIENT span to the SERVER span it caused (request), and from a
//! PRODUCER span to the CONSUMER span it caused (messaging), found by pairing the two *halves*.
//!
//! The halves of one edge come from different services, so they arrive in different records, batches
//! or invocations. The half that arrives first waits in [`Pending`], keyed by (trace id, the caller's
//! span id): a client half under its own span id, a server half under its parent's. Spans of a trace
//! share a partition key, so both halves reach the same shard, in order.
//!
//! A waiting half expires once the shard's *event time* (the latest span end it has seen) passes its
//! deadline: the event time when it arrived (or its own end, if later) plus the pairing window. Event
//! time rather than the clock keeps expiry a pure function of the shard's records, so a redelivered
//! batch expires exactly the same halves at the same records. A client or producer half that expires
//! and names its peer (`peer.service`, `db.system`, `messaging.system`, `server.address`) becomes an
//! edge to a *virtual node* (a database, a broker, an uninstrumented host); other expired halves
//! are dropped. The cost of event time: with no more spans on the shard, halves wait until traffic
//! resumes.
//!
//! Edges are stored as ordinary series of the calling service (see [`EDGE_DURATION`]), so they are
//! bucketed, rolled up and written exactly once like every other series.

use std::collections::{BTreeMap, HashMap};

use crate::model::MetricKind;
use crate::spans::{Span, SpanKind};

use super::red::is_error;
use super::series::{Observation, SeriesSpec, SeriesTable};

/// Histogram (ms) per edge and bucket: `count` is the number of requests, quantiles their latency.
pub const EDGE_DURATION: &str = "graph.edge.duration";
/// Counter per edge and bucket: failed requests (no write for a bucket without errors).
pub const EDGE_ERRORS: &str = "graph.edge.errors";
/// Edge series attributes: `connection` (`call`/`messaging`), `server` (the callee's node name) and
/// `server.kind` ([`NodeKind`]). The series' service is the caller.
pub const CONNECTION_ATTRIBUTE: &str = "connection";
pub const SERVER_ATTRIBUTE: &str = "server";
pub const SERVER_KIND_ATTRIBUTE: &str = "server.kind";

/// Which half of an edge a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
    Producer,
    Consumer,
}

impl Role {
    pub fn of(kind: SpanKind) -> Option<Role> {
        match kind {
            SpanKind::Client => Some(Role::Client),
            SpanKind::Server => Some(Role::Server),
            SpanKind::Producer => Some(Role::Producer),
            SpanKind::Consumer => Some(Role::Consumer),
            SpanKind::Internal | SpanKind::Unspecified => None,
        }
    }

    /// The caller's side (the edge's source).
    fn is_caller(self) -> bool {
        matches!(self, Role::Client | Role::Producer)
    }

    fn complements(self, other: Role) -> bool {
        matches!(
            (self, other),
            (Role::Client, Role::Server)
                | (Role::Server, Role::Client)
                | (Role::Producer, Role::Consumer)
                | (Role::Consumer, Role::Producer)
        )
    }

    pub fn code(self) -> u32 {
        match self {
            Role::Client => 1,
            Role::Server => 2,
            Role::Producer => 3,
            Role::Consumer => 4,
        }
    }

    pub fn from_code(code: u32) -> Option<Role> {
        match code {
            1 => Some(Role::Client),
            2 => Some(Role::Server),
            3 => Some(Role::Producer),
            4 => Some(Role::Consumer),
            _ => None,
        }
    }
}

/// What a graph node is. Services report spans; the others are virtual nodes named by their callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    Service,
    Database,
    Messaging,
    External,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Service => "service",
            NodeKind::Database => "database",
            NodeKind::Messaging => "messaging",
            NodeKind::External => "external",
        }
    }

    pub fn parse(text: &str) -> Option<NodeKind> {
        match text {
            "service" => Some(NodeKind::Service),
            "database" => Some(NodeKind::Database),
            "messaging" => Some(NodeKind::Messaging),
            "external" => Some(NodeKind::External),
            _ => None,
        }
    }

    pub fn code(self) -> u32 {
        match self {
            NodeKind::Service => 0,
            NodeKind::Database => 1,
            NodeKind::Messaging => 2,
            NodeKind::External => 3,
        }
    }

    pub fn from_code(code: u32) -> NodeKind {
        match code {
            1 => NodeKind::Database,
            2 => NodeKind::Messaging,
            3 => NodeKind::External,
            _ => NodeKind::Service,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Connection {
    /// Client → server.
    Call,
    /// Producer → consumer.
    Messaging,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Call => "call",
            Connection::Messaging => "messaging",
        }
    }
}

/// Whom a caller says it calls, for a virtual node when no callee reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualPeer {
    pub name: String,
    pub kind: NodeKind,
}

impl VirtualPeer {
    /// From the caller span's attributes: named by `peer.service` when present, else by the database
    /// or messaging system, else by `server.address`.
    pub fn of(span: &Span) -> Option<VirtualPeer> {
        let attribute = |key: &str| {
            span.attributes
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let database = attribute("db.system");
        let messaging = attribute("messaging.system");
        let kind = if database.is_some() {
            NodeKind::Database
        } else if messaging.is_some() || span.kind == SpanKind::Producer {
            NodeKind::Messaging
        } else {
            NodeKind::External
        };
        let name = attribute("peer.service")
            .or(database)
            .or(messaging)
            .or_else(|| attribute("server.address"))?;
        Some(VirtualPeer {
            name: name.to_string(),
            kind,
        })
    }
}

/// The pairing key: (trace id, the caller's span id).
pub type HalfKey = ([u8; 16], [u8; 8]);

/// One side of an edge, as kept while it waits for the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Half {
    pub role: Role,
    pub service: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub error: bool,
    /// Caller halves only: where a virtual edge goes if no callee reports.
    pub peer: Option<VirtualPeer>,
    /// Event time after which the half stops waiting.
    pub deadline_unix_nano: u64,
    /// Whether the trace was kept when the half arrived (a virtual edge then shows live).
    pub kept: bool,
}

impl Half {
    /// The half `span` is, with its pairing key; `None` for spans that are no half of an edge
    /// (internal spans, servers and consumers without a parent).
    pub fn of(span: &Span, kept: bool) -> Option<(HalfKey, Half)> {
        let role = Role::of(span.kind)?;
        let caller_span = if role.is_caller() {
            span.span_id
        } else {
            span.parent_span_id?
        };
        let half = Half {
            role,
            service: span.service.clone(),
            start_unix_nano: span.start_unix_nano,
            end_unix_nano: span.end_unix_nano,
            error: is_error(span),
            peer: if role.is_caller() {
                VirtualPeer::of(span)
            } else {
                None
            },
            deadline_unix_nano: 0,
            kept,
        };
        Some(((span.trace_id, caller_span), half))
    }
}

/// One request along an edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub client: String,
    pub server: String,
    pub server_kind: NodeKind,
    pub connection: Connection,
    /// When the caller's span started.
    pub start_unix_nano: u64,
    /// Calls: the client span's duration (what the caller waited). Messaging: from the producer's
    /// start to the consumer's start (publish plus time in the queue).
    pub duration_nanos: u64,
    /// Either side failed.
    pub error: bool,
    /// Where the edge is bucketed: the end of the caller's span.
    pub time_unix_nano: u64,
}

impl Edge {
    /// The edge between two complementary halves.
    fn between(a: &Half, b: &Half) -> Edge {
        let (caller, callee) = if a.role.is_caller() { (a, b) } else { (b, a) };
        let connection = if caller.role == Role::Producer {
            Connection::Messaging
        } else {
            Connection::Call
        };
        let duration_nanos = match connection {
            Connection::Call => caller.end_unix_nano.saturating_sub(caller.start_unix_nano),
            Connection::Messaging => callee
                .start_unix_nano
                .saturating_sub(caller.start_unix_nano),
        };
        Edge {
            client: caller.service.clone(),
            server: callee.service.clone(),
            server_kind: NodeKind::Service,
            connection,
            start_unix_nano: caller.start_unix_nano,
            duration_nanos,
            error: caller.error || callee.error,
            time_unix_nano: caller.end_unix_nano,
        }
    }

    /// The edge to the virtual node an expired caller half names, if it names one.
    fn to_virtual(half: &Half) -> Option<Edge> {
        let peer = half.peer.as_ref().filter(|_| half.role.is_caller())?;
        Some(Edge {
            client: half.service.clone(),
            server: peer.name.clone(),
            server_kind: peer.kind,
            connection: if half.role == Role::Producer {
                Connection::Messaging
            } else {
                Connection::Call
            },
            start_unix_nano: half.start_unix_nano,
            duration_nanos: half.end_unix_nano.saturating_sub(half.start_unix_nano),
            error: half.error,
            time_unix_nano: half.end_unix_nano,
        })
    }

    pub fn duration_ms(&self) -> f64 {
        self.duration_nanos as f64 / 1e6
    }

    /// Appends what the edge adds to its series.
    pub fn observe(&self, series: &mut SeriesTable, out: &mut Vec<Observation>) {
        let attributes = [
            (CONNECTION_ATTRIBUTE, self.connection.as_str()),
            (SERVER_ATTRIBUTE, self.server.as_str()),
            (SERVER_KIND_ATTRIBUTE, self.server_kind.as_str()),
        ];
        let mut emit = |metric: &str, kind, unit, value| {
            let spec = SeriesSpec {
                service: &self.client,
                metric,
                attributes: &attributes,
                kind,
                unit,
            };
            out.push(Observation {
                series: series.intern(&spec, self.time_unix_nano),
                time_unix_nano: self.time_unix_nano,
                value,
            });
        };
        emit(
            EDGE_DURATION,
            MetricKind::Histogram,
            "ms",
            self.duration_ms(),
        );
        if self.error {
            emit(EDGE_ERRORS, MetricKind::Counter, "1", 1.0);
        }
    }
}

/// What offering a half to [`Pending`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    /// The other half was waiting: here is the edge.
    Paired(Edge),
    /// Nothing to pair with yet: the half waits.
    Waiting,
    /// A half of the same side already waits under this key (a second server for one client span):
    /// the new one is not paired.
    Unpaired,
}

/// What leaving [`Pending`] without a partner did.
#[derive(Debug, Clone, PartialEq)]
pub enum Expired {
    /// A caller half that named its peer: the edge to the virtual node.
    Virtual {
        key: HalfKey,
        kept: bool,
        edge: Edge,
    },
    /// Nobody to draw an edge to.
    Dropped,
}

/// Halves waiting for their partner, held in deadline order (expiry, eviction and saving walk them
/// in that order without a lookup per half), with an index from key to deadline for pairing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pending {
    by_deadline: BTreeMap<(u64, HalfKey), Half>,
    deadlines: HashMap<HalfKey, u64>,
}

impl Pending {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    /// Pairs `half` with its waiting partner, or leaves it waiting until `half.deadline_unix_nano`.
    pub fn offer(&mut self, key: HalfKey, half: Half) -> Offer {
        let waiting = self
            .deadlines
            .get(&key)
            .and_then(|deadline| self.by_deadline.get(&(*deadline, key)));
        match waiting {
            Some(waiting) if waiting.role.complements(half.role) => {
                let edge = Edge::between(waiting, &half);
                self.remove(&key);
                Offer::Paired(edge)
            }
            Some(_) => Offer::Unpaired,
            None => {
                self.insert(key, half);
                Offer::Waiting
            }
        }
    }

    /// Restores a waiting half (from saved state).
    pub fn insert(&mut self, key: HalfKey, half: Half) {
        if let Some(old) = self.deadlines.insert(key, half.deadline_unix_nano) {
            self.by_deadline.remove(&(old, key));
        }
        self.by_deadline
            .insert((half.deadline_unix_nano, key), half);
    }

    fn remove(&mut self, key: &HalfKey) -> Option<Half> {
        let deadline = self.deadlines.remove(key)?;
        self.by_deadline.remove(&(deadline, *key))
    }

    /// Removes the half with the earliest deadline, if that deadline is before `before` (any
    /// deadline for `None`).
    fn pop_first(&mut self, before: Option<u64>) -> Option<(HalfKey, Half)> {
        let entry = self.by_deadline.first_entry()?;
        if before.is_some_and(|before| entry.key().0 >= before) {
            return None;
        }
        let ((_, key), half) = entry.remove_entry();
        self.deadlines.remove(&key);
        Some((key, half))
    }

    /// Removes every half whose deadline is before `event_time`, oldest deadline first.
    pub fn expire(&mut self, event_time_unix_nano: u64) -> Vec<Expired> {
        let mut out = Vec::new();
        while let Some((key, half)) = self.pop_first(Some(event_time_unix_nano)) {
            out.push(leave(key, &half));
        }
        out
    }

    /// Keeps at most `max` halves, removing those closest to their deadline (deterministically)
    /// so that the state stays within a store item.
    pub fn evict_over(&mut self, max: usize) -> Vec<Expired> {
        let mut out = Vec::new();
        while self.len() > max {
            let Some((key, half)) = self.pop_first(None) else {
                break;
            };
            out.push(leave(key, &half));
        }
        out
    }

    /// Waiting halves in a stable order (for saving).
    pub fn iter(&self) -> impl Iterator<Item = (&HalfKey, &Half)> {
        self.by_deadline.iter().map(|((_, key), half)| (key, half))
    }
}

fn leave(key: HalfKey, half: &Half) -> Expired {
    match Edge::to_virtual(half) {
        Some(edge) => Expired::Virtual {
            key,
            kept: half.kept,
            edge,
        },
        None => Expired::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attributes;
    use crate::spans::SpanStatus;

    fn span(id: u8, parent: Option<u8>, service: &str, kind: SpanKind, start_ms: u64) -> Span {
        Span {
            trace_id: [7; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            service: service.into(),
            name: "op".into(),
            kind,
            start_unix_nano: start_ms * 1_000_000,
            end_unix_nano: (start_ms + 10) * 1_000_000,
            status: SpanStatus::Unset,
            attributes: Attributes::new(),
        }
    }

    #[test]
    fn a_server_half_arriving_first_waits_and_pairs_with_its_client() {
        let mut pending = Pending::new();
        let (key, server) =
            Half::of(&span(2, Some(1), "db-api", SpanKind::Server, 5), false).unwrap();
        assert_eq!(pending.offer(key, server), Offer::Waiting);
        let (key, client) = Half::of(&span(1, Some(0), "web", SpanKind::Client, 0), false).unwrap();
        let Offer::Paired(edge) = pending.offer(key, client) else {
            panic!("expected a pair");
        };
        assert_eq!(
            (edge.client.as_str(), edge.server.as_str()),
            ("web", "db-api")
        );
        assert_eq!(edge.connection, Connection::Call);
        assert_eq!(edge.duration_nanos, 10_000_000);
        assert!(pending.is_empty());
    }

    #[test]
    fn messaging_latency_runs_from_publish_to_consume() {
        let mut pending = Pending::new();
        let (key, producer) =
            Half::of(&span(1, None, "shop", SpanKind::Producer, 0), false).unwrap();
        pending.offer(key, producer);
        let (key, consumer) =
            Half::of(&span(2, Some(1), "mailer", SpanKind::Consumer, 250), false).unwrap();
        let Offer::Paired(edge) = pending.offer(key, consumer) else {
            panic!("expected a pair");
        };
        assert_eq!(edge.connection, Connection::Messaging);
        assert_eq!(edge.duration_nanos, 250_000_000);
    }

    #[test]
    fn expired_callers_naming_a_peer_become_virtual_edges_others_are_dropped() {
        let mut pending = Pending::new();
        let mut db_call = span(1, None, "api", SpanKind::Client, 0);
        db_call
            .attributes
            .insert("db.system".into(), "postgresql".into());
        let (key, mut half) = Half::of(&db_call, true).unwrap();
        half.deadline_unix_nano = 100;
        pending.offer(key, half);
        let (key, mut anonymous) =
            Half::of(&span(3, None, "api", SpanKind::Client, 0), false).unwrap();
        anonymous.deadline_unix_nano = 200;
        pending.offer(key, anonymous);

        assert!(pending.expire(100).is_empty(), "deadline not yet passed");
        let expired = pending.expire(101);
        let [Expired::Virtual { edge, kept, .. }] = expired.as_slice() else {
            panic!("expected one virtual edge, got {expired:?}");
        };
        assert!(kept);
        assert_eq!(edge.server, "postgresql");
        assert_eq!(edge.server_kind, NodeKind::Database);
        assert_eq!(pending.expire(1_000), vec![Expired::Dropped]);
    }

    #[test]
    fn peer_service_names_the_virtual_node_before_the_system() {
        let mut call = span(1, None, "api", SpanKind::Client, 0);
        call.attributes.insert("db.system".into(), "redis".into());
        call.attributes
            .insert("peer.service".into(), "sessions".into());
        assert_eq!(
            VirtualPeer::of(&call),
            Some(VirtualPeer {
                name: "sessions".into(),
                kind: NodeKind::Database
            })
        );
        let mut http = span(1, None, "api", SpanKind::Client, 0);
        http.attributes
            .insert("server.address".into(), "api.stripe.com".into());
        assert_eq!(
            VirtualPeer::of(&http).map(|p| p.kind),
            Some(NodeKind::External)
        );
    }

    #[test]
    fn eviction_removes_the_halves_closest_to_their_deadline() {
        let mut pending = Pending::new();
        for (id, deadline) in [(1u8, 30u64), (2, 10), (3, 20)] {
            let (key, mut half) =
                Half::of(&span(id, None, "api", SpanKind::Client, 0), false).unwrap();
            half.deadline_unix_nano = deadline;
            pending.offer(key, half);
        }
        assert_eq!(pending.evict_over(1).len(), 2);
        let left: Vec<u64> = pending.iter().map(|(_, h)| h.deadline_unix_nano).collect();
        assert_eq!(left, [30]);
    }
}
