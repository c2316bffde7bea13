//! The live `trace` event: a kept trace's service hops with timings, for the dashboard to animate
//! along the service graph. Sent batched with the other live updates (a `ServerMessage` variant
//! carrying `Vec<TraceEvent>`).

use serde::{Deserialize, Serialize};

/// What one batch learned about one kept trace. A trace whose spans arrive over several batches
/// yields one event per batch, each with the hops paired in that batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceEvent {
    pub trace_id: String,
    /// The root span's service, or until the root arrives the service that decided the trace.
    pub root_service: String,
    pub root_name: Option<String>,
    /// Earliest span start seen so far (unix ms).
    pub start_unix_ms: f64,
    /// Latest span end seen so far minus the start.
    pub duration_ms: f64,
    pub error: bool,
    /// Why it was kept: `quota`, `ratio` or `error` (absent for a virtual edge's event, whose
    /// trace the batch did not otherwise touch).
    pub reason: Option<String>,
    pub hops: Vec<TraceHop>,
}

/// One request from a service to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceHop {
    pub from: String,
    pub to: String,
    /// `call` or `messaging`.
    pub kind: String,
    /// What `to` is: `service`, `database`, `messaging` or `external`.
    pub to_kind: String,
    /// From the trace's start to the caller's span start.
    pub offset_ms: f64,
    pub duration_ms: f64,
    pub error: bool,
}

impl TraceEvent {
    /// Services the event touches: for routing it to subscribers of those services.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.root_service.as_str()).chain(
            self.hops
                .iter()
                .flat_map(|h| [h.from.as_str(), h.to.as_str()]),
        )
    }
}
