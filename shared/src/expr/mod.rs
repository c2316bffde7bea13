//! Flowscope's expression language: PromQL-flavoured queries over the bucket store ([`parse`] →
//! [`eval`]), with metric and label names mapped as the OpenTelemetry–Prometheus compatibility
//! specification says ([`names`]). Served by `GET /api/query` and the Prometheus read API
//! (`crate::http::promql`); documented in `docs/query-language.md`.

pub mod eval;
pub mod names;
pub mod parse;

pub use eval::{evaluate, EvalError, ExprLimits, QueryResult, QueryTimes, Value};
pub use parse::{parse, ExprError};
