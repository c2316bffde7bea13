//! Expression query benchmark (issue 15): latency of range queries over the embedded store (local
//! mode's redb), for `SERIES` histogram series (default 1000: 10 routes × 100 instances) holding
//! `HOURS` (default 24) of 1m buckets, each bucket 20 observations. Prints the first (cold: the
//! store just opened) and the p50/p99 of `RUNS` further (warm) evaluations of each query, and the
//! process's peak RSS. Prints numbers; asserts nothing about time.
//! Run: `cargo bench -p flowscope-core --bench expr` (env `SERIES`, `HOURS`, `RUNS`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use flowscope_core::embedded::RedbStore;
use flowscope_core::expr::{evaluate, ExprLimits, QueryTimes};
use flowscope_core::model::{MetricKind, SeriesKey, SeriesMeta};
use flowscope_core::ports::SeriesCatalog;

const T0: i64 = 1_760_000_000 / 86_400 * 86_400;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_kb() -> u64 {
    flowscope_core::testing::process::proc_status_kib("VmHWM:")
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let series_count = env("SERIES", 1000);
    let hours = env("HOURS", 24) as i64;
    let runs = env("RUNS", 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("buckets.redb");
    let minutes = hours * 60;
    {
        let store = RedbStore::open(&path).expect("store");
        let mut metas = Vec::new();
        for i in 0..series_count {
            let key = SeriesKey {
                service: "checkout".into(),
                metric: "http.server.duration".into(),
                attributes: [
                    ("http.route".to_string(), format!("/r{}", i % 10)),
                    ("host".to_string(), format!("i-{}", i / 10)),
                ]
                .into_iter()
                .collect(),
            };
            metas.push(SeriesMeta {
                id: key.id(),
                key,
                kind: MetricKind::Histogram,
                unit: "ms".into(),
                last_seen_unix_s: T0 + minutes * 60,
            });
        }
        store.upsert_series(&metas).await.expect("series");
        let started = Instant::now();
        flowscope_core::testing::points::fill_latency_minutes(&store, &metas, T0, minutes, 20)
            .await
            .expect("write");
        println!(
            "setup: {series_count} series × {minutes} 1m buckets written in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let store = RedbStore::open(&path).expect("store");
    let to = T0 + minutes * 60;
    for expr in [
        "quantile by (http_route) (0.95, sum by (http_route) (http_server_duration_milliseconds))",
        "sum by (http_route) (rate(http_server_duration_milliseconds_count[5m]))",
        "histogram_quantile(0.99, sum(rate(http_server_duration_milliseconds_bucket[5m])))",
    ] {
        let times = QueryTimes {
            start: T0 + 60,
            end: to,
            step: 60,
            resolution: None,
        };
        let mut durations = Vec::new();
        let mut points = 0;
        for _ in 0..=runs {
            let started = Instant::now();
            let result = evaluate(&store, expr, times, false, ExprLimits::default())
                .await
                .expect("query");
            durations.push(started.elapsed());
            points = result
                .series()
                .iter()
                .map(|(_, p)| p.iter().flatten().count())
                .sum::<usize>();
        }
        let cold = durations[0];
        let mut warm = durations[1..].to_vec();
        warm.sort();
        println!(
            "{expr}\n  {hours} h at 1m over {series_count} series → {points} points: cold {:.0} ms; warm p50 {:.0} ms, p99 {:.0} ms ({runs} runs)",
            cold.as_secs_f64() * 1e3,
            percentile(&warm, 0.5).as_secs_f64() * 1e3,
            percentile(&warm, 0.99).as_secs_f64() * 1e3,
        );
    }
    println!("peak RSS: {} MB", peak_rss_kb() / 1024);
}
