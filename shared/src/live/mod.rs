//! Live updates: the WebSocket protocol, batching with sequence numbers and resume, route logic,
//! and fan-out through the pusher port.

pub mod events;
pub mod fanout;
pub mod hub;
pub mod session;
pub mod wire;

pub use events::{deliver_events, FanoutEvents};
pub use fanout::{Fanout, FanoutReport};
pub use hub::{
    HubConfig, LiveBatch, LiveHub, ReplayStats, DEFAULT_REPLAY_BYTES, DEFAULT_SNAPSHOT_MAX_SERIES,
};
pub use wire::{
    ClientMessage, EncodedParts, LiveSeries, LiveUpdate, ServerMessage, SharedSeries,
    MAX_MESSAGE_BYTES,
};
