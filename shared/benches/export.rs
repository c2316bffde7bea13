//! Export benchmark (issue 15 item 6): `GET /api/export` of `SERIES` (default 1000) histogram series
//! × `MINUTES` (default 1000) 1m buckets = 1M buckets from local mode's redb store, as CSV, gzip and
//! NDJSON, the body consumed frame by frame as a client would. Prints rows, bytes, time and the peak
//! RSS each export added over the RSS before it (VmHWM reset through /proc/self/clear_refs), for
//! the whole range and for a tenth of it: flat memory means the two peaks are alike.
//! Run: `cargo bench -p flowscope-core --bench export` (or, without a release build,
//! `cargo test -p flowscope-core --bench export`; env `SERIES`, `MINUTES`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use flowscope_core::alerts::RuleSet;
use flowscope_core::embedded::{RedbAlertStore, RedbStore};
use flowscope_core::http::{api, ApiState};
use flowscope_core::model::{MetricKind, SeriesKey, SeriesMeta};
use flowscope_core::ports::{AlertStore, MetricStore, SeriesCatalog};
use flowscope_core::testing::process::proc_status_kib;
use http_body_util::BodyExt;
use tower::ServiceExt;

const T0: i64 = 1_760_000_000 / 86_400 * 86_400;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --bench export` passes test-harness flags: ignore them.
    let series_count = env("SERIES", 1000);
    let minutes = env("MINUTES", 1000) as i64;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("buckets.redb");
    {
        let store = RedbStore::open(&path).expect("store");
        let metas: Vec<SeriesMeta> = (0..series_count)
            .map(|i| {
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
                SeriesMeta {
                    id: key.id(),
                    key,
                    kind: MetricKind::Histogram,
                    unit: "ms".into(),
                    last_seen_unix_s: T0,
                }
            })
            .collect();
        store.upsert_series(&metas).await.expect("series");
        let started = Instant::now();
        flowscope_core::testing::points::fill_latency_minutes(&store, &metas, T0, minutes, 5)
            .await
            .expect("write");
        println!(
            "setup: {series_count} series × {minutes} 1m buckets written in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let store: Arc<dyn MetricStore> = Arc::new(RedbStore::open(&path).expect("store"));
    let alerts: Arc<dyn AlertStore> =
        Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).expect("alerts"));
    let router = api::router(ApiState::new(
        store,
        alerts,
        Arc::new(RuleSet::shipped().expect("rules")),
    ));
    for (label, span, query_extra, gzip) in [
        ("csv, a tenth of the range", minutes / 10, "", false),
        ("csv", minutes, "", false),
        ("csv + gzip", minutes, "", true),
        ("ndjson", minutes, "&format=ndjson", false),
    ] {
        let uri = format!(
            "/api/export?service=checkout&metric=http.server.duration&from={T0}&to={}{query_extra}",
            T0 + span * 60
        );
        let mut request = Request::builder().uri(uri);
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
        let before = proc_status_kib("VmRSS:");
        let started = Instant::now();
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let (mut bytes, mut newlines) = (0usize, 0usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("a complete body");
            if let Some(data) = frame.data_ref() {
                bytes += data.len();
                newlines += data.iter().filter(|b| **b == b'\n').count();
            }
        }
        let peak = proc_status_kib("VmHWM:");
        let rows = if gzip {
            "(gzip)".to_string()
        } else {
            format!("{newlines} lines")
        };
        println!(
            "{label}: {} buckets → {rows}, {:.1} MB in {:.1} s; RSS before {} MB, peak during +{} MB",
            series_count as i64 * span,
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64(),
            before / 1024,
            peak.saturating_sub(before) / 1024,
        );
    }
}
