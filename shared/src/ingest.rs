//! The OTLP/HTTP receiver core, independent of the HTTP server that hosts it (axum locally, lambda_http on AWS).
//!
//! Status codes follow the OTLP/HTTP specification: 200 (possibly with `partial_success`) only once
//! the stream accepted the data, 400 for a malformed body, 413 for a body over the limits, 415 for an
//! unsupported content type or content encoding, 429/503 with `Retry-After` when the stream pushes back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::model::Retention;
use crate::otlp::response::{self, code};
use crate::otlp::{self, Format, OtlpError};
use crate::ports::{AdmissionError, SeriesAdmission, StreamEntry, StreamError, StreamSink};
use crate::record;

/// Which OTLP endpoint a request arrived on (`/v1/metrics`, `/v1/traces`, `/v1/logs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Traces,
    Logs,
}

/// An OTLP/HTTP request as the hosting server hands it over.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub signal: Signal,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Content-Encoding` header.
    pub content_encoding: Option<String>,
    pub body: Bytes,
}

/// What the hosting server sends back.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Sent as the `Retry-After` header (429 and 503).
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest body accepted as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body accepted after decompression; also bounds what a gzip bomb can allocate.
    pub max_decompressed_bytes: usize,
    /// How far ahead of this receiver's clock a point or span may be stamped; later ones are
    /// rejected in the partial success (a client clock that is off, or a unit mix-up).
    pub max_clock_skew: Duration,
    /// The aggregator's retention: a point (or span) older than every resolution keeps is refused
    /// in the partial success instead of being accepted and stored nowhere.
    pub retention: Retention,
    /// Attributes one data point or span may carry (the OTel SDKs' default attribute count limit).
    pub max_attributes_per_point: usize,
    /// Bytes of one attribute value; a longer value refuses the point (it is not truncated).
    pub max_attribute_value_bytes: usize,
    /// OTLP data points (or spans) one request may carry; those beyond are refused, the rest kept.
    pub max_points_per_request: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body_bytes: 4 * 1024 * 1024,
            max_decompressed_bytes: 32 * 1024 * 1024,
            max_clock_skew: Duration::from_secs(600),
            retention: Retention::default(),
            max_attributes_per_point: 128,
            max_attribute_value_bytes: 4096,
            max_points_per_request: 100_000,
        }
    }
}

impl IngestLimits {
    /// Environment variables (on the ingest Lambda) that override the per-point limits.
    pub const ENV_MAX_ATTRIBUTES_PER_POINT: &'static str = "MAX_ATTRIBUTES_PER_POINT";
    pub const ENV_MAX_ATTRIBUTE_VALUE_BYTES: &'static str = "MAX_ATTRIBUTE_VALUE_BYTES";
    pub const ENV_MAX_POINTS_PER_REQUEST: &'static str = "MAX_POINTS_PER_REQUEST";

    /// These limits with the per-point ones overridden by the variables `env` returns (unset or
    /// blank: keep the default); a value that is not a whole number is an error, not ignored.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        for (name, field) in [
            (
                Self::ENV_MAX_ATTRIBUTES_PER_POINT,
                &mut self.max_attributes_per_point,
            ),
            (
                Self::ENV_MAX_ATTRIBUTE_VALUE_BYTES,
                &mut self.max_attribute_value_bytes,
            ),
            (
                Self::ENV_MAX_POINTS_PER_REQUEST,
                &mut self.max_points_per_request,
            ),
        ] {
            if let Some(text) = env(name).filter(|t| !t.trim().is_empty()) {
                *field = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={text:?} is not a whole number"))?;
            }
        }
        Ok(self)
    }
}

/// OTLP data points of a metrics request turned into domain points (and admitted, and encoded)
/// at a time: bounds the request's transient memory to the protobuf plus one chunk, whatever
/// share of it the series limits refuse (issue 10). Not a limit: every point is still handled.
const METRIC_CHUNK_POINTS: usize = 8_192;

/// `Retry-After` when the stream is unavailable: long enough not to hammer it, short enough that
/// exporters' buffers do not overflow.
const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 1;

