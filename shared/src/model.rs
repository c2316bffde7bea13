//! Domain types shared by every stage of the pipeline: what a point, a series and a bucket are.
//!
//! Nothing here knows about OTLP wire types or AWS; `otlp` converts into these, `record` encodes them,
//! `aggregate` folds them into buckets, and the ports move them between processes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Attribute set of a point, flattened to strings and sorted so identity is order-independent.
pub type Attributes = BTreeMap<String, String>;

/// The `service.name` OTLP says to assume when a resource does not name itself.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Stable 64-bit FNV-1a. Series ids are persisted (store keys, stream records), so the hash must never
/// change between builds or platforms, which `std`'s `DefaultHasher` does not promise.
pub fn stable_hash(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        // A separator byte that cannot appear in UTF-8 keeps ("ab","c") and ("a","bc") apart.
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// Identity of an aggregated series: service + metric + point attributes.
///
/// Deliberately excludes per-instance resource attributes so that the buckets of `api/latency` merge
/// across all instances of `api`; per-instance identity lives in [`SourceId`] for cumulative tracking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub service: String,
    pub metric: String,
    pub attributes: Attributes,
}

impl SeriesKey {
    pub fn id(&self) -> SeriesId {
        let mut parts: Vec<&str> = Vec::with_capacity(2 + self.attributes.len() * 2);
        parts.push(&self.service);
        parts.push(&self.metric);
        for (k, v) in &self.attributes {
            parts.push(k);
            parts.push(v);
        }
        SeriesId(stable_hash(&parts))
    }
}

/// Hash of a [`SeriesKey`]; rendered as 16 lowercase hex digits in APIs and store keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SeriesId(pub u64);

impl fmt::Display for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl From<SeriesId> for String {
    fn from(id: SeriesId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for SeriesId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::str::FromStr for SeriesId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(format!("series id must be 16 hex digits, got {s:?}"));
        }
        u64::from_str_radix(s, 16)
            .map(SeriesId)
            .map_err(|_| format!("series id must be 16 hex digits, got {s:?}"))
    }
}

/// Identity of the process that emitted a point (resource attributes + instrumentation scope), hashed.
/// Cumulative state is tracked per (source, series, start time): two instances of one service each
/// have their own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceId(pub u64);

/// What kind of instrument a series came from; decides how the dashboard presents it
/// (a counter is shown as a rate, a gauge as a level, a histogram as quantiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Gauge,
    /// Monotonic sum (a counter): buckets hold the increase within the bucket.
    Counter,
    /// Non-monotonic sum (an up-down counter): buckets hold the change within the bucket.
    UpDownCounter,
    Histogram,
    ExponentialHistogram,
    /// Summary quantiles cannot be merged across instances; Flowscope keeps count and sum as a
    /// distribution and exposes each quantile as its own gauge series (`<metric>{quantile="0.99"}`).
    Summary,
}

/// How a sum or histogram reports its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Temporality {
    /// Each point holds only what happened since the previous point.
    Delta,
    /// Each point holds the running total since `start_time_unix_nano`; a new start time or a
    /// smaller value means the counter was reset.
    Cumulative { start_time_unix_nano: u64 },
}

/// The value carried by one point, still in the shape the producer reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PointData {
    Gauge(f64),
    Sum {
        value: f64,
        monotonic: bool,
        temporality: Temporality,
    },
    Histogram {
        temporality: Temporality,
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        /// `explicit_bounds`; `bucket_counts.len() == bounds.len() + 1` (validated at decode).
        bounds: Vec<f64>,
        bucket_counts: Vec<u64>,
    },
    ExponentialHistogram {
        temporality: Temporality,
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        scale: i32,
        zero_count: u64,
        positive_offset: i32,
        positive_counts: Vec<u64>,
        negative_offset: i32,
        negative_counts: Vec<u64>,
    },
    /// A summary's count and sum (quantiles are emitted as separate gauge points at decode).
    Summary {
        count: u64,
        sum: f64,
    },
}

