//! Alert persistence and notification delivery (DynamoDB / a queue-fed function on AWS; redb and an
//! HTTP client locally).

use async_trait::async_trait;

use crate::domain::alerts::notification::{DeadLetter, Notification};
use crate::domain::alerts::silence::Silence;
use crate::domain::alerts::state::{AlertState, AlertTransition};

use super::store::StoreError;

/// The alert store's error: the one [`StoreError`] of every storage port.
pub type AlertStoreError = StoreError;

/// Result of a conditional state write.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// Stored as this version (the expected version + 1).
    Written { version: u64 },
    /// Someone else wrote first: the stored state is not at the expected version. Carries what is
    /// stored now (`None` if nothing), so the caller can re-evaluate against it.
    Conflict { current: Option<Box<AlertState>> },
}

/// Also the [`SinkStateStore`] of stateful sinks: their state lives with the alert states.
#[async_trait]
pub trait AlertStore: SinkStateStore + Send + Sync {
    async fn get_state(&self, fingerprint: &str) -> Result<Option<AlertState>, AlertStoreError>;

    /// Every stored alert state (alerts are few: rules × services).
    async fn list_states(&self) -> Result<Vec<AlertState>, AlertStoreError>;

    /// Stores `state` as version `expected_version + 1` if the stored version is `expected_version`
    /// (0: nothing stored yet), and appends `history` in the same atomic step, each entry kept until
    /// `history_expires_at`. `state.version` is ignored. On DynamoDB: a TransactWriteItems with a
    /// condition on `version`.
    async fn put_state(
        &self,
        state: &AlertState,
        expected_version: u64,
        history: &[AlertTransition],
        history_expires_at: i64,
    ) -> Result<PutOutcome, AlertStoreError>;

    /// Transitions with `from <= at < to`, newest first, at most `limit` (the newest ones).
    async fn history(
        &self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, AlertStoreError>;

    /// Creates or replaces a silence (by id).
    async fn put_silence(&self, silence: &Silence) -> Result<(), AlertStoreError>;

    /// Every stored silence, expired ones included until purged.
    async fn list_silences(&self) -> Result<Vec<Silence>, AlertStoreError>;

    /// Returns whether it existed.
    async fn delete_silence(&self, id: &str) -> Result<bool, AlertStoreError>;

    /// Records a notification that could not be delivered.
    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), AlertStoreError>;

    /// Dead letters, newest first, at most `limit`.
    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, AlertStoreError>;

    /// Deletes history and dead letters past their expiry and silences that have ended
    /// (DynamoDB's TTL does this by itself). Returns how many items went.
    async fn purge_expired(&self, now_unix_s: i64) -> Result<u64, AlertStoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Worth retrying: connection failures, timeouts, HTTP 429 and 5xx.
    #[error("delivery failed (will retry): {0}")]
    Retryable(String),
    /// Retrying cannot help: bad URL, HTTP 4xx other than 408/429.
    #[error("delivery failed permanently: {0}")]
    Permanent(String),
}

/// One notification sink (a webhook, Slack, ...). Makes one delivery attempt per call; retries,
/// grouping and dead letters are the caller's ([`crate::alerts::notify::Dispatcher`]).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Name of the sink, for logs and dead letters.
    fn name(&self) -> &str;

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// What a stateful sink remembers per notification group across restarts (the Jira sink: the issue
/// of a service's firing group). Keyed by sink name and group; the value is the sink's own JSON. It
/// lives beside the alert states: a table of the alert store's redb file locally, items of the
/// alerts table on AWS.
#[async_trait]
pub trait SinkStateStore: Send + Sync {
    async fn get_sink_state(
        &self,
        sink: &str,
        group: &str,
    ) -> Result<Option<String>, AlertStoreError>;

    async fn put_sink_state(
        &self,
        sink: &str,
        group: &str,
        value: &str,
    ) -> Result<(), AlertStoreError>;

    /// Returns whether it existed.
    async fn delete_sink_state(&self, sink: &str, group: &str) -> Result<bool, AlertStoreError>;
}
