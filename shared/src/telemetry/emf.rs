//! CloudWatch Embedded Metric Format (EMF): a structured log line CloudWatch Logs turns into metrics.
//!
//! The specification's required structure, which [`EmfLine::to_json`] always produces:
//! a root object with `_aws` = `{ "Timestamp": <ms since epoch>, "CloudWatchMetrics": [
//! { "Namespace": "...", "Dimensions": [["DimA", ...]], "Metrics": [{ "Name": "...", "Unit": "..." }] }] }`,
//! and, at the root, a member for every dimension key (a string) and every metric name (a number or
//! an array of up to 100 numbers). Limits: at most 100 metrics per directive, 30 dimensions per
//! set; names 1–255 characters. See
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.

use serde_json::{json, Map, Value};

use crate::ingest::IngestStatsSnapshot;

/// The namespace Flowscope's functions publish under.
pub const NAMESPACE: &str = "Flowscope";
/// Most metrics one EMF directive may carry.
pub const MAX_METRICS: usize = 100;

/// A CloudWatch unit (the subset Flowscope uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
    Bytes,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One EMF log line: dimensions (the function's name, …) and metric values.
#[derive(Debug, Clone)]
pub struct EmfLine {
    namespace: String,
    timestamp_ms: i64,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, f64)>,
}

impl EmfLine {
    /// A line stamped `timestamp_ms`, with the single dimension `Function` = `function`.
    pub fn new(function: &str, timestamp_ms: i64) -> EmfLine {
        EmfLine {
            namespace: NAMESPACE.to_string(),
            timestamp_ms,
            dimensions: vec![("Function".to_string(), function.to_string())],
            metrics: Vec::new(),
        }
    }

    /// Adds a metric; non-finite values are left out (EMF values must be numbers), and so are
    /// metrics beyond [`MAX_METRICS`].
    pub fn metric(mut self, name: &str, unit: Unit, value: f64) -> EmfLine {
        if value.is_finite() && self.metrics.len() < MAX_METRICS {
            self.metrics.push((name.to_string(), unit, value));
        }
        self
    }

    /// The JSON document (one line).
    pub fn to_json(&self) -> String {
        let mut root = Map::new();
        let dimension_keys: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        root.insert(
            "_aws".to_string(),
            json!({
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_keys],
                    "Metrics": metrics,
                }],
            }),
        );
        for (key, value) in &self.dimensions {
            root.insert(key.clone(), Value::String(value.clone()));
        }
        for (name, _, value) in &self.metrics {
            root.insert(name.clone(), json!(value));
        }
        Value::Object(root).to_string()
    }

    /// Writes the line to stdout, where Lambda sends it to the function's log group.
    pub fn emit(&self) {
        println!("{}", self.to_json());
    }
}

/// What the receiver did between two snapshots of its counters (one invocation of the ingest
/// function: Lambda runs one request per container at a time), as an EMF line.
pub fn ingest_line(
    function: &str,
    timestamp_ms: i64,
    before: &IngestStatsSnapshot,
    after: &IngestStatsSnapshot,
) -> EmfLine {
    let delta = |a: u64, b: u64| b.saturating_sub(a) as f64;
    EmfLine::new(function, timestamp_ms)
        .metric(
            "AcceptedDataPoints",
            Unit::Count,
            delta(before.accepted_data_points, after.accepted_data_points),
        )
        .metric(
            "RejectedDataPoints",
            Unit::Count,
            delta(before.rejected_data_points, after.rejected_data_points),
        )
        .metric(
            "AcceptedSpans",
            Unit::Count,
            delta(before.accepted_spans, after.accepted_spans),
        )
        .metric(
            "RejectedSpans",
            Unit::Count,
            delta(before.rejected_spans, after.rejected_spans),
        )
        .metric(
            "RefusedRequests",
            Unit::Count,
            delta(before.refused_requests, after.refused_requests),
        )
        .metric(
            "StreamRecords",
            Unit::Count,
            delta(before.stream_records, after.stream_records),
        )
        .metric(
            "StreamBytes",
            Unit::Bytes,
            delta(before.stream_bytes, after.stream_bytes),
        )
}

/// One aggregator invocation: the batch's records, the records to deliver again, and its duration.
pub fn aggregator_line(
    function: &str,
    timestamp_ms: i64,
    records: usize,
    failed_items: usize,
    seconds: f64,
) -> EmfLine {
    EmfLine::new(function, timestamp_ms)
        .metric("BatchRecords", Unit::Count, records as f64)
        .metric("BatchItemFailures", Unit::Count, failed_items as f64)
        .metric("BatchDuration", Unit::Seconds, seconds)
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The function's name as Lambda gives it (`AWS_LAMBDA_FUNCTION_NAME`), else `fallback`.
pub fn function_name(fallback: &str) -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| fallback.to_string())
}

/// The ingest function's router with one EMF line per request: what the receiver counted while
/// answering it (Lambda runs one request per container at a time, so the difference of the
/// receiver's totals is exactly this request's).
pub fn with_ingest_lines(
    router: axum::Router,
    ingest: std::sync::Arc<crate::ingest::Ingest<dyn crate::ports::StreamSink>>,
    function: String,
) -> axum::Router {
    use std::sync::{Arc, Mutex};
    let last = Arc::new(Mutex::new(ingest.stats()));
    let function = Arc::new(function);
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let (ingest, last, function) = (ingest.clone(), last.clone(), function.clone());
            async move {
                let response = next.run(request).await;
                let now = ingest.stats();
                let before = match last.lock() {
                    Ok(mut last) => std::mem::replace(&mut *last, now),
                    Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), now),
                };
                ingest_line(&function, now_ms(), &before, &now).emit();
                response
            }
        },
    ))
}
