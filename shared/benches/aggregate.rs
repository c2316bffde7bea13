//! Aggregator benchmark: points/s through decode + cumulative→delta + bucket merge on one core, and
//! the AWS-cost numbers per million points. Prints numbers; asserts nothing about time.
//! Run: `cargo bench -p flowscope-core --bench aggregate`.

#[path = "../tests/support/memory_store.rs"]
mod memory_store;
#[path = "../tests/support/points.rs"]
mod points;

use std::time::Instant;

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

#[tokio::main(flavor = "current_thread")]
async fn main() {
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
