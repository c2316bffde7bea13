//! What the trace processor remembers between batches, and its byte form in
//! `StateStore::save_state` items.
//!
//! - One item per shard ([`shard_key`]): the shard's event time, the edge halves waiting for their
//!   partner, and the sampling quota counts. Bounded by `TraceConfig::max_pending_halves` so that it
//!   fits a DynamoDB item (about 90 bytes per half).
//! - One item per recent trace ([`trace_key`]): its sampling decision, what the live view shows of it,
//!   and the ids of the spans already applied, which is what makes a redelivered or duplicated span
//!   count once.
//!
//! Items are a version byte followed by a protobuf message (prost derives, like the stream records):
//! fields can be added without breaking stored state.

use std::collections::HashSet;

use prost::encoding::{self, WireType};
use prost::Message;

use super::graph::{Half, HalfKey, NodeKind, Pending, Role, VirtualPeer};
use super::sampling::{Decision, KeepReason, Quotas};
use crate::spans::hex;

const STATE_VERSION: u8 = 1;

pub fn shard_key(shard_id: &str) -> String {
    format!("traces.shard.{shard_id}")
}

pub fn trace_key(trace_id: &[u8; 16]) -> String {
    format!("traces.trace.{}", hex(trace_id))
}

#[derive(Debug, thiserror::Error)]
#[error("trace state is malformed: {0}")]
pub struct StateError(String);

/// Per-shard state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardState {
    /// Latest span end seen on the shard (see `graph` for why expiry runs on it).
    pub event_time_unix_nano: u64,
    pub pending: Pending,
    pub quotas: Quotas,
}

