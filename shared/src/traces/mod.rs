//! Traces: RED metrics, the service graph, sampling, trace storage with the critical path, and live
//! trace events — everything Flowscope derives from spans.
//!
//! Span records (partitioned by trace id, so a trace's spans reach one shard in order) go through
//! [`processor::TraceProcessor`], which [`fold`]s them into:
//! - [`red`] series (`red.*`) and [`graph`] edge series (`graph.edge.*`), written to the
//!   [`crate::ports::MetricStore`] like any metric, exactly once under the per-shard watermarks;
//! - [`sampling`] decisions; kept traces go to a [`crate::ports::TraceStore`];
//! - live [`wire::TraceEvent`]s.
//!
//! [`api`] serves `GET /api/traces/{id}` (span tree with the [`critical_path`]),
//! `GET /api/services/{service}/traces` and `GET /api/graph`.

pub mod api;
pub mod config;
pub mod critical_path;
pub mod fold;
pub mod graph;
pub mod graph_view;
pub mod processor;
pub mod red;
pub mod sampling;
pub mod series;
pub mod state;
pub mod trace_view;
pub mod wire;

pub use config::TraceConfig;
pub use processor::{TraceCounters, TraceOutcome, TraceProcessor};
pub use sampling::SamplingPolicy;
pub use wire::{TraceEvent, TraceHop};
