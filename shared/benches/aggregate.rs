//! Aggregator benchmark: points/s through decode + cumulative→delta + bucket merge on one core, and
//! the AWS-cost numbers per million points. Prints numbers; asserts nothing about time.
//! Run: `cargo bench -p flowscope-core --bench aggregate`.
//!
//! The first part is issue 11's "core path": OTLP protobuf bodies shaped like SDK exports through
//! the receiver (decode + normalize + pack into stream records) and the aggregator (cumulative →
//! delta + 1m/5m/1h buckets, in-memory store), beside the floors it is built from on the same data:
//! prost decoding the bodies alone, and one DDSketch insert per data point alone.

/// The allocator the `flowscope` binary ships with, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use flowscope_core::testing::memory_store;
use flowscope_core::testing::points;
#[path = "support/sdk_export.rs"]
mod sdk_export;
use flowscope_core::testing::otlp as support;

use std::time::{Duration, Instant};

use flowscope_core::ingest::Signal;
use flowscope_core::ports::{SequenceNumber, ShardBatch, StreamRecord};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use prost::Message;

use flowscope_core::aggregate::Aggregator;
use flowscope_core::model::{MetricPoint, PointData, Retention, Temporality};
use memory_store::MemoryStore;
use points::*;

const SERIES: u64 = 200;
const POINTS_PER_RECORD: u64 = 500;
const RECORDS_PER_BATCH: u64 = 100;
const BATCHES: u64 = 20; // 1M points

/// A service exporting every 10 s: per series a cumulative counter, a gauge and a latency histogram.
fn record_points(record: u64) -> Vec<MetricPoint> {
    (0..POINTS_PER_RECORD)
        .map(|i| {
            let n = record * POINTS_PER_RECORD + i;
            let series = n % SERIES;
            let export = n / (SERIES * 3);
            let t = T0 + export * 10;
            let metric = format!("m{series}");
            match (n / SERIES) % 3 {
                0 => cumulative_sum(&metric, 1, T0 - 60, t, (export * 7) as f64, true),
                1 => gauge(&format!("{metric}.g"), t, (n % 1000) as f64 / 8.0),
                _ => point(
                    &format!("{metric}.h"),
                    1,
                    t,
                    PointData::Histogram {
                        temporality: Temporality::Cumulative {
                            start_time_unix_nano: (T0 - 60) * SEC,
                        },
                        count: export * 12,
                        sum: Some((export * 1200) as f64),
                        min: Some(1.0),
                        max: Some(900.0),
                        bounds: vec![
                            5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                        ],
                        bucket_counts: (0..11).map(|b| export * (b % 3)).collect(),
                    },
                ),
            }
        })
        .collect()
}

/// Exports per service in the core-path run: 5 services × 1000 exports × 200 points = 1M points.
const CORE_EXPORTS: u64 = 1000;
/// Records per aggregator batch in the core-path run.
const CORE_BATCH_RECORDS: usize = 100;

/// Time this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`), zero where unknown.
/// Rates over it hold still when other processes load the machine, unlike wall-clock rates.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Wall-clock and on-CPU time of one timed region.
struct Timer {
    wall: Instant,
    cpu: Duration,
}

impl Timer {
    fn start() -> Timer {
        Timer {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    fn stop(self) -> (Duration, Duration) {
        (self.wall.elapsed(), thread_cpu().saturating_sub(self.cpu))
    }
}

fn per_second(points: u64, elapsed: Duration) -> f64 {
    points as f64 / elapsed.as_secs_f64()
}

/// One value per OTLP data point, as a sketch would see it: the number, or a histogram's mean.
fn point_values(request: &ExportMetricsServiceRequest) -> Vec<f64> {
    let mut values = Vec::new();
    for metric in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let number = |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => 0.0,
        };
        match &metric.data {
            Some(Data::Gauge(g)) => values.extend(g.data_points.iter().map(number)),
            Some(Data::Sum(s)) => values.extend(s.data_points.iter().map(number)),
            Some(Data::Histogram(h)) => values.extend(
                h.data_points
                    .iter()
                    .map(|p| p.sum.unwrap_or(0.0) / p.count.max(1) as f64),
            ),
            Some(Data::ExponentialHistogram(h)) => {
                values.extend(h.data_points.iter().map(|p| p.count as f64))
            }
            _ => {}
        }
    }
    values
}

