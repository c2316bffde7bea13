//! The `flowscope` binary's commands as a library, so integration tests can start local mode and the
//! load generator in-process.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod loadgen;
pub mod local;
pub mod logs;