/// Per-trace state.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceState {
    pub decision: Decision,
    /// The service whose quota decided the trace (its root's, when the root came first).
    pub service: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// (service, name) of the span without a parent, once seen.
    pub root: Option<(String, String)>,
    pub error: bool,
    /// Span ids (big-endian) already applied; capped, see `TraceConfig::max_seen_spans`.
    pub seen: HashSet<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ShardStateMessage {
    #[prost(fixed64, tag = "1")]
    event_time_unix_nano: u64,
    #[prost(message, repeated, tag = "2")]
    pending: Vec<HalfMessage>,
    #[prost(message, repeated, tag = "3")]
    quotas: Vec<QuotaMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HalfMessage {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(fixed64, tag = "2")]
    caller_span_id: u64,
    #[prost(uint32, tag = "3")]
    role: u32,
    #[prost(string, tag = "4")]
    service: String,
    #[prost(fixed64, tag = "5")]
    start_unix_nano: u64,
    #[prost(fixed64, tag = "6")]
    end_unix_nano: u64,
    #[prost(bool, tag = "7")]
    error: bool,
    #[prost(string, optional, tag = "8")]
    peer_name: Option<String>,
    #[prost(uint32, tag = "9")]
    peer_kind: u32,
    #[prost(fixed64, tag = "10")]
    deadline_unix_nano: u64,
    #[prost(bool, tag = "11")]
    kept: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct QuotaMessage {
    #[prost(string, tag = "1")]
    service: String,
    #[prost(int64, tag = "2")]
    minute: i64,
    #[prost(uint32, tag = "3")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TraceStateMessage {
    /// 1 quota, 2 ratio, 3 error (kept); 4 dropped.
    #[prost(uint32, tag = "1")]
    decision: u32,
    #[prost(string, tag = "2")]
    service: String,
    #[prost(fixed64, tag = "3")]
    start_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    end_unix_nano: u64,
    #[prost(string, optional, tag = "5")]
    root_service: Option<String>,
    #[prost(string, optional, tag = "6")]
    root_name: Option<String>,
    #[prost(bool, tag = "7")]
    error: bool,
    #[prost(fixed64, repeated, tag = "8")]
    seen: Vec<u64>,
}

/// A length-delimited field (bytes, string or an encoded message).
fn put_length_delimited(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    encoding::encode_key(tag, WireType::LengthDelimited, out);
    encoding::encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// A `HalfMessage`'s fields as prost encodes them (proto3: fields at their default are left out).
fn encode_half(trace_id: &[u8; 16], span_id: &[u8; 8], half: &Half, out: &mut Vec<u8>) {
    put_length_delimited(1, trace_id, out);
    let caller_span_id = u64::from_be_bytes(*span_id);
    if caller_span_id != 0 {
        encoding::fixed64::encode(2, &caller_span_id, out);
    }
    let role = half.role.code();
    if role != 0 {
        encoding::uint32::encode(3, &role, out);
    }
    if !half.service.is_empty() {
        put_length_delimited(4, half.service.as_bytes(), out);
    }
    if half.start_unix_nano != 0 {
        encoding::fixed64::encode(5, &half.start_unix_nano, out);
    }
    if half.end_unix_nano != 0 {
        encoding::fixed64::encode(6, &half.end_unix_nano, out);
    }
    if half.error {
        encoding::bool::encode(7, &half.error, out);
    }
    if let Some(peer) = &half.peer {
        put_length_delimited(8, peer.name.as_bytes(), out);
        let kind = peer.kind.code();
        if kind != 0 {
            encoding::uint32::encode(9, &kind, out);
        }
    }
    if half.deadline_unix_nano != 0 {
        encoding::fixed64::encode(10, &half.deadline_unix_nano, out);
    }
    if half.kept {
        encoding::bool::encode(11, &half.kept, out);
    }
}

fn with_version(message: &impl Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + message.encoded_len());
    out.push(STATE_VERSION);
    message.encode_raw(&mut out);
    out
}

fn body(bytes: &[u8]) -> Result<&[u8], StateError> {
    match bytes.split_first() {
        Some((&STATE_VERSION, body)) => Ok(body),
        Some((version, _)) => Err(StateError(format!("unknown version {version}"))),
        None => Err(StateError("empty item".into())),
    }
}

impl ShardState {
    /// The item's bytes: the same as prost's encoding of a `ShardStateMessage`, written straight from
    /// the state. Building the message first cost three allocations per waiting half, and the shard
    /// item is saved after every batch with up to `TraceConfig::max_pending_halves` halves.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 16 + self.pending.len() * 96);
        out.push(STATE_VERSION);
        if self.event_time_unix_nano != 0 {
            encoding::fixed64::encode(1, &self.event_time_unix_nano, &mut out);
        }
        let mut half_bytes = Vec::with_capacity(128);
        for ((trace_id, span_id), half) in self.pending.iter() {
            half_bytes.clear();
            encode_half(trace_id, span_id, half, &mut half_bytes);
            put_length_delimited(2, &half_bytes, &mut out);
        }
        for (service, minute, count) in self.quotas.iter() {
            let quota = QuotaMessage {
                service: service.to_string(),
                minute,
                count,
            };
            encoding::message::encode(3, &quota, &mut out);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ShardState, StateError> {
        let message = ShardStateMessage::decode(body(bytes)?)
            .map_err(|e| StateError(format!("shard state: {e}")))?;
        let mut pending = Pending::new();
        for half in message.pending {
            let trace_id: [u8; 16] = half
                .trace_id
                .as_slice()
                .try_into()
                .map_err(|_| StateError("trace id is not 16 bytes".into()))?;
            let role = Role::from_code(half.role)
                .ok_or_else(|| StateError(format!("unknown role {}", half.role)))?;
            let key: HalfKey = (trace_id, half.caller_span_id.to_be_bytes());
            pending.insert(
                key,
                Half {
                    role,
                    service: half.service,
                    start_unix_nano: half.start_unix_nano,
                    end_unix_nano: half.end_unix_nano,
                    error: half.error,
                    peer: half.peer_name.map(|name| VirtualPeer {
                        name,
                        kind: NodeKind::from_code(half.peer_kind),
                    }),
                    deadline_unix_nano: half.deadline_unix_nano,
                    kept: half.kept,
                },
            );
        }
        let mut quotas = Quotas::new();
        for quota in message.quotas {
            quotas.insert(quota.service, quota.minute, quota.count);
        }
        Ok(ShardState {
            event_time_unix_nano: message.event_time_unix_nano,
            pending,
            quotas,
        })
    }
}

impl TraceState {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut seen: Vec<u64> = self.seen.iter().copied().collect();
        // Sorted so that equal states have equal bytes.
        seen.sort_unstable();
        let (root_service, root_name) = match &self.root {
            Some((service, name)) => (Some(service.clone()), Some(name.clone())),
            None => (None, None),
        };
        with_version(&TraceStateMessage {
            decision: match self.decision {
                Decision::Keep(KeepReason::Quota) => 1,
                Decision::Keep(KeepReason::Ratio) => 2,
                Decision::Keep(KeepReason::Error) => 3,
                Decision::Drop => 4,
            },
            service: self.service.clone(),
            start_unix_nano: self.start_unix_nano,
            end_unix_nano: self.end_unix_nano,
            root_service,
            root_name,
            error: self.error,
            seen,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<TraceState, StateError> {
        let message = TraceStateMessage::decode(body(bytes)?)
            .map_err(|e| StateError(format!("trace state: {e}")))?;
        let decision = match message.decision {
            1 => Decision::Keep(KeepReason::Quota),
            2 => Decision::Keep(KeepReason::Ratio),
            3 => Decision::Keep(KeepReason::Error),
            4 => Decision::Drop,
            other => return Err(StateError(format!("unknown decision {other}"))),
        };
        Ok(TraceState {
            decision,
            service: message.service,
            start_unix_nano: message.start_unix_nano,
            end_unix_nano: message.end_unix_nano,
            root: message.root_service.zip(message.root_name),
            error: message.error,
            seen: message.seen.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_state_round_trips_with_pending_halves_and_quotas() {
        let mut state = ShardState {
            event_time_unix_nano: 42,
            ..ShardState::default()
        };
        state.pending.insert(
            ([3; 16], [4; 8]),
            Half {
                role: Role::Client,
                service: "api".into(),
                start_unix_nano: 1,
                end_unix_nano: 2,
                error: true,
                peer: Some(VirtualPeer {
                    name: "postgresql".into(),
                    kind: NodeKind::Database,
                }),
                deadline_unix_nano: 99,
                kept: true,
            },
        );
        state.quotas.insert("api".into(), 7, 3);
        let back = ShardState::from_bytes(&state.to_bytes()).unwrap();
        assert_eq!(back, state);
    }

    /// The shard item as prost encodes the message (how it was written before the direct encoder).
    fn prost_bytes(state: &ShardState) -> Vec<u8> {
        let message = ShardStateMessage {
            event_time_unix_nano: state.event_time_unix_nano,
            pending: state
                .pending
                .iter()
                .map(|((trace_id, span_id), half)| HalfMessage {
                    trace_id: trace_id.to_vec(),
                    caller_span_id: u64::from_be_bytes(*span_id),
                    role: half.role.code(),
                    service: half.service.clone(),
                    start_unix_nano: half.start_unix_nano,
                    end_unix_nano: half.end_unix_nano,
                    error: half.error,
                    peer_name: half.peer.as_ref().map(|p| p.name.clone()),
                    peer_kind: half.peer.as_ref().map_or(0, |p| p.kind.code()),
                    deadline_unix_nano: half.deadline_unix_nano,
                    kept: half.kept,
                })
                .collect(),
            quotas: state
                .quotas
                .iter()
                .map(|(service, minute, count)| QuotaMessage {
                    service: service.to_string(),
                    minute,
                    count,
                })
                .collect(),
        };
        with_version(&message)
    }

    #[test]
    fn shard_state_bytes_are_prosts_encoding_so_stored_items_read_the_same() {
        let mut state = ShardState::default();
        assert_eq!(state.to_bytes(), prost_bytes(&state));
        state.event_time_unix_nano = 7;
        let halves = [
            // Every field at its proto3 default except the trace id.
            (
                [0; 16],
                [0; 8],
                Role::Server,
                "",
                0,
                0,
                false,
                None,
                0,
                false,
            ),
            (
                [1; 16],
                [2; 8],
                Role::Client,
                "api",
                10,
                20,
                true,
                Some(("", NodeKind::Service)),
                30,
                true,
            ),
            (
                [3; 16],
                [4; 8],
                Role::Producer,
                "q",
                11,
                21,
                false,
                Some(("kafka", NodeKind::Messaging)),
                31,
                false,
            ),
        ];
        for (trace_id, span_id, role, service, start, end, error, peer, deadline, kept) in halves {
            state.pending.insert(
                (trace_id, span_id),
                Half {
                    role,
                    service: service.into(),
                    start_unix_nano: start,
                    end_unix_nano: end,
                    error,
                    peer: peer.map(|(name, kind)| VirtualPeer {
                        name: name.into(),
                        kind,
                    }),
                    deadline_unix_nano: deadline,
                    kept,
                },
            );
        }
        state.quotas.insert("api".into(), 7, 3);
        state.quotas.insert("web".into(), 0, 0);
        assert_eq!(state.to_bytes(), prost_bytes(&state));
        assert_eq!(ShardState::from_bytes(&state.to_bytes()).unwrap(), state);
    }

    #[test]
    fn trace_state_round_trips_and_garbage_is_an_error_not_a_panic() {
        let state = TraceState {
            decision: Decision::Keep(KeepReason::Error),
            service: "api".into(),
            start_unix_nano: 5,
            end_unix_nano: 9,
            root: Some(("api".into(), "GET /".into())),
            error: true,
            seen: [1u64, 2, 3].into_iter().collect(),
        };
        assert_eq!(TraceState::from_bytes(&state.to_bytes()).unwrap(), state);
        assert!(TraceState::from_bytes(&[]).is_err());
        assert!(TraceState::from_bytes(&[9, 1, 2]).is_err());
        assert!(ShardState::from_bytes(&[1, 0xff, 0xff, 0xff]).is_err());
    }
}
