use rand::{Rng, SeedableRng};

use super::*;
use crate::model::{Attributes, PointData, SeriesKey, SourceId, Temporality};
use crate::spans::{SpanKind, SpanStatus};

fn point(
    service: &str,
    metric: &str,
    attrs: &[(&str, &str)],
    time: u64,
    data: PointData,
) -> MetricPoint {
    MetricPoint {
        series: SeriesKey {
            service: service.into(),
            metric: metric.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Attributes>(),
        }
        .into(),
        source: SourceId(0xdead_beef_0000_0001),
        unit: "ms".into(),
        time_unix_nano: time,
        data,
    }
}

fn every_variant() -> Vec<MetricPoint> {
    let t = 1_700_000_000_000_000_000;
    vec![
        point("api", "temp", &[("room", "a")], t, PointData::Gauge(-0.0)),
        point(
            "api",
            "temp",
            &[("room", "a")],
            t - 5,
            PointData::Gauge(f64::MIN_POSITIVE / 2.0),
        ),
        point(
            "api",
            "requests",
            &[("route", "/x"), ("method", "GET")],
            0,
            PointData::Sum {
                value: 12.5,
                monotonic: true,
                temporality: Temporality::Cumulative {
                    start_time_unix_nano: 0,
                },
            },
        ),
        point(
            "api",
            "inflight",
            &[],
            u64::MAX,
            PointData::Sum {
                value: -3.0,
                monotonic: false,
                temporality: Temporality::Delta,
            },
        ),
        point(
            "api",
            "latency",
            &[("route", "/x")],
            t,
            PointData::Histogram {
                temporality: Temporality::Cumulative {
                    start_time_unix_nano: t - 60,
                },
                count: 6,
                sum: Some(42.0),
                min: None,
                max: Some(f64::MAX),
                bounds: vec![-1.0, 0.0, 5.0],
                bucket_counts: vec![1, 0, 2, 3],
            },
        ),
        point(
            "api",
            "empty_hist",
            &[],
            t,
            PointData::Histogram {
                temporality: Temporality::Delta,
                count: 0,
                sum: None,
                min: None,
                max: None,
                bounds: vec![],
                bucket_counts: vec![0],
            },
        ),
        point(
            "api",
            "exp",
            &[("k", "")],
            t,
            PointData::ExponentialHistogram {
                temporality: Temporality::Delta,
                count: 9,
                sum: Some(-1.5),
                min: Some(-4.0),
                max: Some(8.0),
                scale: -3,
                zero_count: 2,
                positive_offset: -7,
                positive_counts: vec![1, 2, 0, 1],
                negative_offset: i32::MIN,
                negative_counts: vec![],
            },
        ),
        point(
            "api",
            "rpc",
            &[],
            t,
            PointData::Summary {
                count: u64::MAX,
                sum: 0.0,
            },
        ),
    ]
}

fn decode_metrics(entries: &[StreamEntry]) -> Vec<MetricPoint> {
    let mut out = Vec::new();
    for e in entries {
        match decode(&e.data).unwrap() {
            RecordPayload::Metrics(points) => out.extend(points),
            other => panic!("expected metrics, got {other:?}"),
        }
    }
    out
}

fn bits(points: &[MetricPoint]) -> Vec<String> {
    // PartialEq on f64 treats -0.0 == 0.0; compare the debug text with explicit bit patterns too.
    points
        .iter()
        .map(|p| match &p.data {
            PointData::Gauge(v) => format!("{p:?} bits={:x}", v.to_bits()),
            _ => format!("{p:?}"),
        })
        .collect()
}

#[test]
fn every_point_variant_round_trips_exactly() {
    let points = every_variant();
    let entries = encode_metrics(&points);
    assert_eq!(entries.len(), 1, "one service fits in one record");
    assert_eq!(entries[0].partition_key, "api");
    let decoded = decode_metrics(&entries);
    assert_eq!(decoded, points);
    assert_eq!(bits(&decoded), bits(&points));
}

