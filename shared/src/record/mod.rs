//! The versioned binary stream record format (see FORMAT.md beside this file).
//!
//! One record carries many points of one service (partition key = service name) or many spans of one
//! trace (partition key = trace id), so a stream write costs one record per few hundred points.

mod metrics;
pub(crate) mod series_cache;
mod spans;
mod table;
mod wire;

pub use series_cache::SERIES_CACHE_ENTRIES;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use prost::Message;

use crate::model::{MetricPoint, PointData, UNKNOWN_SERVICE};
use crate::ports::StreamEntry;
use crate::spans::Span;

use metrics::MetricsBodyBuilder;
use spans::SpansBodyBuilder;

/// Largest record this codec produces: well under Kinesis's 1 MiB per record.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// First two bytes of every record, so a stray payload is told apart from a record.
pub const MAGIC: [u8; 2] = *b"FS";

/// Major format version this build writes and reads. Readers reject other majors; changes that only
/// add protobuf fields keep the major (older readers skip unknown fields).
pub const FORMAT_VERSION: u8 = 1;

const KIND_METRICS: u8 = 1;
const KIND_SPANS: u8 = 2;
/// magic (2) + version (1) + kind (1) + body length (4, little-endian).
const HEADER_LEN: usize = 8;
const MAX_BODY_BYTES: usize = MAX_RECORD_BYTES - HEADER_LEN;

/// Kinesis accepts partition keys of 1 to 256 characters.
const MAX_PARTITION_KEY_CHARS: usize = 256;

/// What a record holds once decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordPayload {
    Metrics(Vec<MetricPoint>),
    Spans(Vec<Span>),
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record is empty")]
    Empty,
    #[error("record format version {0} is not supported by this build")]
    UnsupportedVersion(u8),
    #[error("record is malformed: {0}")]
    Malformed(String),
}

/// Packs points into stream entries: grouped by service (the partition key), each entry at most
/// [`MAX_RECORD_BYTES`]. Order of points within a service is preserved.
///
/// A point that is larger than [`MAX_RECORD_BYTES`] on its own is still emitted, alone in its entry
/// (the stream then refuses it); callers filter such points first with [`metric_point_fits`].
pub fn encode_metrics(points: &[MetricPoint]) -> Vec<StreamEntry> {
    let groups = group_by(points, |p| p.series.service.as_str());
    let mut entries = Vec::new();
    for (service, group) in groups {
        let partition_key = metrics_partition_key(service);
        let mut builder = MetricsBodyBuilder::default();
        for point in group {
            if !builder.try_push(point, MAX_BODY_BYTES) {
                let full = std::mem::take(&mut builder);
                entries.push(entry(&partition_key, KIND_METRICS, full.finish()));
                // An empty builder always accepts.
                builder.try_push(point, MAX_BODY_BYTES);
            }
        }
        if !builder.is_empty() {
            entries.push(entry(&partition_key, KIND_METRICS, builder.finish()));
        }
    }
    entries
}

/// Packs spans into stream entries grouped by trace id (the partition key, lowercase hex).
///
/// Like [`encode_metrics`], a span too large for a record on its own is emitted alone; see
/// [`span_fits`].
pub fn encode_spans(spans: &[Span]) -> Vec<StreamEntry> {
    let groups = group_by(spans, |s| s.trace_id);
    let mut entries = Vec::new();
    for (trace_id, group) in groups {
        let partition_key = crate::spans::hex(&trace_id);
        let mut builder = SpansBodyBuilder::default();
        for span in group {
            if !builder.try_push(span, MAX_BODY_BYTES) {
                let full = std::mem::take(&mut builder);
                entries.push(entry(&partition_key, KIND_SPANS, full.finish()));
                builder.try_push(span, MAX_BODY_BYTES);
            }
        }
        if !builder.is_empty() {
            entries.push(entry(&partition_key, KIND_SPANS, builder.finish()));
        }
    }
    entries
}

/// Whether `point` fits in a record on its own (huge histograms or attribute values may not).
pub fn metric_point_fits(point: &MetricPoint) -> bool {
    if metric_point_upper_bound(point) <= MAX_BODY_BYTES {
        return true;
    }
    let mut builder = MetricsBodyBuilder::default();
    builder.try_push(point, MAX_BODY_BYTES);
    builder.encoded_len() <= MAX_BODY_BYTES
}

/// Whether `span` fits in a record on its own.
pub fn span_fits(span: &Span) -> bool {
    if span_upper_bound(span) <= MAX_BODY_BYTES {
        return true;
    }
    let mut builder = SpansBodyBuilder::default();
    builder.try_push(span, MAX_BODY_BYTES);
    builder.encoded_len() <= MAX_BODY_BYTES
}

