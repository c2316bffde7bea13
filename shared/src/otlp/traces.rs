//! ExportTraceServiceRequest → validated [`Span`]s.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use prost::Message;
use serde_json::Value;

use super::attributes::{flatten, ResourceInfo};
use super::{json, Format, OtlpError, PointLimits, Refused, RejectReason, Rejections};
use crate::record;
use crate::spans::{Span, SpanKind, SpanStatus};

/// The result of decoding one traces request.
#[derive(Debug, Default)]
pub struct DecodedSpans {
    pub spans: Vec<Span>,
    pub rejected: Rejections,
}

/// Decodes a (decompressed) traces request body; spans outside `limits` are rejected.
pub fn decode_traces(
    format: Format,
    body: &[u8],
    limits: PointLimits,
) -> Result<DecodedSpans, OtlpError> {
    let mut decoded = DecodedSpans::default();
    let request = match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| OtlpError::Malformed(format!("invalid protobuf: {e}")))?,
        Format::Json => from_json(body, &mut decoded.rejected)?,
    };
    let mut seen: u64 = 0;
    for resource_spans in request.resource_spans {
        let resource = ResourceInfo::new(resource_spans.resource.as_ref());
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                seen += 1;
                if seen > limits.max_items_per_request as u64 {
                    decoded
                        .rejected
                        .reject_as(RejectReason::TooManyInRequest, 1, || {
                            format!(
                                "the request carries more than {} spans (the limit per request); \
                                 the spans after it are refused",
                                limits.max_items_per_request
                            )
                        });
                    continue;
                }
                match check_and_convert(span, resource.service(), &limits) {
                    Ok(span) => decoded.spans.push(span),
                    Err(Refused { reason, message }) => {
                        decoded.rejected.reject_as(reason, 1, || message)
                    }
                }
            }
        }
    }
    Ok(decoded)
}

/// Validates one span against `limits` and converts it.
fn check_and_convert(span: OtlpSpan, service: &str, limits: &PointLimits) -> Result<Span, Refused> {
    let attributes_checked = limits.check_attributes(&span.attributes);
    let span = convert(span, service)?;
    let name = |message: String| format!("span {}: {message}", span.span_id_hex());
    if let Err(Refused { reason, message }) = attributes_checked {
        return Err(Refused::new(reason, name(message)));
    }
    if let Err(Refused { reason, message }) = limits.time.check(span.end_unix_nano) {
        return Err(Refused::new(reason, name(message)));
    }
    if !record::span_fits(&span) {
        return Err(Refused::new(
            RejectReason::TooLarge,
            name(format!(
                "larger than a stream record ({} bytes)",
                record::MAX_RECORD_BYTES
            )),
        ));
    }
    Ok(span)
}

fn from_json(
    body: &[u8],
    rejected: &mut Rejections,
) -> Result<ExportTraceServiceRequest, OtlpError> {
    let mut root = json::parse(body)?;
    json::normalize(&mut root);
    let mut taken: Vec<Vec<Value>> = Vec::new();
    for resource in json::objects_mut(&mut root, "resourceSpans") {
        for scope in json::objects_mut(resource, "scopeSpans") {
            taken.push(json::take_array(scope, "spans").unwrap_or_default());
        }
    }
    let mut request: ExportTraceServiceRequest = serde_json::from_value(Value::Object(root))
        .map_err(|e| OtlpError::Malformed(format!("invalid OTLP/JSON traces request: {e}")))?;
    let mut taken = taken.into_iter();
    for resource in &mut request.resource_spans {
        for scope in &mut resource.scope_spans {
            for span in taken.next().unwrap_or_default() {
                // Events and links are not kept; their errors must not cost the span.
                match json::decode_item::<OtlpSpan>(span, &["events", "links"]) {
                    Ok(span) => scope.spans.push(span),
                    Err(e) => rejected.reject(1, || format!("invalid span: {e}")),
                }
            }
        }
    }
    Ok(request)
}

fn id<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], String> {
    let id: [u8; N] = bytes
        .try_into()
        .map_err(|_| format!("{what} must be {N} bytes, got {}", bytes.len()))?;
    if id.iter().all(|b| *b == 0) {
        return Err(format!("{what} is all zeroes"));
    }
    Ok(id)
}

fn convert(span: OtlpSpan, service: &str) -> Result<Span, String> {
    let trace_id = id::<16>(&span.trace_id, "trace id")?;
    let span_id = id::<8>(&span.span_id, "span id")?;
    let parent_span_id = if span.parent_span_id.is_empty() {
        None
    } else {
        Some(id::<8>(&span.parent_span_id, "parent span id")?)
    };
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        service: service.to_string(),
        kind: match span.kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            // 0, and kinds added after this build, carry no usable meaning here.
            _ => SpanKind::Unspecified,
        },
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        status: match span.status.map(|s| s.code) {
            Some(1) => SpanStatus::Ok,
            Some(2) => SpanStatus::Error,
            _ => SpanStatus::Unset,
        },
        attributes: flatten(&span.attributes),
        name: span.name,
    })
}
