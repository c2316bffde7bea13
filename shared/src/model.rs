//! Domain types shared by every stage of the pipeline: what a point, a series and a bucket are.
//!
//! Nothing here knows about OTLP wire types or AWS; `otlp` converts into these, `record` encodes them,
//! `aggregate` folds them into buckets, and the ports move them between processes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Attribute set of a point, flattened to strings and sorted so identity is order-independent.
pub type Attributes = BTreeMap<String, String>;

/// The `service.name` OTLP says to assume when a resource does not name itself.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Stable 64-bit FNV-1a. Series ids are persisted (store keys, stream records), so the hash must never
/// change between builds or platforms, which `std`'s `DefaultHasher` does not promise.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash = StableHasher::new();
    for part in parts {
        hash.part(part);
    }
    hash.finish()
}

/// [`stable_hash`] fed one part at a time.
pub struct StableHasher(u64);

impl StableHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn new() -> Self {
        StableHasher(Self::OFFSET)
    }

    pub fn part(&mut self, part: &str) {
        let mut hash = self.0;
        for byte in part.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(Self::PRIME);
        }
        // A separator byte that cannot appear in UTF-8 keeps ("ab","c") and ("a","bc") apart.
        hash ^= 0xff;
        self.0 = hash.wrapping_mul(Self::PRIME);
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
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
    /// [`stable_hash`] of service, metric and the sorted attribute keys and values, computed without
    /// collecting the parts first.
    pub fn id(&self) -> SeriesId {
        let mut hash = StableHasher::new();
        hash.part(&self.service);
        hash.part(&self.metric);
        for (k, v) in &self.attributes {
            hash.part(k);
            hash.part(v);
        }
        SeriesId(hash.finish())
    }
}

/// A [`SeriesKey`] shared by every point of the series, with its [`SeriesId`] computed once.
///
/// Cloning is a reference-count increment: a decoded record's points share their series table's
/// keys instead of each owning a copy, and [`SeriesRef::id`] does not rehash. Reads go through
/// `Deref` to the key; equality, ordering, hashing and serde are the key's.
#[derive(Clone)]
pub struct SeriesRef(Arc<(SeriesKey, SeriesId)>);

impl SeriesRef {
    pub fn new(key: SeriesKey) -> Self {
        let id = key.id();
        SeriesRef(Arc::new((key, id)))
    }

    /// The key's [`SeriesKey::id`], computed when the reference was made.
    pub fn id(&self) -> SeriesId {
        self.0 .1
    }

    pub fn key(&self) -> &SeriesKey {
        &self.0 .0
    }
}

impl From<SeriesKey> for SeriesRef {
    fn from(key: SeriesKey) -> Self {
        SeriesRef::new(key)
    }
}

impl std::ops::Deref for SeriesRef {
    type Target = SeriesKey;
    fn deref(&self) -> &SeriesKey {
        self.key()
    }
}

impl fmt::Debug for SeriesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key().fmt(f)
    }
}

impl PartialEq for SeriesRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.id() == other.id() && self.key() == other.key())
    }
}

impl Eq for SeriesRef {}

impl PartialEq<SeriesKey> for SeriesRef {
    fn eq(&self, other: &SeriesKey) -> bool {
        self.key() == other
    }
}

/// Hashes the precomputed id only (equal keys have equal ids), so a map keyed by series does not
/// rehash the key's strings.
impl std::hash::Hash for SeriesRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl PartialOrd for SeriesRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeriesRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl Serialize for SeriesRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.key().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SeriesRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SeriesKey::deserialize(deserializer).map(SeriesRef::new)
    }
}

/// A point's unit, shared by the points of one series-table entry (cloning does not copy the text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Unit(Arc<str>);

