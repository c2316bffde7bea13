//! `GET /api/export` (issue 15 item 6): buckets of a metric or an expression's result as CSV (with
//! its header row) or NDJSON, read from the store page by page — rows across page boundaries come
//! once each, in order — and gzip-compressed when the client accepts it.

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use flowscope_core::alerts::RuleSet;
use flowscope_core::domain::stats::BucketStats;
use flowscope_core::embedded::{RedbAlertStore, RedbStore};
use flowscope_core::expr::ExprLimits;
use flowscope_core::http::export::{BUCKET_COLUMNS, EXPR_COLUMNS, PAGE_BUCKETS, PAGE_STEPS};
use flowscope_core::http::{api, ApiState};
use flowscope_core::model::{MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{
    AlertStore, BucketDelta, BucketKey, BucketStore, MetricStore, SequenceNumber, SeriesCatalog,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

const T0: i64 = 1_760_000_000 / 86_400 * 86_400;
/// Minutes of series `a`: more than two store pages.
const MINUTES_A: i64 = 2 * PAGE_BUCKETS + 500;

fn meta(host: &str) -> SeriesMeta {
    let key = SeriesKey {
        service: "api".into(),
        metric: "lat".into(),
        attributes: [("host".to_string(), host.to_string())]
            .into_iter()
            .collect(),
    };
    SeriesMeta {
        id: key.id(),
        key,
        kind: MetricKind::Histogram,
        unit: String::new(),
        last_seen_unix_s: T0,
    }
}

struct Fixture {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

/// Series `a,1` (a comma to quote) with a bucket every minute of [`MINUTES_A`] holding the values
/// `m` and `m + 1`; series `b` with 10 buckets of the value 5.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("buckets.redb")).unwrap());
    let (a, b) = (meta("a,1"), meta("b"));
    store.upsert_series(&[a.clone(), b.clone()]).await.unwrap();
    let mut seq = 0u128;
    let mut delta = |series: &SeriesMeta, m: i64, values: &[f64]| {
        let mut stats = BucketStats::new();
        for v in values {
            stats.observe(*v);
        }
        seq += 1;
        BucketDelta {
            key: BucketKey {
                series: series.id,
                resolution: Resolution::OneMinute,
                start_unix_s: T0 + m * 60,
            },
            shard_id: "shard-0".into(),
            first_seq: SequenceNumber::from_u128(seq),
            last_seq: SequenceNumber::from_u128(seq),
            stats,
            expires_at_unix_s: i64::MAX,
        }
    };
    let mut deltas: Vec<BucketDelta> = (0..MINUTES_A)
        .map(|m| delta(&a, m, &[m as f64, m as f64 + 1.0]))
        .collect();
    deltas.extend((0..10).map(|m| delta(&b, m, &[5.0])));
    for outcome in store.apply_buckets(&deltas).await {
        outcome.unwrap();
    }
    let store: Arc<dyn MetricStore> = store;
    let alerts: Arc<dyn AlertStore> =
        Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap());
    let state = ApiState::new(store, alerts, Arc::new(RuleSet::shipped().unwrap()))
        .with_clock(Arc::new(|| T0 + 86_400))
        .with_expr_limits(ExprLimits {
            max_samples: 350,
            ..ExprLimits::default()
        });
    Fixture {
        router: api::router(state),
        _dir: dir,
    }
}

/// Status, `Content-Encoding`, body bytes.
async fn get(f: &Fixture, query: &str, gzip: bool) -> (u16, Option<String>, Vec<u8>) {
    let mut request = Request::builder().uri(format!("/api/export?{query}"));
    if gzip {
        request = request.header("accept-encoding", "gzip, br");
    }
    let response = f
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, encoding, bytes.to_vec())
}

fn range() -> String {
    format!("from={T0}&to={}", T0 + MINUTES_A * 60)
}