/// Running totals since start, counted only for requests answered 200.
#[derive(Debug, Default)]
pub struct IngestStats {
    accepted_data_points: AtomicU64,
    rejected_data_points: AtomicU64,
    accepted_spans: AtomicU64,
    rejected_spans: AtomicU64,
    log_records: AtomicU64,
    stream_records: AtomicU64,
    stream_bytes: AtomicU64,
    /// Requests answered with anything but 200.
    refused_requests: AtomicU64,
    /// Rejected data points and spans, per [`otlp::RejectReason`] (indexed as its `ALL`).
    rejected_by_reason: [AtomicU64; otlp::RejectReason::ALL.len()],
}

/// Rejected data points and spans (together) per reason, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RejectedByReason {
    /// Malformed or inconsistent (bad ids, counts that do not add up, non-finite values, …).
    pub invalid: u64,
    /// Stamped further ahead of the receiver's clock than the tolerated skew.
    pub ahead_of_clock: u64,
    /// Older than the longest retention window.
    pub too_old: u64,
    /// A value beyond the accepted magnitude, or exponential buckets outside the representable range.
    pub value_out_of_range: u64,
    pub too_many_attributes: u64,
    pub attribute_too_long: u64,
    /// Beyond the per-request point (span) limit.
    pub too_many_in_request: u64,
    /// Larger than one stream record.
    pub too_large: u64,
}

/// A copy of [`IngestStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestStatsSnapshot {
    pub accepted_data_points: u64,
    pub rejected_data_points: u64,
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    pub log_records: u64,
    /// Stream entries written (Kinesis records on AWS).
    pub stream_records: u64,
    /// Bytes of stream entry data written.
    pub stream_bytes: u64,
    pub refused_requests: u64,
    pub rejected_by_reason: RejectedByReason,
}

