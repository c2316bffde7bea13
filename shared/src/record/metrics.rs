//! Metric points ↔ metrics record bodies.

use prost::Message;

use super::series_cache;
use super::table::{delimited_len, lookup, StringTable};
use super::wire::{
    BoundsEntry, ExponentialHistogramValue, HistogramValue, MetricsBody, PointEntry, PointValue,
    SeriesEntry, SumValue, SummaryValue,
};
use crate::model::{MetricPoint, PointData, SeriesKey, SeriesRef, SourceId, Temporality};

const STRINGS_TAG: u32 = 1;
const SERIES_TAG: u32 = 2;
const POINTS_TAG: u32 = 3;
const BOUNDS_TAG: u32 = 4;

/// Identity of a series-table entry: everything about a point except its time and value.
type SeriesSlot<'a> = (&'a SeriesRef, SourceId, &'a str);

/// Accumulates the points of one record, tracking its exact encoded size.
#[derive(Default)]
pub(crate) struct MetricsBodyBuilder<'a> {
    strings: StringTable<'a>,
    series: Vec<SeriesEntry>,
    series_index: foldhash::HashMap<SeriesSlot<'a>, u32>,
    series_len: usize,
    points: Vec<PointEntry>,
    points_len: usize,
    /// Histogram bound lists, keyed by their bit patterns (f64 is not `Hash`).
    bounds: Vec<BoundsEntry>,
    bounds_index: foldhash::HashMap<Vec<u64>, u32>,
    bounds_len: usize,
    last_time: u64,
}

impl<'a> MetricsBodyBuilder<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Encoded size of the body so far.
    pub(crate) fn encoded_len(&self) -> usize {
        self.strings.encoded_len() + self.series_len + self.points_len + self.bounds_len
    }

    /// Adds `point` unless that would make the body longer than `max_len` and the body already has
    /// points (a point too large on its own still goes into an empty body, so nothing is lost).
    /// Returns whether it was added.
    pub(crate) fn try_push(&mut self, point: &'a MetricPoint, max_len: usize) -> bool {
        let strings_before = self.strings.len();
        let series_before = self.series.len();
        let series_len_before = self.series_len;
        let bounds_before = self.bounds.len();
        let bounds_len_before = self.bounds_len;

        let series = self.series_slot(point);
        let bounds_index = match &point.data {
            PointData::Histogram { bounds, .. } if !bounds.is_empty() => {
                Some(self.bounds_slot(bounds))
            }
            _ => None,
        };
        let entry = PointEntry {
            series,
            time_delta: point.time_unix_nano.wrapping_sub(self.last_time) as i64,
            value: Some(point_value(&point.data, bounds_index)),
        };
        let entry_len = delimited_len(POINTS_TAG, entry.encoded_len());

        if !self.points.is_empty() && self.encoded_len() + entry_len > max_len {
            // Undo the table entries this point added; they will go into the next record.
            self.series.truncate(series_before);
            self.series_index
                .retain(|_, index| (*index as usize) < series_before);
            self.series_len = series_len_before;
            self.bounds.truncate(bounds_before);
            self.bounds_index
                .retain(|_, index| (*index as usize) < bounds_before);
            self.bounds_len = bounds_len_before;
            self.strings.truncate(strings_before, STRINGS_TAG);
            return false;
        }
        self.last_time = point.time_unix_nano;
        self.points.push(entry);
        self.points_len += entry_len;
        true
    }

    fn series_slot(&mut self, point: &'a MetricPoint) -> u32 {
        let slot = (&point.series, point.source, point.unit.as_str());
        if let Some(&index) = self.series_index.get(&slot) {
            return index;
        }
        let key: &'a SeriesKey = &point.series;
        let mut attributes = Vec::with_capacity(key.attributes.len() * 2);
        for (k, v) in &key.attributes {
            attributes.push(self.strings.intern(k, STRINGS_TAG));
            attributes.push(self.strings.intern(v, STRINGS_TAG));
        }
        let entry = SeriesEntry {
            service: self.strings.intern(&key.service, STRINGS_TAG),
            metric: self.strings.intern(&key.metric, STRINGS_TAG),
            unit: self.strings.intern(&point.unit, STRINGS_TAG),
            source: point.source.0,
            attributes,
        };
        let index = self.series.len() as u32;
        self.series_len += delimited_len(SERIES_TAG, entry.encoded_len());
        self.series.push(entry);
        self.series_index.insert(slot, index);
        index
    }

    fn bounds_slot(&mut self, bounds: &[f64]) -> u32 {
        let key: Vec<u64> = bounds.iter().map(|b| b.to_bits()).collect();
        if let Some(&index) = self.bounds_index.get(&key) {
            return index;
        }
        let entry = BoundsEntry {
            values: bounds.to_vec(),
        };
        let index = self.bounds.len() as u32;
        self.bounds_len += delimited_len(BOUNDS_TAG, entry.encoded_len());
        self.bounds.push(entry);
        self.bounds_index.insert(key, index);
        index
    }

    pub(crate) fn finish(self) -> MetricsBody {
        MetricsBody {
            strings: self.strings.into_owned(),
            series: self.series,
            points: self.points,
            bounds: self.bounds,
        }
    }
}

fn cumulative_start(temporality: Temporality) -> Option<u64> {
    match temporality {
        Temporality::Delta => None,
        Temporality::Cumulative {
            start_time_unix_nano,
        } => Some(start_time_unix_nano),
    }
}

fn temporality(cumulative_start: Option<u64>) -> Temporality {
    match cumulative_start {
        None => Temporality::Delta,
        Some(start_time_unix_nano) => Temporality::Cumulative {
            start_time_unix_nano,
        },
    }
}