/// Most bytes one field header can take: a tag (≤ 2 bytes for our field numbers) plus a length or
/// varint of up to 10 bytes.
const FIELD_MAX: usize = 12;

/// Generous bound on a single-point body, so the exact check runs only for the rare huge point.
fn metric_point_upper_bound(point: &MetricPoint) -> usize {
    let key = &point.series;
    let attributes = key.attributes.len();
    let strings: usize = [key.service.as_str(), &key.metric, &point.unit]
        .into_iter()
        .chain(
            key.attributes
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        )
        .map(|s| s.len() + FIELD_MAX)
        .sum();
    let series = FIELD_MAX * (6 + 2 * attributes);
    let value = match &point.data {
        PointData::Gauge(_) | PointData::Sum { .. } | PointData::Summary { .. } => FIELD_MAX * 4,
        PointData::Histogram {
            bounds,
            bucket_counts,
            ..
        } => FIELD_MAX * (8 + bounds.len() + bucket_counts.len()),
        PointData::ExponentialHistogram {
            positive_counts,
            negative_counts,
            ..
        } => FIELD_MAX * (12 + positive_counts.len() + negative_counts.len()),
    };
    strings + series + FIELD_MAX * 4 + value
}

fn span_upper_bound(span: &Span) -> usize {
    let strings: usize = [&span.service, &span.name]
        .into_iter()
        .chain(span.attributes.iter().flat_map(|(k, v)| [k, v]))
        .map(|s| s.len() + FIELD_MAX)
        .sum();
    strings + 16 + 8 + 8 + FIELD_MAX * (12 + 2 * span.attributes.len())
}

/// Decodes one record. Never panics: any malformed input is a [`RecordError`].
pub fn decode(bytes: &[u8]) -> Result<RecordPayload, RecordError> {
    if bytes.is_empty() {
        return Err(RecordError::Empty);
    }
    if bytes.len() < HEADER_LEN {
        return Err(RecordError::Malformed(format!(
            "record of {} bytes is shorter than its {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[..2] != MAGIC {
        return Err(RecordError::Malformed(
            "record does not start with the Flowscope magic bytes".to_string(),
        ));
    }
    if bytes[2] != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion(bytes[2]));
    }
    let body = &bytes[HEADER_LEN..];
    // A protobuf prefix cut at a field boundary is itself valid protobuf; the length catches it.
    let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if declared != body.len() {
        return Err(RecordError::Malformed(format!(
            "header declares a {declared}-byte body but {} bytes follow",
            body.len()
        )));
    }
    match bytes[3] {
        KIND_METRICS => metrics::decode_body(body)
            .map(RecordPayload::Metrics)
            .map_err(RecordError::Malformed),
        KIND_SPANS => spans::decode_body(body)
            .map(RecordPayload::Spans)
            .map_err(RecordError::Malformed),
        other => Err(RecordError::Malformed(format!(
            "unknown payload kind {other}"
        ))),
    }
}

fn entry(partition_key: &str, kind: u8, body: impl Message) -> StreamEntry {
    let body_len = body.encoded_len();
    let mut data = Vec::with_capacity(HEADER_LEN + body_len);
    data.extend_from_slice(&MAGIC);
    data.push(FORMAT_VERSION);
    data.push(kind);
    // Bodies are capped far below 4 GiB (a lone oversized point is bounded by the request limits).
    data.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    body.encode_raw(&mut data);
    StreamEntry {
        partition_key: partition_key.to_string(),
        data: Bytes::from(data),
    }
}

/// Kinesis needs 1–256 characters; the key only picks the shard, so an empty service uses the
/// OTLP default name and an overlong one is cut (deterministically, so it keeps its shard).
fn metrics_partition_key(service: &str) -> String {
    if service.is_empty() {
        return UNKNOWN_SERVICE.to_string();
    }
    service.chars().take(MAX_PARTITION_KEY_CHARS).collect()
}

/// Groups items by key in order of each key's first appearance, keeping item order within a group.
fn group_by<'a, T, K: std::hash::Hash + Eq + Copy>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<(K, Vec<&'a T>)> {
    let mut index: foldhash::HashMap<K, usize> = foldhash::HashMap::default();
    let mut groups: Vec<(K, Vec<&'a T>)> = Vec::new();
    for item in items {
        let k = key(item);
        let slot = *index.entry(k).or_insert_with(|| {
            groups.push((k, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(item);
    }
    groups
}
