//! The `flowscope` binary's commands as a library, so integration tests can start local mode and the
//! load generator in-process.

pub mod loadgen;
pub mod local;
