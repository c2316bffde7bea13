//! Decode-time limits of the OTLP receiver (issue 10, items 3 and 7 and the per-point limits of 1):
//! points (and spans) outside the retention window, values no bucket could add up, exponential
//! buckets outside the range of doubles, too many or too long attributes and too many points per
//! request are each refused in `partial_success` with a reason naming the metric and the limit,
//! counted per reason, and never stored; the rest of the request is kept.

use flowscope_core::testing::memory_store;
use flowscope_core::testing::otlp as support;

use flowscope_core::aggregate::Aggregator;
use flowscope_core::ingest::{Ingest, IngestLimits, IngestResponse, Signal};
use flowscope_core::model::{PointData, Resolution, Retention};
use flowscope_core::ports::{SequenceNumber, ShardBatch, StreamRecord};
use memory_store::MemoryStore;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point, AggregationTemporality,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
use prost::Message;
use serde_json::Value;
use support::*;

const SEC: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * SEC;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        "1",
        metric::Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

fn at(time: u64, value: f64) -> NumberDataPoint {
    number_point(vec![], time, number_data_point::Value::AsDouble(value))
}

fn with_attributes(attributes: Vec<KeyValue>) -> NumberDataPoint {
    number_point(attributes, T0, number_data_point::Value::AsDouble(1.0))
}

fn request_of(
    metrics: Vec<Metric>,
) -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    metrics_request(vec![string_kv("service.name", "api")], metrics)
}

fn partial(response: &IngestResponse) -> Option<ExportMetricsPartialSuccess> {
    assert_eq!(response.status, 200, "{response:?}");
    ExportMetricsServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
}

fn refused(response: &IngestResponse) -> ExportMetricsPartialSuccess {
    partial(response).expect("partial_success present when points were refused")
}

/// Runs what the sink received through the real aggregator (same clock as the receiver) into `store`.
async fn aggregate(sink: &RecordingSink, store: &std::sync::Arc<MemoryStore>, now_s: i64) -> u64 {
    let records = sink
        .entries()
        .into_iter()
        .enumerate()
        .map(|(i, entry)| StreamRecord {
            shard_id: "shardId-0".into(),
            sequence_number: SequenceNumber::parse(&format!("{}", 1000 + i)).unwrap(),
            partition_key: entry.partition_key,
            data: entry.data,
            arrival_unix_ms: now_s * 1000,
        })
        .collect();
    let outcome = Aggregator::new(store.clone(), Retention::default())
        .with_clock(move || now_s)
        .process(&ShardBatch {
            shard_id: "shardId-0".into(),
            records,
        })
        .await;
    assert_eq!(outcome.retry_from, None);
    outcome.points_expired
}

// ---- 1. Too old -------------------------------------------------------------------------------

/// The first second whose 1d bucket the aggregator still keeps 5 minutes after `now_s` (the
/// receiver's margin for the time a point takes to reach the aggregator): bucket start + 1 d + 365 d
/// after now + 300 s. 1h and 1d buckets have the longest retention by default, and a day's bucket
/// reaches further back than an hour's.
fn earliest_kept_s(now_s: u64) -> u64 {
    let day = 86_400;
    let expired_until = now_s + 300 - day - 365 * day;
    (expired_until / day + 1) * day
}

