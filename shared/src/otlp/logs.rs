//! Logs are checked and counted, not kept: a well-formed request gets a 200 whose `partial_success`
//! says every log record was rejected and why, so exporters configured for all signals neither fail
//! nor believe their logs were stored.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

use super::{json, Format, OtlpError};

#[derive(Debug, Default)]
pub struct DecodedLogs {
    pub log_records: u64,
}

impl DecodedLogs {
    /// What the response reports: every log record, as not stored.
    pub fn not_kept(&self) -> super::Rejections {
        let mut rejected = super::Rejections::default();
        if self.log_records > 0 {
            rejected.reject(self.log_records, || {
                "Flowscope keeps metrics and traces; log records are counted (GET /api/pipeline) but not stored".to_string()
            });
        }
        rejected
    }
}

/// Checks the request is well-formed and counts its log records.
pub fn decode_logs(format: Format, body: &[u8]) -> Result<DecodedLogs, OtlpError> {
    let log_records = match format {
        Format::Protobuf => {
            let request = ExportLogsServiceRequest::decode(body)
                .map_err(|e| OtlpError::Malformed(format!("invalid protobuf: {e}")))?;
            request
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum()
        }
        Format::Json => {
            let mut root = json::parse(body)?;
            let mut count = 0u64;
            for resource in json::objects_mut(&mut root, "resourceLogs") {
                for scope in json::objects_mut(resource, "scopeLogs") {
                    count += scope
                        .get("logRecords")
                        .and_then(|v| v.as_array())
                        .map_or(0, |records| records.len() as u64);
                }
            }
            count
        }
    };
    Ok(DecodedLogs { log_records })
}
