//! Flowscope's core: everything between an OTLP request and a live dashboard update, independent of
//! where it runs. Lambda functions (`functions/`) and local mode (`cli/`) only wire adapters to it.
//!
//! Flow: [`otlp`] decodes and validates requests into [`model`] points → [`record`] packs them into
//! stream records → [`ports::StreamSink`] → [`aggregate`] folds shard batches into buckets in a
//! [`ports::MetricStore`] → [`live`] batches updates to subscribed clients through a
//! [`ports::ConnectionPusher`]. [`query`] reads the store back; [`http`] serves the API and the receiver as one axum router.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod aggregate;
pub mod alerts;
pub mod auth;
#[cfg(feature = "aws")]
pub mod aws;
pub mod cardinality;
pub mod domain;
pub mod duration;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod expr;
pub mod http;
pub mod ingest;
pub mod key_limits;
pub mod live;
pub mod model;
pub mod otlp;
pub mod pipeline;
pub mod ports;
#[cfg(feature = "webhook")]
pub mod probing;
pub mod profiles;
pub mod profiling;
pub mod query;
pub mod record;
pub mod registry;
pub mod scrape;
pub mod sketch;
pub mod spans;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod tokens;
pub mod traces;