#[tokio::test]
async fn points_older_than_the_retention_window_are_refused_with_the_reason_and_not_counted() {
    let (ingest, sink) = receiver();
    let earliest = earliest_kept_s(NOW / SEC) * SEC;
    let req = request_of(vec![gauge(
        "temperature",
        vec![
            at(946_684_800 * SEC, 1.0), // 2000-01-01
            at(1, 2.0),                 // 1 ns after the epoch
            at(earliest - SEC, 3.0),    // one second before the window
            at(earliest, 4.0),          // the window's first second: kept in its 1d bucket
            at(NOW - 8 * DAY, 5.0),     // past the 1m (7 d) retention, inside 5m and 1h: kept
            at(NOW - 60 * SEC, 6.0),
        ],
    )]);
    let response = post_metrics_proto(&ingest, &req).await;
    let partial = refused(&response);
    assert_eq!(partial.rejected_data_points, 3);
    assert!(
        partial
            .error_message
            .contains(r#"metric "temperature": timestamp"#)
            && partial
                .error_message
                .contains("older than the retention window of 365 d"),
        "{}",
        partial.error_message
    );
    let kept: Vec<PointData> = sink.points().into_iter().map(|p| p.data).collect();
    assert_eq!(
        kept,
        vec![
            PointData::Gauge(4.0),
            PointData::Gauge(5.0),
            PointData::Gauge(6.0)
        ]
    );
    let stats = ingest.stats();
    assert_eq!(stats.accepted_data_points, 3);
    assert_eq!(stats.rejected_data_points, 3);
    assert_eq!(stats.rejected_by_reason.too_old, 3);

    // Everything accepted is really stored: the aggregator, at the same moment, expires none of it.
    let store = MemoryStore::new();
    let expired_resolutions = aggregate(&sink, &store, (NOW / SEC) as i64).await;
    // The 8-day-old point has no 1m bucket any more (that is the documented window), the one at the
    // window's first second only its 1d bucket: 1 + 3 (resolution, point) pairs.
    assert_eq!(expired_resolutions, 4);
    let day_bucket_of_earliest = store
        .buckets()
        .into_iter()
        .filter(|(key, _)| {
            key.resolution == Resolution::OneDay
                && key.start_unix_s == Resolution::OneDay.bucket_start((earliest / SEC) as i64)
        })
        .count();
    assert_eq!(day_bucket_of_earliest, 1);
}

#[tokio::test]
async fn the_window_follows_the_configured_retention_and_a_missing_timestamp_stays_invalid() {
    let (ingest, sink) = receiver_with(IngestLimits {
        retention: Retention {
            one_minute_seconds: 3600,
            five_minutes_seconds: 2 * 3600,
            one_hour_seconds: 86_400,
            one_day_seconds: 86_400,
        },
        ..IngestLimits::default()
    });
    let req = request_of(vec![gauge(
        "temperature",
        vec![
            at(NOW - 2 * DAY, 1.0),
            at(0, 2.0),
            at(NOW - 12 * 3600 * SEC, 3.0),
        ],
    )]);
    let partial = refused(&post_metrics_proto(&ingest, &req).await);
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial.error_message.contains("retention window of 1 d"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("time_unix_nano is missing"),
        "{}",
        partial.error_message
    );
    assert_eq!(sink.points().len(), 1);
    let stats = ingest.stats();
    assert_eq!(stats.rejected_by_reason.too_old, 1);
    assert_eq!(stats.rejected_by_reason.invalid, 1);
}

#[tokio::test]
async fn a_point_whose_bucket_expires_within_five_minutes_is_refused_rather_than_lost_on_the_way() {
    const HOUR: u64 = 3600 * SEC;
    let hour_start = 1_700_002_800 * SEC; // an hour boundary
    let now = hour_start + 3500 * SEC;
    let (ingest, sink) = receiver();
    let ingest = ingest.with_clock(move || now);
    let oldest_bucket = hour_start - 365 * DAY; // its 1h bucket expires 100 s from now
    let req = request_of(vec![gauge(
        "temperature",
        vec![
            at(oldest_bucket + 10 * SEC, 1.0),
            at(oldest_bucket + HOUR, 2.0),
        ],
    )]);
    let partial = refused(&post_metrics_proto(&ingest, &req).await);
    assert_eq!(partial.rejected_data_points, 1, "{}", partial.error_message);
    assert!(partial
        .error_message
        .contains("older than the retention window"));
    assert_eq!(sink.points().len(), 1);
    assert_eq!(sink.points()[0].data, PointData::Gauge(2.0));
}

fn span(id: u8, end: u64, attributes: Vec<KeyValue>) -> OtlpSpan {
    OtlpSpan {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        name: "GET /".into(),
        kind: 2,
        start_time_unix_nano: end.saturating_sub(SEC / 10).max(1),
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

async fn post_spans(
    ingest: &Ingest<RecordingSink>,
    spans: Vec<OtlpSpan>,
) -> Option<ExportTracePartialSuccess> {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "api")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let response = ingest
        .handle(request(Signal::Traces, PROTOBUF, None, req.encode_to_vec()))
        .await;
    assert_eq!(response.status, 200);
    ExportTraceServiceResponse::decode(&response.body[..])
        .unwrap()
        .partial_success
}

#[tokio::test]
async fn spans_older_than_the_retention_window_are_refused() {
    let (ingest, sink) = receiver();
    let partial = post_spans(
        &ingest,
        vec![
            span(1, 946_684_800 * SEC, vec![]),
            span(2, 1, vec![]),
            span(3, NOW - 60 * SEC, vec![]),
        ],
    )
    .await
    .expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial
            .error_message
            .contains("span 0101010101010101: timestamp 946684800 s (unix) is older than the retention window of 365 d"),
        "{}",
        partial.error_message
    );
    assert_eq!(sink.spans().len(), 1);
    assert_eq!(ingest.stats().rejected_by_reason.too_old, 2);
}

// ---- 2. Nothing non-finite enters a bucket -------------------------------------------------------

fn json_gauge(name: &str, values: &[&str], time: u64) -> String {
    let points: Vec<String> = values
        .iter()
        .map(|v| format!(r#"{{"timeUnixNano":"{time}","asDouble":{v}}}"#))
        .collect();
    format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
            "scopeMetrics":[{{"metrics":[{{"name":"{name}","gauge":{{"dataPoints":[{}]}}}}]}}]}}]}}"#,
        points.join(",")
    )
}

