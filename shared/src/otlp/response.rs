//! OTLP/HTTP response bodies: `Export*ServiceResponse` on success, `google.rpc.Status` on failure,
//! each in the request's format.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::json;

use super::{Format, Rejections};

/// `google.rpc.Status`, declared here because opentelemetry-proto does not ship it. Field 3
/// (`details`) is never sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `google.rpc.Code` values the receiver uses.
pub mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

pub fn status_body(format: Format, code: i32, message: &str) -> Vec<u8> {
    match format {
        Format::Protobuf => Status {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Format::Json => json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    }
}

/// Clamps a count into the int64 protobuf field.
fn count(rejected: &Rejections) -> i64 {
    i64::try_from(rejected.count).unwrap_or(i64::MAX)
}

/// `partial_success` in OTLP/JSON (int64 as a decimal string, per the proto3 JSON mapping), or `{}`.
fn json_response(count_field: &str, rejected: &Rejections, what: &str) -> Vec<u8> {
    let body = if rejected.is_empty() {
        json!({})
    } else {
        json!({
            "partialSuccess": {
                count_field: rejected.count.to_string(),
                "errorMessage": rejected.message(what),
            }
        })
    };
    body.to_string().into_bytes()
}

/// `ExportMetricsServiceResponse`, with `partial_success` only when points were rejected.
pub fn metrics_body(format: Format, rejected: &Rejections) -> Vec<u8> {
    match format {
        Format::Protobuf => ExportMetricsServiceResponse {
            partial_success: (!rejected.is_empty()).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: count(rejected),
                error_message: rejected.message("data points"),
            }),
        }
        .encode_to_vec(),
        Format::Json => json_response("rejectedDataPoints", rejected, "data points"),
    }
}

/// `ExportTraceServiceResponse`, with `partial_success` only when spans were rejected.
pub fn traces_body(format: Format, rejected: &Rejections) -> Vec<u8> {
    match format {
        Format::Protobuf => ExportTraceServiceResponse {
            partial_success: (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
                rejected_spans: count(rejected),
                error_message: rejected.message("spans"),
            }),
        }
        .encode_to_vec(),
        Format::Json => json_response("rejectedSpans", rejected, "spans"),
    }
}

/// `ExportLogsServiceResponse`, with `partial_success` when log records were not kept.
pub fn logs_body(format: Format, rejected: &Rejections) -> Vec<u8> {
    match format {
        Format::Protobuf => ExportLogsServiceResponse {
            partial_success: (!rejected.is_empty()).then(|| ExportLogsPartialSuccess {
                rejected_log_records: count(rejected),
                error_message: rejected.message("log records"),
            }),
        }
        .encode_to_vec(),
        Format::Json => json_response("rejectedLogRecords", rejected, "log records"),
    }
}
