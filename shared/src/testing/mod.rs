//! Test support for every crate of the workspace (feature `test-util`, never in a shipped build): the
//! in-memory metric store, a fault-injecting wrapper for any metric store, and an HTTP receiver for
//! webhook tests; OTLP request builders with a recording stream sink ([`otlp`]) and point, record
//! and batch builders for the aggregation tests ([`points`]). Tests, benchmarks and
//! the integration tests depend on `flowscope-core` with `features = ["test-util"]` instead of
//! including files from another crate's `tests/` with `#[path]`.
//!
//! Test doubles may panic: a poisoned lock here is a failed test, not hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod http_receiver;
pub mod jira_receiver;
pub mod memory_store;
pub mod otlp;
pub mod points;
pub mod process;

pub use memory_store::{FailingStore, MemoryStore, ReadMode, StoreCalls, StoredBucket};