/// Issue 11's core path and its floors; prints `name: value` lines that `scripts/bench.sh` reads.
async fn core_path() {
    let requests: Vec<ExportMetricsServiceRequest> = (0..CORE_EXPORTS)
        .flat_map(|tick| (0..5).map(move |s| sdk_export::sdk_export(&format!("service-{s}"), tick)))
        .collect();
    let bodies: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let values: Vec<Vec<f64>> = requests.iter().map(point_values).collect();
    let points = requests.len() as u64 * sdk_export::POINTS_PER_EXPORT;
    drop(requests);

    // Floor 1: prost decoding the same bodies, nothing else.
    let timer = Timer::start();
    let mut decoded_metrics = 0usize;
    for body in &bodies {
        let request = ExportMetricsServiceRequest::decode(&body[..]).expect("bench body decodes");
        decoded_metrics += request.resource_metrics.len();
    }
    let (prost_elapsed, prost_cpu) = timer.stop();
    assert!(decoded_metrics > 0);

    // Floor 2: one DDSketch insert per data point (the core's sketch configuration).
    let started = Instant::now();
    let mut sketch = flowscope_core::sketch::Sketch::new();
    for value in values.iter().flatten() {
        sketch.add(*value);
    }
    let sketch_elapsed = started.elapsed();
    assert!(sketch.count() > 0);

    // The core path: receiver, then aggregator, on one core.
    let (ingest, sink) = support::receiver();
    let timer = Timer::start();
    for body in &bodies {
        let response = ingest
            .handle(support::request(
                Signal::Metrics,
                support::PROTOBUF,
                None,
                body.clone(),
            ))
            .await;
        assert_eq!(response.status, 200);
    }
    let (ingest_elapsed, ingest_cpu) = timer.stop();
    let records: Vec<StreamRecord> = sink
        .entries()
        .into_iter()
        .enumerate()
        .map(|(n, entry)| StreamRecord {
            shard_id: "shard-0".into(),
            sequence_number: SequenceNumber::from_u128(n as u128 + 1),
            partition_key: entry.partition_key,
            data: entry.data,
            arrival_unix_ms: 0,
        })
        .collect();
    let batches: Vec<ShardBatch> = records
        .chunks(CORE_BATCH_RECORDS)
        .map(|chunk| ShardBatch {
            shard_id: "shard-0".into(),
            records: chunk.to_vec(),
        })
        .collect();
    drop(records);
    let store = MemoryStore::new();
    let now = (support::T0 / SEC) as i64 + 3600;
    let aggregator = Aggregator::new(store.clone(), Retention::default()).with_clock(move || now);
    let timer = Timer::start();
    let mut consumed = 0;
    for batch in &batches {
        let outcome = aggregator.process(batch).await;
        assert_eq!(outcome.retry_from, None);
        consumed += outcome.points_applied + outcome.points_noop + outcome.points_duplicate;
    }
    let (aggregate_elapsed, aggregate_cpu) = timer.stop();
    assert!(consumed > 0);
    let core = per_second(points, ingest_elapsed + aggregate_elapsed);
    let prost = per_second(points, prost_elapsed);
    let sketch_rate = per_second(points, sketch_elapsed);
    println!("core path points:              {points} (SDK-shaped exports: sums, histograms, gauges, exponential histograms)");
    println!("core path: {core:.0} points/s");
    println!(
        "  receiver (decode + normalize + pack): {:.0} points/s alone",
        per_second(points, ingest_elapsed)
    );
    println!(
        "  aggregator (records → buckets): {:.0} points/s alone",
        per_second(points, aggregate_elapsed)
    );
    println!("prost decode alone: {prost:.0} points/s");
    println!("sketch insert alone: {sketch_rate:.0} points/s");
    println!("core path vs prost decode: {:.1}%", core * 100.0 / prost);
    // The same regions over on-CPU time: steadier than wall clock on a loaded machine.
    let core_cpu = per_second(points, ingest_cpu + aggregate_cpu);
    let prost_cpu = per_second(points, prost_cpu);
    println!("core path on-CPU: {core_cpu:.0} points/s");
    println!(
        "  receiver on-CPU: {:.0} points/s",
        per_second(points, ingest_cpu)
    );
    println!(
        "  aggregator on-CPU: {:.0} points/s",
        per_second(points, aggregate_cpu)
    );
    println!("prost decode on-CPU: {prost_cpu:.0} points/s");
    println!(
        "core path vs prost decode on-CPU: {:.1}%",
        core_cpu * 100.0 / prost_cpu
    );
    println!(
        "core path vs sketch insert: {:.1}%",
        core * 100.0 / sketch_rate
    );
    println!();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    core_path().await;
    let store = MemoryStore::new();
    let aggregator = Aggregator::new(store.clone(), Retention::default()).with_clock(|| NOW);
    let batches: Vec<_> = (0..BATCHES)
        .map(|b| {
            let records: Vec<_> = (0..RECORDS_PER_BATCH)
                .map(|r| {
                    let n = b * RECORDS_PER_BATCH + r;
                    record(n as u128 + 1, &record_points(n))
                })
                .collect();
            batch(&records)
        })
        .collect();
    let record_bytes: usize = batches
        .iter()
        .flat_map(|b| &b.records)
        .map(|r| r.data.len())
        .sum();

    let started = Instant::now();
    for record in batches.iter().flat_map(|b| &b.records) {
        assert!(flowscope_core::record::decode(&record.data).is_ok());
    }
    let decode_elapsed = started.elapsed();

    let started = Instant::now();
    let mut applied = 0;
    for batch in &batches {
        let outcome = aggregator.process(batch).await;
        assert_eq!(outcome.retry_from, None);
        applied += outcome.points_applied + outcome.points_noop;
    }
    let elapsed = started.elapsed();
    let points = BATCHES * RECORDS_PER_BATCH * POINTS_PER_RECORD;
    let per_million = 1_000_000.0 / points as f64;
    let buckets = store.buckets();
    let sketch_bytes: Vec<usize> = buckets
        .values()
        .map(|b| b.stats.sketch.to_bytes().len())
        .collect();
    println!("points processed:              {points} ({applied} applied or baseline)");
    println!(
        "throughput:                    {:.0} points/s",
        points as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  of which record decoding:    {:.0} points/s alone",
        points as f64 / decode_elapsed.as_secs_f64()
    );
    println!(
        "stream bytes per point:        {:.1}",
        record_bytes as f64 / points as f64
    );
    println!(
        "bucket writes per 1M points:   {:.0} (one conditional write per bucket per batch)",
        store.apply_calls() as f64 * per_million
    );
    println!(
        "state items:                   {}",
        store.state_keys().len()
    );
    println!(
        "sketch bytes per bucket:       max {} / mean {:.0}",
        sketch_bytes.iter().max().unwrap_or(&0),
        sketch_bytes.iter().sum::<usize>() as f64 / sketch_bytes.len().max(1) as f64
    );
}
