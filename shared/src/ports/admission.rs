//! Admission of new series against the active-series limits (issue 10): an in-memory adapter
//! locally, DynamoDB counters on AWS where many ingest instances share the limits.

use async_trait::async_trait;

use crate::domain::limits::{
    MetricSeries, RefusalReport, RefusedSeries, SeriesLimits, SeriesRefusal,
};

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("series admission is throttled; retry later: {0}")]
    Throttled(String),
    #[error("series admission is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait SeriesAdmission: Send + Sync {
    /// The limits this adapter enforces.
    fn limits(&self) -> SeriesLimits;

    /// Decides, for each group of one request (one service and metric, distinct series ids), which
    /// series may write. Series active within the window always pass and are refreshed; new ones
    /// are admitted in the given order while the metric and its service are under their limits.
    /// Returns one entry per group, in order.
    async fn admit(
        &self,
        now_unix_s: i64,
        groups: &[MetricSeries],
    ) -> Result<Vec<RefusedSeries>, AdmissionError>;

    /// Adds refusals to the counts served at `GET /api/limits`.
    async fn record_refusals(
        &self,
        now_unix_s: i64,
        refusals: &[SeriesRefusal],
    ) -> Result<(), AdmissionError>;

    /// Refusal counts per service and metric, with a few example attribute sets each.
    async fn refusals(&self) -> Result<RefusalReport, AdmissionError>;
}
