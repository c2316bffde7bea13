//! Alerting: rules evaluated against the buckets in the store, a state machine per alert written
//! with conditional (versioned) writes, silences and acknowledgements, and notifications grouped per
//! service and delivered with retries. `docs/alerts.md` is the user-facing description.
//!
//! - [`rules`]: rule types and the YAML rules file (validated, line-numbered errors)
//! - [`evaluate`]: pure — bucket windows → value → severity; anomaly baselines
//! - [`state`]: pure — the per-alert state machine and transition records
//! - [`engine`]: [`AlertEngine::evaluate`] reads the [`crate::ports::MetricStore`] and writes the
//!   [`crate::ports::AlertStore`]
//! - [`silence`], [`notify`] (grouping, retries, dead letters), [`webhook`] (HTTP sinks)
//! - [`api`]: the HTTP routes; [`wire`]: the WebSocket `alert` event
//!
//! Time is always passed in (`now_unix_s`), never read from a clock, so behaviour is reproducible.

pub mod api;
pub mod engine;
pub mod evaluate;
#[cfg(feature = "webhook")]
pub mod jira;
pub mod live_rules;
pub mod log_sink;
pub mod notify;
pub mod rules;
pub use crate::domain::alerts::{silence, state};
#[cfg(feature = "webhook")]
pub mod webhook;
pub mod wire;

pub use api::AlertApi;
pub use engine::{AlertEngine, EvaluationReport};
pub use live_rules::{LiveRules, ReplaceError, RuleSource, Versioned};
pub use notify::{Dispatcher, Notification};
pub use rules::{RuleSet, RulesError};
pub use state::{AlertState, AlertStatus, AlertTransition, Severity, TransitionKind};
pub use wire::AlertEvent;

use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Reading the metric store failed (`?` on a metric read lands here).
    #[error("reading metrics: {0}")]
    Metrics(#[from] StoreError),
    /// The alert store failed (mapped explicitly: the same error type as a metric read).
    #[error(transparent)]
    Store(StoreError),
    #[error(
        "alert {0} kept changing under concurrent evaluators; it is evaluated again next time"
    )]
    Contention(String),
    /// An `expr` rule's expression failed to evaluate (e.g. a type error over the data it met).
    #[error("evaluating the expression: {0}")]
    Expr(String),
}