impl Unit {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Unit {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Unit {
    fn from(s: &str) -> Self {
        Unit(Arc::from(s))
    }
}

impl From<String> for Unit {
    fn from(s: String) -> Self {
        Unit(Arc::from(s))
    }
}

impl PartialEq<str> for Unit {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Unit {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Unit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Unit::from)
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
    pub series: SeriesRef,
    pub source: SourceId,
    /// Unit as reported (`ms`, `s`, `By`, `1`, `%` …); empty when absent.
    pub unit: Unit,
    pub time_unix_nano: u64,
    pub data: PointData,
}

/// Bucket widths. Every point lands in one bucket of each resolution.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Resolution {
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
    /// Daily buckets (UTC days), kept a year by default.
    #[serde(rename = "1d")]
    OneDay,
}

impl Resolution {
    pub const ALL: [Resolution; 4] = [
        Resolution::OneMinute,
        Resolution::FiveMinutes,
        Resolution::OneHour,
        Resolution::OneDay,
    ];

    pub fn seconds(self) -> i64 {
        match self {
            Resolution::OneMinute => 60,
            Resolution::FiveMinutes => 300,
            Resolution::OneHour => 3600,
            Resolution::OneDay => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::OneMinute => "1m",
            Resolution::FiveMinutes => "5m",
            Resolution::OneHour => "1h",
            Resolution::OneDay => "1d",
        }
    }

    /// Start (unix seconds) of the bucket that holds `unix_seconds`.
    pub fn bucket_start(self, unix_seconds: i64) -> i64 {
        unix_seconds.div_euclid(self.seconds()) * self.seconds()
    }

    /// Default retention: 1m → 7 d, 5m → 30 d, 1h → 1 y, 1d → 1 y.
    pub fn default_retention_seconds(self) -> i64 {
        const DAY: i64 = 86_400;
        match self {
            Resolution::OneMinute => 7 * DAY,
            Resolution::FiveMinutes => 30 * DAY,
            Resolution::OneHour => 365 * DAY,
            Resolution::OneDay => 365 * DAY,
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
            "1d" => Ok(Resolution::OneDay),
            other => Err(format!(
                "resolution must be 1m, 5m, 1h or 1d, got {other:?}"
            )),
        }
    }
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub one_minute_seconds: i64,
    pub five_minutes_seconds: i64,
    pub one_hour_seconds: i64,
    #[serde(default = "default_one_day_retention")]
    pub one_day_seconds: i64,
}

fn default_one_day_retention() -> i64 {
    Resolution::OneDay.default_retention_seconds()
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            one_minute_seconds: Resolution::OneMinute.default_retention_seconds(),
            five_minutes_seconds: Resolution::FiveMinutes.default_retention_seconds(),
            one_hour_seconds: Resolution::OneHour.default_retention_seconds(),
            one_day_seconds: Resolution::OneDay.default_retention_seconds(),
        }
    }
}

impl Retention {
    pub fn seconds(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::OneMinute => self.one_minute_seconds,
            Resolution::FiveMinutes => self.five_minutes_seconds,
            Resolution::OneHour => self.one_hour_seconds,
            Resolution::OneDay => self.one_day_seconds,
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
    fn a_shared_series_key_is_its_key_in_json_equality_and_id() {
        let mut attributes = Attributes::new();
        attributes.insert("route".into(), "/x".into());
        let key = SeriesKey {
            service: "api".into(),
            metric: "latency".into(),
            attributes,
        };
        let shared = SeriesRef::from(key.clone());
        assert_eq!(shared.id(), key.id());
        assert_eq!(shared, key);
        assert_eq!(
            serde_json::to_value(&shared).unwrap(),
            serde_json::to_value(&key).unwrap()
        );
        let back: SeriesRef = serde_json::from_value(serde_json::to_value(&key).unwrap()).unwrap();
        assert_eq!(back, shared);
        assert_eq!(back.id(), key.id());
        let other = SeriesRef::from(SeriesKey {
            metric: "errors".into(),
            ..key
        });
        assert_ne!(other, shared);
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
        // UTC days: 2026-12-06T13:00Z is in the day starting at 2026-12-06T00:00Z.
        assert_eq!(
            Resolution::OneDay.bucket_start(1_796_562_000),
            1_796_515_200
        );
        assert_eq!("1d".parse::<Resolution>(), Ok(Resolution::OneDay));
    }
}