impl IngestStats {
    pub fn snapshot(&self) -> IngestStatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        IngestStatsSnapshot {
            accepted_data_points: get(&self.accepted_data_points),
            rejected_data_points: get(&self.rejected_data_points),
            accepted_spans: get(&self.accepted_spans),
            rejected_spans: get(&self.rejected_spans),
            log_records: get(&self.log_records),
            stream_records: get(&self.stream_records),
            stream_bytes: get(&self.stream_bytes),
            refused_requests: get(&self.refused_requests),
            rejected_by_reason: {
                use otlp::RejectReason as R;
                let of = |r: R| get(&self.rejected_by_reason[r as usize]);
                RejectedByReason {
                    invalid: of(R::Invalid),
                    ahead_of_clock: of(R::AheadOfClock),
                    too_old: of(R::TooOld),
                    value_out_of_range: of(R::ValueOutOfRange),
                    too_many_attributes: of(R::TooManyAttributes),
                    attribute_too_long: of(R::AttributeTooLong),
                    too_many_in_request: of(R::TooManyInRequest),
                    too_large: of(R::TooLarge),
                }
            },
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn add_rejections(&self, rejected: &otlp::Rejections) {
        for (counter, reason) in self.rejected_by_reason.iter().zip(otlp::RejectReason::ALL) {
            IngestStats::add(counter, rejected.count_of(reason));
        }
    }
}

/// The receiver: decodes, validates, packs into stream records and writes them to the sink.
pub struct Ingest<S: StreamSink + ?Sized> {
    sink: Arc<S>,
    limits: IngestLimits,
    stats: IngestStats,
    /// Unix nanoseconds now; replaceable so tests can pin the time limit.
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Active-series limits (`crate::cardinality`); none means no limit.
    admission: Option<Arc<dyn SeriesAdmission>>,
    /// The service registry learns instances from resource attributes (throttled per instance).
    registry: Option<Arc<crate::registry::Registry>>,
    /// Per-ingest-key rate limits (`crate::key_limits`); none means no limit.
    key_limits: Option<Arc<crate::key_limits::KeyLimiter>>,
}

fn system_now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A response that is not a 200.
struct Refusal {
    status: u16,
    code: i32,
    message: String,
    retry_after_seconds: Option<u64>,
}

impl Refusal {
    fn new(status: u16, code: i32, message: String) -> Refusal {
        Refusal {
            status,
            code,
            message,
            retry_after_seconds: None,
        }
    }
}

impl From<OtlpError> for Refusal {
    fn from(error: OtlpError) -> Refusal {
        let status = match &error {
            // RFC 9110 §15.5.16: 415 also covers an unsupported Content-Encoding.
            OtlpError::UnsupportedContentType(_) | OtlpError::UnsupportedContentEncoding(_) => 415,
            OtlpError::BodyTooLarge { .. } | OtlpError::DecompressedTooLarge { .. } => 413,
            OtlpError::Malformed(_) => 400,
        };
        Refusal::new(status, code::INVALID_ARGUMENT, error.to_string())
    }
}

impl From<AdmissionError> for Refusal {
    fn from(error: AdmissionError) -> Refusal {
        let (status, code) = match &error {
            AdmissionError::Throttled(_) => (429, code::RESOURCE_EXHAUSTED),
            AdmissionError::Unavailable(_) => (503, code::UNAVAILABLE),
        };
        Refusal {
            status,
            code,
            message: error.to_string(),
            retry_after_seconds: Some(UNAVAILABLE_RETRY_AFTER_SECONDS),
        }
    }
}

impl From<crate::key_limits::KeyRefusal> for Refusal {
    fn from(refusal: crate::key_limits::KeyRefusal) -> Refusal {
        Refusal {
            status: 429,
            code: code::RESOURCE_EXHAUSTED,
            retry_after_seconds: Some(refusal.retry_after_seconds()),
            message: refusal.to_string(),
        }
    }
}

impl From<StreamError> for Refusal {
    fn from(error: StreamError) -> Refusal {
        match error {
            StreamError::Throttled { retry_after } => Refusal {
                status: 429,
                code: code::RESOURCE_EXHAUSTED,
                message: "the stream is throttling writes; retry later".to_string(),
                retry_after_seconds: Some(whole_seconds(retry_after)),
            },
            StreamError::Unavailable(reason) => Refusal {
                status: 503,
                code: code::UNAVAILABLE,
                message: format!("the stream is unavailable: {reason}"),
                retry_after_seconds: Some(UNAVAILABLE_RETRY_AFTER_SECONDS),
            },
            // Points are checked against the record limit at decode, so this is a bug, not input.
            too_large @ StreamError::RecordTooLarge { .. } => {
                Refusal::new(500, code::INTERNAL, too_large.to_string())
            }
        }
    }
}

/// `Retry-After` takes whole seconds; round up and never say 0.
fn whole_seconds(duration: Duration) -> u64 {
    let seconds = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    seconds.max(1)
}

impl<S: StreamSink + ?Sized> Ingest<S> {
    pub fn new(sink: Arc<S>, limits: IngestLimits) -> Self {
        Ingest {
            sink,
            limits,
            stats: IngestStats::default(),
            clock: Arc::new(system_now_unix_nano),
            admission: None,
            registry: None,
            key_limits: None,
        }
    }

    /// Limits each ingest key's requests and data points + spans per second
    /// ([`Ingest::handle_keyed`]); requests built in this process are not counted.
    pub fn with_key_limits(mut self, limiter: Arc<crate::key_limits::KeyLimiter>) -> Self {
        self.key_limits = Some(limiter);
        self
    }

    /// Takes `items` from `key`'s bucket, when both a key and limits are set.
    fn admit_key_items(
        &self,
        key: Option<&crate::key_limits::KeyId>,
        items: usize,
    ) -> Result<(), Refusal> {
        match (&self.key_limits, key) {
            (Some(limiter), Some(key)) => Ok(limiter.admit_items(key, items as u64)?),
            _ => Ok(()),
        }
    }

