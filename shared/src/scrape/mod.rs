//! Prometheus pull collection: scrape `/metrics` endpoints and feed what they expose through the
//! OTLP receiver ([`crate::ingest::Ingest`]) as if it had been pushed.
//!
//! - [`parse`]: the text exposition format and OpenMetrics, with limits.
//! - [`mapping`]: an exposition → OTLP requests (the OpenTelemetry Prometheus-compatibility mapping)
//!   plus the synthetic `up`, `scrape_duration_seconds`, `scrape_samples_scraped`.
//! - [`config`]: Prometheus's own `scrape_configs` syntax, relabeling, and the target sources
//!   ([`config::ScrapeTargetSource`]: static, file and HTTP service discovery; the service registry can
//!   add its own).
//! - [`registry_source`]: the service registry's instances with a `metrics_url` as targets.
//! - [`client`] (feature `scrape`): the HTTP scrape itself and [`client::scrape_once`], which runs one
//!   scrape of one target into the receiver.

pub mod config;
pub mod mapping;
pub mod parse;
pub mod registry_source;

#[cfg(feature = "scrape")]
pub mod client;
#[cfg(all(feature = "scrape", feature = "aws"))]
pub mod dynamo;
#[cfg(feature = "scrape")]
pub mod scheduled;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

use crate::ingest::Ingest;
use crate::ports::StreamSink;

/// What the receiver said about one scrape's points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Points the receiver refused in a partial success (invalid, limits, series limits).
    pub rejected_points: u64,
    /// The receiver's reasons (first of each request), for the log.
    pub messages: Vec<String>,
    /// Requests refused whole (status, message): the stream was unavailable, or a bug.
    pub refused: Vec<(u16, String)>,
}

/// Hands mapped requests to the receiver, as protobuf, exactly like an OTLP exporter would.
pub async fn deliver<S: StreamSink + ?Sized>(
    ingest: &Ingest<S>,
    requests: Vec<ExportMetricsServiceRequest>,
) -> Delivery {
    let mut delivery = Delivery::default();
    for request in requests {
        let response = ingest.handle_metrics(&request).await;
        if response.status != 200 {
            let message = crate::otlp::response::Status::decode(response.body.as_slice())
                .map(|s| s.message)
                .unwrap_or_else(|_| format!("status {}", response.status));
            delivery.refused.push((response.status, message));
            continue;
        }
        if let Ok(decoded) = ExportMetricsServiceResponse::decode(response.body.as_slice()) {
            if let Some(partial) = decoded.partial_success {
                delivery.rejected_points +=
                    u64::try_from(partial.rejected_data_points).unwrap_or(0);
                if !partial.error_message.is_empty() {
                    delivery.messages.push(partial.error_message);
                }
            }
        }
    }
    delivery
}