#[test]
fn groups_by_service_and_keeps_order_within_each_service() {
    let mut points = Vec::new();
    for i in 0..30u64 {
        let service = ["a", "b", "c"][(i % 3) as usize];
        points.push(point(
            service,
            "m",
            &[],
            1_000 + i,
            PointData::Gauge(i as f64),
        ));
    }
    let entries = encode_metrics(&points);
    let keys: Vec<&str> = entries.iter().map(|e| e.partition_key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    for e in &entries {
        let decoded = decode_metrics(std::slice::from_ref(e));
        let expected: Vec<MetricPoint> = points
            .iter()
            .filter(|p| p.series.service == e.partition_key)
            .cloned()
            .collect();
        assert_eq!(decoded, expected);
    }
}

#[test]
fn strings_are_stored_once_per_record() {
    let long = "x".repeat(1000);
    let points: Vec<MetricPoint> = (0..100)
        .map(|i| point("svc", &long, &[("attr", &long)], i, PointData::Gauge(1.0)))
        .collect();
    let entries = encode_metrics(&points);
    assert_eq!(entries.len(), 1);
    // 100 points repeating two 1000-byte strings would be > 200 kB if not interned.
    assert!(
        entries[0].data.len() < 3_000,
        "record is {} bytes",
        entries[0].data.len()
    );
    assert_eq!(decode_metrics(&entries), points);
}

#[test]
fn large_batches_split_below_the_record_limit_and_reassemble_in_order() {
    let points: Vec<MetricPoint> = (0..6_000u64)
        .map(|i| {
            let route = format!("/route/{i}/{}", "p".repeat(64));
            point(
                "svc",
                "latency",
                &[("route", &route)],
                10_000 + i,
                PointData::Gauge(i as f64),
            )
        })
        .collect();
    let entries = encode_metrics(&points);
    assert!(
        entries.len() > 1,
        "expected a split, got {} entries",
        entries.len()
    );
    for e in &entries {
        assert!(
            e.data.len() <= MAX_RECORD_BYTES,
            "entry of {} bytes",
            e.data.len()
        );
        assert_eq!(e.partition_key, "svc");
    }
    // Splits fill records: all but the last are at least 90% full.
    for e in &entries[..entries.len() - 1] {
        assert!(
            e.data.len() > MAX_RECORD_BYTES * 9 / 10,
            "entry of {} bytes",
            e.data.len()
        );
    }
    assert_eq!(decode_metrics(&entries), points);
}

#[test]
fn a_point_too_large_alone_is_detected_before_encoding() {
    let huge = point(
        "svc",
        "h",
        &[],
        1,
        PointData::Histogram {
            temporality: Temporality::Delta,
            count: 0,
            sum: None,
            min: None,
            max: None,
            bounds: (0..40_000).map(f64::from).collect(),
            bucket_counts: vec![0; 40_001],
        },
    );
    let small = point("svc", "g", &[], 1, PointData::Gauge(1.0));
    assert!(!metric_point_fits(&huge));
    assert!(metric_point_fits(&small));
}

#[test]
fn empty_service_gets_a_valid_partition_key() {
    let entries = encode_metrics(&[point("", "m", &[], 1, PointData::Gauge(1.0))]);
    assert_eq!(entries[0].partition_key, crate::model::UNKNOWN_SERVICE);
    let long = "s".repeat(300);
    let entries = encode_metrics(&[point(&long, "m", &[], 1, PointData::Gauge(1.0))]);
    assert_eq!(entries[0].partition_key.chars().count(), 256);
    assert_eq!(decode_metrics(&entries)[0].series.service, long);
}

fn span(trace: u8, id: u8, parent: Option<u8>) -> Span {
    let mut attributes = Attributes::new();
    attributes.insert("http.response.status_code".into(), "200".into());
    Span {
        trace_id: [trace; 16],
        span_id: [id; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        service: "checkout".into(),
        name: format!("GET /{id}"),
        kind: SpanKind::Server,
        start_unix_nano: 1_000,
        end_unix_nano: 5_000,
        status: SpanStatus::Error,
        attributes,
    }
}

#[test]
fn spans_round_trip_grouped_by_trace_id() {
    let mut odd = span(2, 9, None);
    odd.end_unix_nano = 10; // end before start must still round-trip exactly
    odd.kind = SpanKind::Consumer;
    odd.status = SpanStatus::Unset;
    odd.parent_span_id = Some([0; 8]);
    let spans = vec![span(1, 1, None), odd, span(1, 2, Some(1))];
    let entries = encode_spans(&spans);
    let keys: Vec<&str> = entries.iter().map(|e| e.partition_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "01010101010101010101010101010101",
            "02020202020202020202020202020202"
        ]
    );
    let mut decoded = Vec::new();
    for e in &entries {
        match decode(&e.data).unwrap() {
            RecordPayload::Spans(s) => decoded.extend(s),
            other => panic!("expected spans, got {other:?}"),
        }
    }
    assert_eq!(
        decoded,
        vec![spans[0].clone(), spans[2].clone(), spans[1].clone()]
    );
}

#[test]
fn header_errors_are_reported() {
    assert!(matches!(decode(&[]), Err(RecordError::Empty)));
    let entries = encode_metrics(&every_variant());
    let mut data = entries[0].data.to_vec();
    data[2] = FORMAT_VERSION + 1;
    assert!(
        matches!(decode(&data), Err(RecordError::UnsupportedVersion(v)) if v == FORMAT_VERSION + 1)
    );
    let mut data = entries[0].data.to_vec();
    data[0] = b'X';
    assert!(matches!(decode(&data), Err(RecordError::Malformed(_))));
    let mut data = entries[0].data.to_vec();
    data[3] = 77;
    assert!(matches!(decode(&data), Err(RecordError::Malformed(_))));
}

#[test]
fn fields_added_by_a_newer_minor_revision_are_skipped() {
    let points = every_variant();
    let entries = encode_metrics(&points);
    let mut data = entries[0].data.to_vec();
    // Field 99, varint 1, appended to the body: what a future additive field looks like.
    data.extend_from_slice(&[0x98, 0x06, 0x01]);
    let body_len = (data.len() - HEADER_LEN) as u32;
    data[4..8].copy_from_slice(&body_len.to_le_bytes());
    assert_eq!(decode(&data).unwrap(), RecordPayload::Metrics(points));
}

#[test]
fn every_truncation_is_an_error() {
    let mut entries = encode_metrics(&every_variant());
    entries.extend(encode_spans(&[span(1, 1, Some(3))]));
    for e in &entries {
        for len in 0..e.data.len() {
            assert!(
                decode(&e.data[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let valid = encode_metrics(&every_variant())[0].data.to_vec();
    for round in 0..20_000 {
        let data: Vec<u8> = if round % 2 == 0 {
            let len = rng.random_range(0..64);
            (0..len).map(|_| rng.random()).collect()
        } else {
            // Valid header and length, corrupted body: exercises the index checks.
            let mut d = valid.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(HEADER_LEN..d.len());
                d[at] = rng.random();
            }
            d
        };
        let _ = decode(&data);
    }
}

#[test]
fn size_accounting_matches_the_encoded_body_including_after_a_rejected_push() {
    let points = every_variant();
    let mut builder = metrics::MetricsBodyBuilder::default();
    for p in &points {
        assert!(builder.try_push(p, MAX_BODY_BYTES));
    }
    // A push refused for size must leave no trace (strings, series) behind.
    let newcomer = point(
        "api",
        "brand_new_metric",
        &[("new", "attr")],
        5,
        PointData::Histogram {
            temporality: Temporality::Delta,
            count: 1,
            sum: None,
            min: None,
            max: None,
            bounds: vec![123.0],
            bucket_counts: vec![0, 1],
        },
    );
    let before = builder.encoded_len();
    assert!(!builder.try_push(&newcomer, before));
    assert_eq!(builder.encoded_len(), before);
    let body = builder.finish();
    assert_eq!(before, body.encoded_len());
    assert!(!body.strings.iter().any(|s| s == "brand_new_metric"));
    assert!(!body.bounds.iter().any(|b| b.values == [123.0]));

    let mut spans_builder = spans::SpansBodyBuilder::default();
    let s = span(1, 1, Some(2));
    assert!(spans_builder.try_push(&s, MAX_BODY_BYTES));
    let len = spans_builder.encoded_len();
    assert_eq!(len, spans_builder.finish().encoded_len());
}

#[test]
fn fit_checks_agree_with_the_encoder_at_the_exact_limit() {
    let gauge = |len: usize| {
        point(
            "svc",
            "m",
            &[("blob", &"v".repeat(len))],
            1,
            PointData::Gauge(1.0),
        )
    };
    let with_blob = |len: usize| {
        let mut s = span(1, 1, None);
        s.attributes.insert("blob".into(), "v".repeat(len));
        s
    };
    let metric_len = |len: usize| encode_metrics(&[gauge(len)])[0].data.len();
    let span_len = |len: usize| encode_spans(&[with_blob(len)])[0].data.len();

    // Size the blob so the record is exactly MAX_RECORD_BYTES, then one byte more.
    let probe = MAX_RECORD_BYTES - 1_000;
    let exact = probe + (MAX_RECORD_BYTES - metric_len(probe));
    assert_eq!(metric_len(exact), MAX_RECORD_BYTES);
    assert!(metric_point_fits(&gauge(exact)));
    assert!(!metric_point_fits(&gauge(exact + 1)));

    let exact = probe + (MAX_RECORD_BYTES - span_len(probe));
    assert_eq!(span_len(exact), MAX_RECORD_BYTES);
    assert!(span_fits(&with_blob(exact)));
    assert!(!span_fits(&with_blob(exact + 1)));
}

fn histogram(bounds: &[f64], time: u64) -> MetricPoint {
    let mut bucket_counts = vec![1; bounds.len() + 1];
    bucket_counts[0] = time;
    point(
        "svc",
        "latency",
        &[],
        time,
        PointData::Histogram {
            temporality: Temporality::Delta,
            count: bucket_counts.iter().sum(),
            sum: Some(1.0),
            min: None,
            max: None,
            bounds: bounds.to_vec(),
            bucket_counts,
        },
    )
}

#[test]
fn histograms_store_each_bound_list_once_per_record() {
    let a: Vec<f64> = (0..15).map(|i| f64::from(i) * 10.0).collect();
    let b = vec![-0.0, 0.5, 1.0];
    let points: Vec<MetricPoint> = (0..1_000u64)
        .map(|i| histogram(if i % 3 == 0 { &b } else { &a }, i))
        .collect();
    let entries = encode_metrics(&points);
    assert_eq!(entries.len(), 1);
    // Inline, the 15 bounds alone would take 120 bytes per point.
    assert!(
        entries[0].data.len() < 1_000 * 40,
        "record is {} bytes",
        entries[0].data.len()
    );
    let decoded = decode_metrics(&entries);
    assert_eq!(decoded, points);
    // -0.0 and 0.0 are different bound lists (compared by bits), and -0.0 survives.
    match &decoded[0].data {
        PointData::Histogram { bounds, .. } => assert!(bounds[0].is_sign_negative()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inline_histogram_bounds_decode_and_bad_table_references_are_malformed() {
    use super::wire::{HistogramValue, MetricsBody, PointEntry, PointValue, SeriesEntry};
    let body = |bounds: Vec<f64>, bounds_index: Option<u32>| MetricsBody {
        strings: vec!["svc".into(), "m".into(), "".into()],
        series: vec![SeriesEntry {
            service: 0,
            metric: 1,
            unit: 2,
            source: 9,
            attributes: vec![],
        }],
        points: vec![PointEntry {
            series: 0,
            time_delta: 5,
            value: Some(PointValue::Histogram(HistogramValue {
                count: 2,
                bounds,
                bucket_counts: vec![1, 1],
                bounds_index,
                ..Default::default()
            })),
        }],
        bounds: vec![],
    };
    let inline = entry("svc", KIND_METRICS, body(vec![2.5], None));
    match decode(&inline.data).unwrap() {
        RecordPayload::Metrics(points) => match &points[0].data {
            PointData::Histogram { bounds, .. } => assert_eq!(bounds, &vec![2.5]),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let dangling = entry("svc", KIND_METRICS, body(vec![], Some(0)));
    assert!(matches!(
        decode(&dangling.data),
        Err(RecordError::Malformed(_))
    ));
    let both = entry("svc", KIND_METRICS, body(vec![2.5], Some(0)));
    assert!(matches!(decode(&both.data), Err(RecordError::Malformed(_))));
}

#[test]
fn series_decoded_again_share_one_identity_and_lookalike_tables_never_get_a_wrong_one() {
    use super::wire::{MetricsBody, PointEntry, PointValue, SeriesEntry};
    // Strings: service, metric, two units, attribute keys and values (names unique to this test,
    // as the cache is process-wide).
    let strings: Vec<String> = ["cache-svc", "cache.m", "ms", "s", "b", "1", "a", "2", "zz"]
        .map(String::from)
        .to_vec();
    let series = |unit: u32, attributes: Vec<u32>| SeriesEntry {
        service: 0,
        metric: 1,
        unit,
        source: 7,
        attributes,
    };
    let body = |series: Vec<SeriesEntry>| MetricsBody {
        strings: strings.clone(),
        points: (0..series.len() as u32)
            .map(|i| PointEntry {
                series: i,
                time_delta: 1,
                value: Some(PointValue::Gauge(f64::from(i))),
            })
            .collect(),
        series,
        bounds: vec![],
    };
    let decoded =
        |series: Vec<SeriesEntry>| match decode(&entry("s", KIND_METRICS, body(series)).data) {
            Ok(RecordPayload::Metrics(points)) => points,
            other => panic!("{other:?}"),
        };
    let expected = |attrs: &[(&str, &str)]| SeriesKey {
        service: "cache-svc".into(),
        metric: "cache.m".into(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    // Sorted pairs a=2, b=1 (as the encoder writes them), twice in two records: one shared key.
    let first = decoded(vec![series(2, vec![6, 7, 4, 5])]);
    let again = decoded(vec![series(2, vec![6, 7, 4, 5])]);
    assert_eq!(*first[0].series, expected(&[("a", "2"), ("b", "1")]));
    assert_eq!(first[0].series.id(), again[0].series.id());
    assert!(
        std::ptr::eq(first[0].series.key(), again[0].series.key()),
        "the second record reuses the first one's identity"
    );
    // The same strings in another order, a repeated key, another unit, a missing pair: each decodes
    // to what its own table says, whatever the cache holds.
    let points = decoded(vec![
        series(2, vec![4, 5, 6, 7]),
        series(2, vec![6, 7, 6, 8, 4, 5]),
        series(3, vec![6, 7, 4, 5]),
        series(2, vec![6, 7]),
    ]);
    assert_eq!(*points[0].series, expected(&[("a", "2"), ("b", "1")]));
    assert_eq!(points[0].unit.as_str(), "ms");
    assert_eq!(*points[1].series, expected(&[("a", "zz"), ("b", "1")]));
    assert_eq!(*points[2].series, expected(&[("a", "2"), ("b", "1")]));
    assert_eq!(points[2].unit.as_str(), "s");
    assert_eq!(*points[3].series, expected(&[("a", "2")]));
    for point in &points {
        assert_eq!(
            point.series.id(),
            point.series.key().id(),
            "ids match their keys"
        );
    }
    // A dangling attribute index is still malformed, cached series or not.
    let dangling = entry("s", KIND_METRICS, body(vec![series(2, vec![6, 99])]));
    assert!(matches!(
        decode(&dangling.data),
        Err(RecordError::Malformed(_))
    ));
}
