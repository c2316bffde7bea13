//! Scrape benchmark (issue 13): samples parsed per second and targets scraped per second on one
//! core, for a node-exporter-sized exposition (~1,500 samples: counters with labels, gauges, a
//! histogram, a summary). "Scraped" is parse → OTLP mapping → the receiver (protobuf encode, decode,
//! validation, stream records) into an in-memory sink; the HTTP fetch is left out (loopback, and
//! it is the exporter's cost). Prints numbers; asserts nothing about time.
//! Run: `cargo bench -p flowscope-core --bench scrape`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::ports::{StreamEntry, StreamError, StreamSink};
use flowscope_core::scrape::deliver;
use flowscope_core::scrape::mapping::{to_otlp, ScrapeResult, TargetLabels};
use flowscope_core::scrape::parse::{parse, ExpositionFormat, ParseLimits};

struct Discard;

#[async_trait]
impl StreamSink for Discard {
    async fn put_all(&self, _entries: Vec<StreamEntry>) -> Result<(), StreamError> {
        Ok(())
    }
}

fn exposition() -> String {
    let mut out = String::new();
    out.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_total counter\n");
    for cpu in 0..32 {
        for mode in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ] {
            out.push_str(&format!(
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {}.{}\n",
                cpu * 1000 + 7,
                cpu
            ));
        }
    }
    for (name, n) in [
        ("node_network_receive_bytes_total", 40),
        ("node_disk_read_bytes_total", 40),
    ] {
        out.push_str(&format!("# TYPE {name} counter\n"));
        for i in 0..n {
            out.push_str(&format!("{name}{{device=\"dev{i}\"}} {}\n", i * 123_456));
        }
    }
    out.push_str("# TYPE node_filesystem_avail_bytes gauge\n");
    for i in 0..600 {
        out.push_str(&format!(
            "node_filesystem_avail_bytes{{device=\"/dev/sd{i}\",fstype=\"ext4\",mountpoint=\"/mnt/{i}\"}} {}\n",
            i as f64 * 1.5e9
        ));
    }
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for handler in ["/metrics", "/api", "/health"] {
        let mut cumulative = 0;
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ] {
            cumulative += 10;
            out.push_str(&format!(
                "http_request_duration_seconds_bucket{{handler=\"{handler}\",le=\"{le}\"}} {cumulative}\n"
            ));
        }
        out.push_str(&format!("http_request_duration_seconds_sum{{handler=\"{handler}\"}} 12.5\nhttp_request_duration_seconds_count{{handler=\"{handler}\"}} {cumulative}\n"));
    }
    out.push_str("# TYPE go_gc_duration_seconds summary\n");
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        out.push_str(&format!(
            "go_gc_duration_seconds{{quantile=\"{q}\"}} 0.0001\n"
        ));
    }
    out.push_str("go_gc_duration_seconds_sum 0.5\ngo_gc_duration_seconds_count 1000\n");
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let body = exposition();
    let limits = ParseLimits::default();
    let samples = parse(body.as_bytes(), ExpositionFormat::Text, &limits)
        .expect("the benchmark body parses")
        .sample_count;
    println!("exposition: {samples} samples, {} bytes", body.len());

    let rounds = 300;
    let started = Instant::now();
    for _ in 0..rounds {
        let parsed = parse(body.as_bytes(), ExpositionFormat::Text, &limits).expect("parses");
        std::hint::black_box(parsed);
    }
    let parse_s = started.elapsed().as_secs_f64();
    println!(
        "parse alone: {:.0} samples/s ({:.1} µs per scrape)",
        (samples * rounds) as f64 / parse_s,
        parse_s / rounds as f64 * 1e6
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    let ingest = Ingest::new(Arc::new(Discard), IngestLimits::default());
    let target = TargetLabels {
        labels: vec![
            ("instance".into(), "127.0.0.1:9100".into()),
            ("job".into(), "node".into()),
        ],
    };
    let started = Instant::now();
    let mut points = 0;
    for round in 0..rounds {
        let parsed = parse(body.as_bytes(), ExpositionFormat::Text, &limits).expect("parses");
        let (requests, stats) = to_otlp(
            &target,
            &ScrapeResult {
                time_unix_nano: now + round as u64 * 1_000_000_000,
                duration_seconds: 0.01,
                exposition: Some(&parsed),
                honor_timestamps: true,
            },
            100_000,
        );
        points += stats.points;
        let delivery = deliver(&ingest, requests).await;
        assert!(delivery.refused.is_empty(), "{delivery:?}");
    }
    let full_s = started.elapsed().as_secs_f64();
    println!(
        "parse + map + receiver: {:.0} targets/s, {:.0} samples/s, {:.0} points/s ({:.0} µs per scrape)",
        rounds as f64 / full_s,
        (samples * rounds) as f64 / full_s,
        points as f64 / full_s,
        full_s / rounds as f64 * 1e6
    );
}