impl PointData {
    pub fn kind(&self) -> MetricKind {
        match self {
            PointData::Gauge(_) => MetricKind::Gauge,
            PointData::Sum {
                monotonic: true, ..
            } => MetricKind::Counter,
            PointData::Sum { .. } => MetricKind::UpDownCounter,
            PointData::Histogram { .. } => MetricKind::Histogram,
            PointData::ExponentialHistogram { .. } => MetricKind::ExponentialHistogram,
            PointData::Summary { .. } => MetricKind::Summary,
        }
    }
}

/// One normalized data point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub series: SeriesKey,
    pub source: SourceId,
    /// Unit as reported (`ms`, `s`, `By`, `1`, `%` …); empty when absent.
    pub unit: String,
    pub time_unix_nano: u64,
    pub data: PointData,
}

/// Bucket widths. Every point lands in one bucket of each resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resolution {
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [
        Resolution::OneMinute,
        Resolution::FiveMinutes,
        Resolution::OneHour,
    ];

    pub fn seconds(self) -> i64 {
        match self {
            Resolution::OneMinute => 60,
            Resolution::FiveMinutes => 300,
            Resolution::OneHour => 3600,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::OneMinute => "1m",
            Resolution::FiveMinutes => "5m",
            Resolution::OneHour => "1h",
        }
    }

    /// Start (unix seconds) of the bucket that holds `unix_seconds`.
    pub fn bucket_start(self, unix_seconds: i64) -> i64 {
        unix_seconds.div_euclid(self.seconds()) * self.seconds()
    }

    /// Default retention: 1m → 7 d, 5m → 30 d, 1h → 1 y.
    pub fn default_retention_seconds(self) -> i64 {
        const DAY: i64 = 86_400;
        match self {
            Resolution::OneMinute => 7 * DAY,
            Resolution::FiveMinutes => 30 * DAY,
            Resolution::OneHour => 365 * DAY,
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1m" => Ok(Resolution::OneMinute),
            "5m" => Ok(Resolution::FiveMinutes),
            "1h" => Ok(Resolution::OneHour),
            other => Err(format!("resolution must be 1m, 5m or 1h, got {other:?}")),
        }
    }
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub one_minute_seconds: i64,
    pub five_minutes_seconds: i64,
    pub one_hour_seconds: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            one_minute_seconds: Resolution::OneMinute.default_retention_seconds(),
            five_minutes_seconds: Resolution::FiveMinutes.default_retention_seconds(),
            one_hour_seconds: Resolution::OneHour.default_retention_seconds(),
        }
    }
}

impl Retention {
    pub fn seconds(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::OneMinute => self.one_minute_seconds,
            Resolution::FiveMinutes => self.five_minutes_seconds,
            Resolution::OneHour => self.one_hour_seconds,
        }
    }
}

/// What the registry knows about a series (for listing and for the dashboard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesMeta {
    pub id: SeriesId,
    pub key: SeriesKey,
    pub kind: MetricKind,
    pub unit: String,
    /// Unix seconds of the newest point seen.
    pub last_seen_unix_s: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_id_ignores_attribute_insertion_order_and_round_trips_as_hex() {
        let mut a = Attributes::new();
        a.insert("route".into(), "/x".into());
        a.insert("method".into(), "GET".into());
        let mut b = Attributes::new();
        b.insert("method".into(), "GET".into());
        b.insert("route".into(), "/x".into());
        let ka = SeriesKey {
            service: "api".into(),
            metric: "latency".into(),
            attributes: a,
        };
        let kb = SeriesKey {
            attributes: b,
            ..ka.clone()
        };
        assert_eq!(ka.id(), kb.id());
        let text = ka.id().to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<SeriesId>(), Ok(ka.id()));
        assert!("xyz".parse::<SeriesId>().is_err());
    }

    #[test]
    fn series_id_separates_concatenation_ambiguity() {
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
    }

    #[test]
    fn bucket_start_floors_including_negative_times() {
        assert_eq!(Resolution::OneMinute.bucket_start(125), 120);
        assert_eq!(Resolution::FiveMinutes.bucket_start(599), 300);
        assert_eq!(Resolution::OneHour.bucket_start(-1), -3600);
    }
}