#[tokio::test]
async fn two_huge_doubles_are_refused_and_later_good_points_make_a_correct_bucket() {
    let (ingest, sink) = receiver();
    let time = NOW - 120 * SEC;
    let response = post_json(
        &ingest,
        Signal::Metrics,
        &json_gauge("poison", &["1.7e308", "1.7e308"], time),
    )
    .await;
    assert_eq!(response.status, 200);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedDataPoints"], "2", "{body}");
    let message = body["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains(
            r#"metric "poison": value 1.7e308 is beyond the accepted magnitude of 1e280"#
        ),
        "{message}"
    );
    assert!(sink.points().is_empty());
    assert_eq!(ingest.stats().rejected_by_reason.value_out_of_range, 2);

    let response = post_json(
        &ingest,
        Signal::Metrics,
        &json_gauge("poison", &["2.5", "1e280", "-4"], time),
    )
    .await;
    assert_eq!(response.status, 200);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({}),
        "the largest accepted magnitude is accepted"
    );

    let store = MemoryStore::new();
    aggregate(&sink, &store, (NOW / SEC) as i64).await;
    let minute = store
        .buckets()
        .into_iter()
        .find(|(key, _)| key.resolution == Resolution::OneMinute)
        .map(|(_, bucket)| bucket.stats)
        .expect("a 1m bucket");
    assert_eq!(minute.count, 3);
    assert_eq!(minute.sum, 2.5 + 1e280 - 4.0);
    assert_eq!(minute.min, Some(-4.0));
    assert_eq!(minute.max, Some(1e280));
    assert!(minute.quantile(0.5).is_some_and(f64::is_finite));
}

fn exponential(scale: i32, offset: i32, counts: Vec<u64>, negative: bool) -> Metric {
    let buckets = Buckets {
        offset,
        bucket_counts: counts.clone(),
    };
    let count = counts.iter().sum();
    metric(
        "latency",
        "s",
        metric::Data::ExponentialHistogram(ExponentialHistogram {
            aggregation_temporality: DELTA,
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: T0,
                count,
                scale,
                positive: (!negative).then(|| buckets.clone()),
                negative: negative.then_some(buckets),
                ..Default::default()
            }],
        }),
    )
}

#[tokio::test]
async fn exponential_buckets_outside_the_range_of_doubles_are_refused() {
    let (ingest, sink) = receiver();
    let req = request_of(vec![
        // The issue's case: stored as count 3, sum 0 and null min/max/p50.
        exponential(0, i32::MAX - 2, vec![1, 1, 1], false), // offset 2^31 − 3
        // 2^931 > 1e280, at scale 0 and (the same boundary) at scale 2.
        exponential(0, 930, vec![1], false),
        exponential(2, 3720, vec![1], true),
        // Below the smallest normal double.
        exponential(0, -1030, vec![1], false),
        // Kept: up to 2^930 (< 1e280); empty buckets at the top do not count.
        exponential(0, 929, vec![1, 0, 0], false),
        exponential(0, -1022, vec![2], true),
    ]);
    let partial = refused(&post_metrics_proto(&ingest, &req).await);
    assert_eq!(partial.rejected_data_points, 4, "{}", partial.error_message);
    assert!(
        partial.error_message.contains(
            r#"metric "latency": exponential histogram positive bucket 2147483647 at scale 0 reaches 2^2147483648, beyond the accepted magnitude of 1e280"#
        ),
        "{}",
        partial.error_message
    );
    assert!(
        partial
            .error_message
            .contains("below the smallest normal double"),
        "{}",
        partial.error_message
    );
    assert_eq!(sink.points().len(), 2);
    assert_eq!(ingest.stats().rejected_by_reason.value_out_of_range, 4);
}

