//! The series one batch of spans writes to, interned so that a span costs a hash lookup instead of
//! building a [`SeriesKey`] (and its attribute map) per span.

use std::collections::HashMap;

use crate::model::{stable_hash, Attributes, MetricKind, SeriesId, SeriesKey, SeriesMeta};
use crate::spans::SpanKind;

/// Index of a series in a [`SeriesTable`].
pub type SeriesIndex = usize;

/// One value for one series at one time: what a span adds to the buckets of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub series: SeriesIndex,
    pub time_unix_nano: u64,
    pub value: f64,
}

/// A series to intern: its key parts, borrowed, in [`SeriesKey`] order (attributes sorted by key).
pub struct SeriesSpec<'a> {
    pub service: &'a str,
    pub metric: &'a str,
    /// `(key, value)` pairs sorted by key, as a [`SeriesKey`]'s attribute map iterates them.
    pub attributes: &'a [(&'a str, &'a str)],
    pub kind: MetricKind,
    pub unit: &'a str,
}

impl SeriesSpec<'_> {
    /// The same id as `SeriesKey::id` of the key this spec describes, computed without allocating.
    pub fn id(&self) -> SeriesId {
        let mut parts: [&str; 8] = [""; 8];
        let used = 2 + 2 * self.attributes.len();
        if used > parts.len() {
            return self.key().id();
        }
        parts[0] = self.service;
        parts[1] = self.metric;
        for (i, (k, v)) in self.attributes.iter().enumerate() {
            parts[2 + 2 * i] = k;
            parts[3 + 2 * i] = v;
        }
        SeriesId(stable_hash(&parts[..used]))
    }

    pub fn key(&self) -> SeriesKey {
        SeriesKey {
            service: self.service.to_string(),
            metric: self.metric.to_string(),
            attributes: self
                .attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Attributes>(),
        }
    }
}

/// Series touched by a batch, with the newest time each was seen.
#[derive(Debug, Default)]
pub struct SeriesTable {
    metas: Vec<SeriesMeta>,
    by_id: HashMap<SeriesId, SeriesIndex>,
    /// The RED series of spans by service, span kind and name, once interned: a span then costs
    /// two short-string lookups instead of hashing six series keys (see [`RedSeries`]).
    red: HashMap<String, ServiceRed>,
}

/// The RED series one span feeds (`red::observe`): requests, duration and errors of its operation,
/// then of its service; `None` until first used in the batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RedSeries {
    pub operation: [Option<SeriesIndex>; 3],
    pub service: [Option<SeriesIndex>; 3],
}

#[derive(Debug, Default)]
struct ServiceRed {
    service: [Option<SeriesIndex>; 3],
    /// Per span kind (indexed by [`SpanKind::otlp_code`]), per span name.
    operations: [HashMap<String, [Option<SeriesIndex>; 3]>; 6],
}

impl SeriesTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `spec`'s series, registering it on first use; `last_seen` moves forward to
    /// `time_unix_nano`.
    pub fn intern(&mut self, spec: &SeriesSpec<'_>, time_unix_nano: u64) -> SeriesIndex {
        let id = spec.id();
        let seen = unix_seconds(time_unix_nano);
        if let Some(&index) = self.by_id.get(&id) {
            let meta = &mut self.metas[index];
            meta.last_seen_unix_s = meta.last_seen_unix_s.max(seen);
            return index;
        }
        let index = self.metas.len();
        self.metas.push(SeriesMeta {
            id,
            key: spec.key(),
            kind: spec.kind,
            unit: spec.unit.to_string(),
            last_seen_unix_s: seen,
        });
        self.by_id.insert(id, index);
        index
    }

    /// Moves `index`'s `last_seen` forward to `time_unix_nano` (what [`SeriesTable::intern`] does for
    /// a known series).
    pub fn touch(&mut self, index: SeriesIndex, time_unix_nano: u64) {
        let meta = &mut self.metas[index];
        meta.last_seen_unix_s = meta.last_seen_unix_s.max(unix_seconds(time_unix_nano));
    }

    /// The RED series of spans of `service`, `kind` and `name` interned so far in this table.
    pub fn red_series(&self, service: &str, kind: SpanKind, name: &str) -> RedSeries {
        let Some(red) = self.red.get(service) else {
            return RedSeries::default();
        };
        RedSeries {
            operation: red.operations[kind.otlp_code() as usize]
                .get(name)
                .copied()
                .unwrap_or_default(),
            service: red.service,
        }
    }

    /// Remembers what [`SeriesTable::red_series`] returns for these spans.
    pub fn set_red_series(&mut self, service: &str, kind: SpanKind, name: &str, red: RedSeries) {
        let entry = match self.red.get_mut(service) {
            Some(entry) => entry,
            None => self.red.entry(service.to_string()).or_default(),
        };
        entry.service = red.service;
        let operations = &mut entry.operations[kind.otlp_code() as usize];
        match operations.get_mut(name) {
            Some(slots) => *slots = red.operation,
            None => {
                operations.insert(name.to_string(), red.operation);
            }
        }
    }

    pub fn meta(&self, index: SeriesIndex) -> &SeriesMeta {
        &self.metas[index]
    }

    pub fn metas(&self) -> &[SeriesMeta] {
        &self.metas
    }

    pub fn len(&self) -> usize {
        self.metas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }
}

pub fn unix_seconds(time_unix_nano: u64) -> i64 {
    (time_unix_nano / 1_000_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_id_matches_the_series_key_id_so_buckets_and_registry_agree() {
        let spec = SeriesSpec {
            service: "api",
            metric: "red.operation.duration",
            attributes: &[("operation", "GET /x"), ("span.kind", "server")],
            kind: MetricKind::Histogram,
            unit: "ms",
        };
        assert_eq!(spec.id(), spec.key().id());
        let bare = SeriesSpec {
            attributes: &[],
            ..spec
        };
        assert_eq!(bare.id(), bare.key().id());
        assert_ne!(bare.id(), spec.id());
    }

    #[test]
    fn interning_twice_gives_one_series_with_the_newest_last_seen() {
        let mut table = SeriesTable::new();
        let spec = SeriesSpec {
            service: "api",
            metric: "red.requests",
            attributes: &[],
            kind: MetricKind::Counter,
            unit: "1",
        };
        let a = table.intern(&spec, 120_000_000_000);
        let b = table.intern(&spec, 60_000_000_000);
        assert_eq!(a, b);
        assert_eq!(table.len(), 1);
        assert_eq!(table.meta(a).last_seen_unix_s, 120);
    }
}