    /// Tells `registry` the instances (`service.instance.id`) metrics requests come from.
    pub fn with_registry(mut self, registry: Arc<crate::registry::Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Enforces active-series limits: points of series beyond them are refused in the partial success.
    pub fn with_series_admission(mut self, admission: Arc<dyn SeriesAdmission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Replaces the clock (unix nanoseconds) that bounds how far ahead timestamps may be.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The receiver's clock in unix seconds (series admission's activity window).
    fn now_unix_s(&self) -> i64 {
        i64::try_from((self.clock)() / 1_000_000_000).unwrap_or(i64::MAX)
    }

    fn point_limits(&self) -> otlp::PointLimits {
        let limits = &self.limits;
        otlp::PointLimits {
            time: otlp::TimeLimit {
                now_unix_nano: (self.clock)(),
                max_skew_nanos: u64::try_from(limits.max_clock_skew.as_nanos()).unwrap_or(u64::MAX),
                retention: limits.retention,
            },
            max_attributes: limits.max_attributes_per_point,
            max_attribute_value_bytes: limits.max_attribute_value_bytes,
            max_items_per_request: limits.max_points_per_request,
        }
    }

    pub fn limits(&self) -> IngestLimits {
        self.limits
    }

    pub fn stats(&self) -> IngestStatsSnapshot {
        self.stats.snapshot()
    }

    /// The answer for a body an HTTP adapter stopped reading because it passed `max_body_bytes`
    /// (adapters read at most `max_body_bytes + 1` bytes, so a huge body is never buffered whole).
    pub fn body_too_large(&self, content_type: Option<&str>, bytes_read: usize) -> IngestResponse {
        let format = Format::from_content_type(content_type).unwrap_or(Format::Protobuf);
        self.refuse(
            format,
            OtlpError::BodyTooLarge {
                size: bytes_read,
                limit: self.limits.max_body_bytes,
            }
            .into(),
        )
    }

    /// Receives a metrics request built in this process (health probes, health scores, scraped
    /// samples) exactly as an OTLP/HTTP protobuf exporter's request: same validation, limits and
    /// stream path.
    pub async fn handle_metrics(
        &self,
        request: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    ) -> IngestResponse {
        self.handle(IngestRequest {
            signal: Signal::Metrics,
            content_type: Some("application/x-protobuf".to_string()),
            content_encoding: None,
            body: bytes::Bytes::from(prost::Message::encode_to_vec(request)),
        })
        .await
    }

    pub async fn handle(&self, request: IngestRequest) -> IngestResponse {
        self.handle_keyed(request, None).await
    }

    /// [`Ingest::handle`] for a request presented with ingest key `key`, which counts against that
    /// key's rate limits (429 with `Retry-After` over them; nothing of the request is kept).
    pub async fn handle_keyed(
        &self,
        request: IngestRequest,
        key: Option<&crate::key_limits::KeyId>,
    ) -> IngestResponse {
        // Errors are answered in the request's format when it is known, protobuf otherwise.
        let format = match Format::from_content_type(request.content_type.as_deref()) {
            Ok(format) => format,
            Err(error) => return self.refuse(Format::Protobuf, error.into()),
        };
        match self.accept(format, &request, key).await {
            Ok(body) => IngestResponse {
                status: 200,
                content_type: format.content_type().to_string(),
                body,
                retry_after_seconds: None,
            },
            Err(refusal) => self.refuse(format, refusal),
        }
    }

    /// Everything up to a durable write; returns the 200 response body.
    async fn accept(
        &self,
        format: Format,
        request: &IngestRequest,
        key: Option<&crate::key_limits::KeyId>,
    ) -> Result<Vec<u8>, Refusal> {
        if let (Some(limiter), Some(key)) = (&self.key_limits, key) {
            limiter.admit_request(key)?;
        }
        if request.body.len() > self.limits.max_body_bytes {
            return Err(OtlpError::BodyTooLarge {
                size: request.body.len(),
                limit: self.limits.max_body_bytes,
            }
            .into());
        }
        let body = otlp::decompress(
            request.content_encoding.as_deref(),
            &request.body,
            self.limits.max_decompressed_bytes,
        )?;
        let stats = &self.stats;
        match request.signal {
            Signal::Metrics => {
                let mut request = if body.is_empty() {
                    otlp::ChunkedMetrics::default()
                } else {
                    otlp::decode_metrics_in_chunks(
                        format,
                        &body,
                        self.point_limits(),
                        METRIC_CHUNK_POINTS,
                    )?
                };
                drop(body);
                if let Some(registry) = &self.registry {
                    // A hash lookup per resource; a store write only for instances not written
                    // within the refresh interval. A failed write does not refuse the data.
                    if let Err(e) = registry
                        .observe(request.sightings(), self.now_unix_s())
                        .await
                    {
                        tracing::warn!(error = %e, "recording OTLP instances in the registry failed");
                    }
                }
                let mut entries = Vec::new();
                while request.next_chunk() {
                    let decoded = &mut request.decoded;
                    // Before series admission: a key over its rate does not grow the active set.
                    self.admit_key_items(key, decoded.points.len())?;
                    if let Some(admission) = &self.admission {
                        let refused = crate::cardinality::admit_points(
                            admission.as_ref(),
                            self.now_unix_s(),
                            &mut decoded.points,
                            &mut decoded.rejected,
                        )
                        .await?;
                        decoded.accepted_data_points =
                            decoded.accepted_data_points.saturating_sub(refused);
                    }
                    entries.extend(record::encode_metrics(&decoded.points));
                }
                let decoded = request.finish();
                self.write(entries).await?;
                IngestStats::add(&stats.accepted_data_points, decoded.accepted_data_points);
                IngestStats::add(&stats.rejected_data_points, decoded.rejected.count);
                stats.add_rejections(&decoded.rejected);
                if !decoded.rejected.is_empty() {
                    tracing::debug!(rejected = %decoded.rejected.message("data points"), "partial success");
                }
                Ok(response::metrics_body(format, &decoded.rejected))
            }
            Signal::Traces => {
                let mut decoded = if body.is_empty() {
                    otlp::DecodedSpans::default()
                } else {
                    otlp::decode_traces(format, &body, self.point_limits())?
                };
                self.admit_key_items(key, decoded.spans.len())?;
                if let Some(admission) = &self.admission {
                    crate::cardinality::admit_spans(
                        admission.as_ref(),
                        self.now_unix_s(),
                        &mut decoded.spans,
                        &mut decoded.rejected,
                    )
                    .await?;
                }
                self.write(record::encode_spans(&decoded.spans)).await?;
                IngestStats::add(&stats.accepted_spans, decoded.spans.len() as u64);
                IngestStats::add(&stats.rejected_spans, decoded.rejected.count);
                stats.add_rejections(&decoded.rejected);
                if !decoded.rejected.is_empty() {
                    tracing::debug!(rejected = %decoded.rejected.message("spans"), "partial success");
                }
                Ok(response::traces_body(format, &decoded.rejected))
            }
            Signal::Logs => {
                let decoded = if body.is_empty() {
                    otlp::DecodedLogs::default()
                } else {
                    otlp::decode_logs(format, &body)?
                };
                IngestStats::add(&stats.log_records, decoded.log_records);
                Ok(response::logs_body(format, &decoded.not_kept()))
            }
        }
    }

    /// Writes entries durably; nothing to write is not a call.
    async fn write(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError> {
        if entries.is_empty() {
            return Ok(());
        }
        let records = entries.len() as u64;
        let bytes: u64 = entries.iter().map(|e| e.data.len() as u64).sum();
        self.sink.put_all(entries).await?;
        IngestStats::add(&self.stats.stream_records, records);
        IngestStats::add(&self.stats.stream_bytes, bytes);
        Ok(())
    }

    fn refuse(&self, format: Format, refusal: Refusal) -> IngestResponse {
        IngestStats::add(&self.stats.refused_requests, 1);
        if refusal.status >= 500 || refusal.status == 429 {
            tracing::warn!(status = refusal.status, message = %refusal.message, "OTLP request refused");
        } else {
            tracing::debug!(status = refusal.status, message = %refusal.message, "OTLP request refused");
        }
        IngestResponse {
            status: refusal.status,
            content_type: format.content_type().to_string(),
            body: response::status_body(format, refusal.code, &refusal.message),
            retry_after_seconds: refusal.retry_after_seconds,
        }
    }
}