#[tokio::test]
async fn histogram_bounds_and_sums_beyond_the_magnitude_limit_are_refused() {
    let (ingest, sink) = receiver();
    let histogram = |bounds: Vec<f64>, sum: Option<f64>, min: Option<f64>| {
        let counts = vec![1; bounds.len() + 1];
        metric(
            "size",
            "By",
            metric::Data::Histogram(Histogram {
                aggregation_temporality: DELTA,
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: T0,
                    count: counts.len() as u64,
                    bucket_counts: counts,
                    explicit_bounds: bounds,
                    sum,
                    min,
                    ..Default::default()
                }],
            }),
        )
    };
    let req = request_of(vec![
        histogram(vec![1.0, 1e300], None, None),
        histogram(vec![1.0, 2.0], Some(-1e290), None),
        histogram(vec![1.0, 2.0], None, Some(-1e281)),
        histogram(vec![1.0, 2.0], Some(10.0), Some(0.5)),
    ]);
    let partial = refused(&post_metrics_proto(&ingest, &req).await);
    assert_eq!(partial.rejected_data_points, 3, "{}", partial.error_message);
    for what in ["histogram bound 1e300", "sum -1e290", "min -1e281"] {
        assert!(
            partial.error_message.contains(&format!(
                r#"metric "size": {what} is beyond the accepted magnitude of 1e280"#
            )),
            "{what}: {}",
            partial.error_message
        );
    }
    assert_eq!(sink.points().len(), 1);
}

// ---- 3. Per-point and per-request limits -------------------------------------------------------

fn attributes(n: usize) -> Vec<KeyValue> {
    (0..n).map(|i| string_kv(&format!("k{i}"), "v")).collect()
}

#[tokio::test]
async fn points_with_too_many_or_too_long_attributes_are_refused_not_truncated() {
    let (ingest, sink) = receiver();
    let mut long = attributes(1);
    long.push(string_kv("user.agent", &"x".repeat(4097)));
    let req = request_of(vec![gauge(
        "requests",
        vec![
            with_attributes(attributes(129)),
            with_attributes(long),
            with_attributes(attributes(128)),
            with_attributes(vec![string_kv("user.agent", &"é".repeat(2048))]), // 4096 bytes
        ],
    )]);
    let partial = refused(&post_metrics_proto(&ingest, &req).await);
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial
            .error_message
            .contains(r#"metric "requests": 129 attributes exceed the limit of 128 per point"#),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains(
            r#"metric "requests": attribute "user.agent" has a value of 4097 bytes, over the limit of 4096 bytes"#
        ),
        "{}",
        partial.error_message
    );
    let kept = sink.points();
    assert_eq!(kept.len(), 2);
    assert_eq!(
        kept[1].series.attributes["user.agent"].len(),
        4096,
        "not truncated"
    );
    let by_reason = ingest.stats().rejected_by_reason;
    assert_eq!(by_reason.too_many_attributes, 1);
    assert_eq!(by_reason.attribute_too_long, 1);
}

#[tokio::test]
async fn attribute_limits_are_configurable_and_apply_to_spans() {
    let (ingest, sink) = receiver_with(IngestLimits {
        max_attributes_per_point: 2,
        max_attribute_value_bytes: 8,
        ..IngestLimits::default()
    });
    let partial = post_spans(
        &ingest,
        vec![
            span(1, NOW - SEC, attributes(3)),
            span(2, NOW - SEC, vec![string_kv("db.statement", "SELECT 1;")]),
            span(3, NOW - SEC, attributes(2)),
        ],
    )
    .await
    .expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial
            .error_message
            .contains("span 0101010101010101: 3 attributes exceed the limit of 2 per point"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains(
            r#"span 0202020202020202: attribute "db.statement" has a value of 9 bytes, over the limit of 8 bytes"#
        ),
        "{}",
        partial.error_message
    );
    assert_eq!(sink.spans().len(), 1);
}