/// `bounds_index` set: histogram bounds live in the body's table, not inline.
fn point_value(data: &PointData, bounds_index: Option<u32>) -> PointValue {
    match data {
        PointData::Gauge(value) => PointValue::Gauge(*value),
        PointData::Sum {
            value,
            monotonic,
            temporality,
        } => PointValue::Sum(SumValue {
            value: *value,
            monotonic: *monotonic,
            cumulative_start_time_unix_nano: cumulative_start(*temporality),
        }),
        PointData::Histogram {
            temporality,
            count,
            sum,
            min,
            max,
            bounds,
            bucket_counts,
        } => PointValue::Histogram(HistogramValue {
            cumulative_start_time_unix_nano: cumulative_start(*temporality),
            count: *count,
            sum: *sum,
            min: *min,
            max: *max,
            bounds: if bounds_index.is_some() {
                Vec::new()
            } else {
                bounds.clone()
            },
            bucket_counts: bucket_counts.clone(),
            bounds_index,
        }),
        PointData::ExponentialHistogram {
            temporality,
            count,
            sum,
            min,
            max,
            scale,
            zero_count,
            positive_offset,
            positive_counts,
            negative_offset,
            negative_counts,
        } => PointValue::ExponentialHistogram(ExponentialHistogramValue {
            cumulative_start_time_unix_nano: cumulative_start(*temporality),
            count: *count,
            sum: *sum,
            min: *min,
            max: *max,
            scale: *scale,
            zero_count: *zero_count,
            positive_offset: *positive_offset,
            positive_counts: positive_counts.clone(),
            negative_offset: *negative_offset,
            negative_counts: negative_counts.clone(),
        }),
        PointData::Summary { count, sum } => PointValue::Summary(SummaryValue {
            count: *count,
            sum: *sum,
        }),
    }
}

fn point_data(value: PointValue, bounds_table: &[BoundsEntry]) -> Result<PointData, String> {
    Ok(match value {
        PointValue::Gauge(value) => PointData::Gauge(value),
        PointValue::Sum(s) => PointData::Sum {
            value: s.value,
            monotonic: s.monotonic,
            temporality: temporality(s.cumulative_start_time_unix_nano),
        },
        PointValue::Histogram(h) => PointData::Histogram {
            temporality: temporality(h.cumulative_start_time_unix_nano),
            count: h.count,
            sum: h.sum,
            min: h.min,
            max: h.max,
            bounds: match h.bounds_index {
                None => h.bounds,
                Some(_) if !h.bounds.is_empty() => {
                    return Err("histogram has both inline and table bounds".to_string())
                }
                Some(i) => bounds_table
                    .get(i as usize)
                    .ok_or_else(|| {
                        format!(
                            "bounds index {i} out of range ({} lists)",
                            bounds_table.len()
                        )
                    })?
                    .values
                    .clone(),
            },
            bucket_counts: h.bucket_counts,
        },
        PointValue::ExponentialHistogram(h) => PointData::ExponentialHistogram {
            temporality: temporality(h.cumulative_start_time_unix_nano),
            count: h.count,
            sum: h.sum,
            min: h.min,
            max: h.max,
            scale: h.scale,
            zero_count: h.zero_count,
            positive_offset: h.positive_offset,
            positive_counts: h.positive_counts,
            negative_offset: h.negative_offset,
            negative_counts: h.negative_counts,
        },
        PointValue::Summary(s) => PointData::Summary {
            count: s.count,
            sum: s.sum,
        },
    })
}

/// Expands a decoded body back into points, checking every index. The points of one series-table
/// entry share its key (with its id computed once) and unit.
pub(crate) fn decode_body(bytes: &[u8]) -> Result<Vec<MetricPoint>, String> {
    let body = MetricsBody::decode(bytes).map_err(|e| e.to_string())?;
    let mut series = Vec::with_capacity(body.series.len());
    // Series seen in earlier records come from the process-wide cache (one lock per record).
    let mut cache = series_cache::lock();
    for entry in &body.series {
        if entry.attributes.len() % 2 != 0 {
            return Err("series attributes must be key/value pairs".to_string());
        }
        let mut attribute_strings = Vec::with_capacity(entry.attributes.len());
        for &index in &entry.attributes {
            attribute_strings.push(lookup(&body.strings, index)?);
        }
        let pairs = attribute_strings
            .chunks_exact(2)
            .map(|pair| (pair[0], pair[1]));
        let service = lookup(&body.strings, entry.service)?;
        let metric = lookup(&body.strings, entry.metric)?;
        let key = cache.series(service, metric, pairs.clone(), || {
            SeriesRef::new(SeriesKey {
                service: service.to_owned(),
                metric: metric.to_owned(),
                attributes: pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            })
        });
        let unit = cache.unit(lookup(&body.strings, entry.unit)?);
        series.push((key, SourceId(entry.source), unit));
    }
    drop(cache);

    let mut points = Vec::with_capacity(body.points.len());
    let mut time = 0u64;
    for entry in body.points {
        let (key, source, unit) = series.get(entry.series as usize).ok_or_else(|| {
            format!(
                "series index {} out of range ({} series)",
                entry.series,
                series.len()
            )
        })?;
        let value = entry
            .value
            .ok_or_else(|| "point has no value".to_string())?;
        time = time.wrapping_add(entry.time_delta as u64);
        points.push(MetricPoint {
            series: key.clone(),
            source: *source,
            unit: unit.clone(),
            time_unix_nano: time,
            data: point_data(value, &body.bounds)?,
        });
    }
    Ok(points)
}
