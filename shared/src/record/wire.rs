//! The protobuf messages inside a record, declared with `prost` derives (no build script).
//!
//! Field numbers are the compatibility contract (FORMAT.md): never reuse or renumber one; new fields
//! get new numbers so older readers skip them.

/// Body of a metrics record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricsBody {
    /// Every distinct string of the record, referenced by index.
    #[prost(string, repeated, tag = "1")]
    pub strings: Vec<String>,
    /// Distinct (series, source, unit) combinations, referenced by index from points.
    #[prost(message, repeated, tag = "2")]
    pub series: Vec<SeriesEntry>,
    #[prost(message, repeated, tag = "3")]
    pub points: Vec<PointEntry>,
    /// Distinct histogram bound lists: a series reports the same bounds every time, and they are
    /// most of a histogram point's bytes.
    #[prost(message, repeated, tag = "4")]
    pub bounds: Vec<BoundsEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BoundsEntry {
    #[prost(double, repeated, tag = "1")]
    pub values: Vec<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SeriesEntry {
    #[prost(uint32, tag = "1")]
    pub service: u32,
    #[prost(uint32, tag = "2")]
    pub metric: u32,
    #[prost(uint32, tag = "3")]
    pub unit: u32,
    #[prost(fixed64, tag = "4")]
    pub source: u64,
    /// Attribute (key, value) string indexes, flattened: `[k0, v0, k1, v1, …]`.
    #[prost(uint32, repeated, tag = "5")]
    pub attributes: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PointEntry {
    #[prost(uint32, tag = "1")]
    pub series: u32,
    /// `time_unix_nano` minus the previous point's (0 for the first), wrapping, as zigzag: points of
    /// one batch share nearly the same timestamp, so this is one or two bytes instead of eight.
    #[prost(sint64, tag = "2")]
    pub time_delta: i64,
    #[prost(oneof = "PointValue", tags = "3, 4, 5, 6, 7")]
    pub value: Option<PointValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PointValue {
    #[prost(double, tag = "3")]
    Gauge(f64),
    #[prost(message, tag = "4")]
    Sum(SumValue),
    #[prost(message, tag = "5")]
    Histogram(HistogramValue),
    #[prost(message, tag = "6")]
    ExponentialHistogram(ExponentialHistogramValue),
    #[prost(message, tag = "7")]
    Summary(SummaryValue),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SumValue {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(bool, tag = "2")]
    pub monotonic: bool,
    /// Present = cumulative since this time; absent = delta.
    #[prost(fixed64, optional, tag = "3")]
    pub cumulative_start_time_unix_nano: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramValue {
    #[prost(fixed64, optional, tag = "1")]
    pub cumulative_start_time_unix_nano: Option<u64>,
    #[prost(uint64, tag = "2")]
    pub count: u64,
    #[prost(double, optional, tag = "3")]
    pub sum: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub max: Option<f64>,
    /// Inline bounds; empty when `bounds_index` refers to the body's bounds table instead.
    #[prost(double, repeated, tag = "6")]
    pub bounds: Vec<f64>,
    #[prost(uint64, repeated, tag = "7")]
    pub bucket_counts: Vec<u64>,
    #[prost(uint32, optional, tag = "8")]
    pub bounds_index: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogramValue {
    #[prost(fixed64, optional, tag = "1")]
    pub cumulative_start_time_unix_nano: Option<u64>,
    #[prost(uint64, tag = "2")]
    pub count: u64,
    #[prost(double, optional, tag = "3")]
    pub sum: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub max: Option<f64>,
    #[prost(sint32, tag = "6")]
    pub scale: i32,
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    #[prost(sint32, tag = "8")]
    pub positive_offset: i32,
    #[prost(uint64, repeated, tag = "9")]
    pub positive_counts: Vec<u64>,
    #[prost(sint32, tag = "10")]
    pub negative_offset: i32,
    #[prost(uint64, repeated, tag = "11")]
    pub negative_counts: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(uint64, tag = "1")]
    pub count: u64,
    #[prost(double, tag = "2")]
    pub sum: f64,
}

/// Body of a spans record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpansBody {
    #[prost(string, repeated, tag = "1")]
    pub strings: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<SpanEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanEntry {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// Empty when the span is a root.
    #[prost(bytes = "vec", tag = "3")]
    pub parent_span_id: Vec<u8>,
    #[prost(uint32, tag = "4")]
    pub service: u32,
    #[prost(uint32, tag = "5")]
    pub name: u32,
    /// 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer (OTLP's numbering).
    #[prost(uint32, tag = "6")]
    pub kind: u32,
    #[prost(fixed64, tag = "7")]
    pub start_unix_nano: u64,
    /// `end - start`, wrapping, so any pair of u64 round-trips.
    #[prost(uint64, tag = "8")]
    pub duration_nanos: u64,
    /// 0 unset, 1 ok, 2 error (OTLP's numbering).
    #[prost(uint32, tag = "9")]
    pub status: u32,
    /// Attribute (key, value) string indexes, flattened: `[k0, v0, k1, v1, …]`.
    #[prost(uint32, repeated, tag = "10")]
    pub attributes: Vec<u32>,
}