#[tokio::test]
async fn points_beyond_the_per_request_limit_are_refused_and_the_rest_kept() {
    let (ingest, sink) = receiver_with(IngestLimits {
        max_points_per_request: 3,
        ..IngestLimits::default()
    });
    let req = request_of(vec![
        gauge("a", vec![at(T0, 1.0), at(T0, 2.0)]),
        gauge("b", vec![at(T0, 3.0), at(T0, 4.0), at(T0, 5.0)]),
    ]);
    let partial = refused(&post_metrics_proto(&ingest, &req).await);
    assert_eq!(partial.rejected_data_points, 2);
    assert!(
        partial.error_message.contains(
            r#"metric "b": the request carries more than 3 data points (the limit per request)"#
        ),
        "{}",
        partial.error_message
    );
    let kept: Vec<PointData> = sink.points().into_iter().map(|p| p.data).collect();
    assert_eq!(
        kept,
        vec![
            PointData::Gauge(1.0),
            PointData::Gauge(2.0),
            PointData::Gauge(3.0)
        ]
    );
    assert_eq!(ingest.stats().rejected_by_reason.too_many_in_request, 2);

    let (ingest, sink) = receiver_with(IngestLimits {
        max_points_per_request: 3,
        ..IngestLimits::default()
    });
    let partial = post_spans(
        &ingest,
        (1..=5).map(|i| span(i, NOW - SEC, vec![])).collect(),
    )
    .await
    .expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("more than 3 spans"),
        "{}",
        partial.error_message
    );
    assert_eq!(sink.spans().len(), 3);
}

#[tokio::test]
async fn the_default_per_request_limit_is_100_000_points() {
    let (ingest, sink) = receiver();
    let points = (0..100_001).map(|i| at(T0, i as f64)).collect();
    let req = request_of(vec![gauge("many", points)]);
    let partial = refused(&post_metrics_proto(&ingest, &req).await);
    assert_eq!(partial.rejected_data_points, 1);
    assert!(partial
        .error_message
        .contains("more than 100000 data points"));
    assert_eq!(ingest.stats().accepted_data_points, 100_000);
    assert_eq!(sink.points().len(), 100_000);
}

#[test]
fn the_ingest_lambda_reads_its_limits_from_the_environment() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let defaults = IngestLimits::default();
    assert_eq!(defaults.max_attributes_per_point, 128);
    assert_eq!(defaults.max_attribute_value_bytes, 4096);
    assert_eq!(defaults.max_points_per_request, 100_000);
    assert_eq!(defaults.with_env(env(&[])).unwrap(), defaults);
    let set = defaults
        .with_env(env(&[
            ("MAX_ATTRIBUTES_PER_POINT", "16"),
            ("MAX_ATTRIBUTE_VALUE_BYTES", " 1024 "),
            ("MAX_POINTS_PER_REQUEST", ""),
        ]))
        .unwrap();
    assert_eq!(set.max_attributes_per_point, 16);
    assert_eq!(set.max_attribute_value_bytes, 1024);
    assert_eq!(
        set.max_points_per_request, 100_000,
        "blank keeps the default"
    );
    let error = defaults
        .with_env(env(&[("MAX_POINTS_PER_REQUEST", "lots")]))
        .unwrap_err();
    assert!(error.contains("MAX_POINTS_PER_REQUEST"), "{error}");
}

#[tokio::test]
async fn json_doubles_are_checked_like_protobuf_ones_and_an_unrepresentable_number_is_malformed() {
    let (ingest, sink) = receiver();
    let time = NOW - 60 * SEC;
    // Beyond the magnitude limit but a double: refused alone, like in protobuf.
    let response = post_json(
        &ingest,
        Signal::Metrics,
        &json_gauge("g", &["-1e281", "7"], time),
    )
    .await;
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedDataPoints"], "1", "{body}");
    assert_eq!(sink.points().len(), 1);
    // Not a double at all (JSON allows the text, proto3's JSON mapping does not): the document is
    // malformed, 400 with the reason, as for any invalid JSON.
    let response = post_json(&ingest, Signal::Metrics, &json_gauge("g", &["1e309"], time)).await;
    assert_eq!(response.status, 400);
    let status: Value = serde_json::from_slice(&response.body).unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("number out of range"),
        "{status}"
    );
}