#[tokio::test]
async fn buckets_export_as_csv_across_store_pages_and_gzip_decodes_to_the_same_bytes() {
    let f = fixture().await;
    let query = format!("service=api&metric=lat&{}", range());
    let (status, encoding, body) = get(&f, &query, false).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(encoding, None);
    let text = String::from_utf8(body.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], BUCKET_COLUMNS);
    assert_eq!(lines.len() as i64, 1 + MINUTES_A + 10);
    // Series sorted by id; find series a's rows: every minute once, in order, across pages.
    let a_rows: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("a,1"))
        .collect();
    assert_eq!(a_rows.len() as i64, MINUTES_A);
    for (m, row) in a_rows.iter().enumerate() {
        let time: i64 = row.split(',').next().unwrap().parse().unwrap();
        assert_eq!(time, T0 + m as i64 * 60, "{row}");
    }
    // Hand-computed row: minute 3 holds 3 and 4 (quantiles within the sketch's 1%).
    let row = a_rows[3];
    assert!(
        row.starts_with(&format!(
            "{},api,lat,\"{{\"\"host\"\":\"\"a,1\"\"}}\",2,7,3,4,3.5,",
            T0 + 180
        )),
        "{row}"
    );
    let b_row = lines.iter().find(|l| l.contains("\"\"b\"\"")).unwrap();
    // count 1, sum/min/max/avg 5, then p50/p95/p99: the sketch's representative of 5 (within 1%).
    let fields: Vec<&str> = b_row.rsplitn(9, ',').collect();
    assert_eq!(fields[3..8], ["5", "5", "5", "5", "1"], "{b_row}");
    for p in &fields[..3] {
        let p: f64 = p.parse().unwrap();
        assert!((p - 5.0).abs() <= 0.05, "{b_row}");
    }

    let (status, encoding, gz) = get(&f, &query, true).await;
    assert_eq!(status, 200);
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(gz.len() < body.len() / 3, "{} vs {}", gz.len(), body.len());
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, body, "gzip decodes to the identical CSV");
}

#[tokio::test]
async fn ndjson_has_one_object_per_bucket() {
    let f = fixture().await;
    let (status, _, body) = get(
        &f,
        &format!("service=api&metric=lat&format=ndjson&{}", range()),
        false,
    )
    .await;
    assert_eq!(status, 200);
    let rows: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as i64, MINUTES_A + 10);
    let b: Vec<_> = rows
        .iter()
        .filter(|r| r["attributes"]["host"] == "b")
        .collect();
    assert_eq!(b.len(), 10);
    assert_eq!(b[0]["time"], T0);
    assert_eq!(b[0]["count"], 1);
    assert_eq!(b[0]["sum"], 5.0);
    assert_eq!(b[0]["service"], "api");
}

#[tokio::test]
async fn an_expression_exports_page_by_page_in_time_order() {
    let f = fixture().await;
    // Evaluation times T0+60 … over more than two pages of evaluation times; `sum(lat_count)` at
    // t is the bucket before t: a's 2 values (+ b's 1 in its first 10 minutes).
    let steps = 2 * PAGE_STEPS + 50;
    let to = T0 + steps * 60;
    let (status, _, body) = get(
        &f,
        &format!("expr=sum(lat_count)&from={}&to={to}&step=60", T0 + 60),
        false,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], EXPR_COLUMNS);
    assert_eq!(lines.len() as i64, 1 + steps);
    for (i, row) in lines[1..].iter().enumerate() {
        let t = T0 + 60 * (i as i64 + 1);
        let value = if i < 10 { 3 } else { 2 };
        assert_eq!(*row, format!("{t},{{}},{value}"), "row {i}");
    }
}

#[tokio::test]
async fn bad_requests_are_refused_before_streaming() {
    let f = fixture().await;
    for (query, status, words) in [
        ("from=0&to=60".to_string(), 400, "give `expr`"),
        (
            format!("service=api&metric=nope&{}", range()),
            404,
            "no series",
        ),
        (
            format!("service=api&metric=lat&format=xml&{}", range()),
            400,
            "`format`",
        ),
        ("expr=sum(&from=0&to=60".to_string(), 400, "position"),
        (
            "service=api&metric=lat&from=100&to=50".to_string(),
            400,
            "`from`",
        ),
        // Two selectors × 2 series × 100 evaluation times in the first page, plus their buckets:
        // over the fixture's budget of 350 (one selector fits), refused before any byte is sent.
        (
            format!("expr=lat_count%2Blat_count&{}", range()),
            422,
            "--query-max-samples",
        ),
    ] {
        let (got, _, body) = get(&f, &query, false).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.contains(words), "{query}: {body}");
    }
}
