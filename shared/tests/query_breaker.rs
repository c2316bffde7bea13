//! Graceful degradation of the query routes (issue 15 item 7b): with the store stopped or hanging,
//! a query answers from the recent results, marked stale (`"stale": true` and the
//! `x-flowscope-stale` header), within the read timeout; the circuit breaker opens after repeated
//! failures (reads stop reaching the store), probes after its pause, and fresh answers return once
//! the store is back.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use flowscope_core::alerts::RuleSet;
use flowscope_core::domain::stats::BucketStats;
use flowscope_core::embedded::RedbAlertStore;
use flowscope_core::http::breaker::BreakerSettings;
use flowscope_core::http::caching::STALE_HEADER;
use flowscope_core::http::{api, ApiState};
use flowscope_core::model::{Attributes, MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{
    AlertStore, BucketDelta, BucketKey, BucketStore, MetricStore, SequenceNumber, SeriesCatalog,
};
use flowscope_core::testing::{FailingStore, MemoryStore, ReadMode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const NOW: i64 = 1_700_003_600;
const START: i64 = 1_700_000_000 / 60 * 60;

struct Answer {
    status: u16,
    stale: Option<String>,
    body: Value,
}

async fn get(router: &axum::Router, uri: &str) -> Answer {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let stale = response
        .headers()
        .get(STALE_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        stale,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

struct Setup {
    router: axum::Router,
    store: Arc<FailingStore<MemoryStore>>,
    _dir: tempfile::TempDir,
}

/// One gauge series `api/latency` with a bucket in the first minute, behind a breaker that opens
/// after 2 failures in a row and pauses 300 ms.
async fn setup() -> Setup {
    let store = FailingStore::new(MemoryStore::new());
    let key = SeriesKey {
        service: "api".into(),
        metric: "latency".into(),
        attributes: Attributes::new(),
    };
    let mut stats = BucketStats::new();
    stats.observe(42.0);
    store
        .apply_bucket(&BucketDelta {
            key: BucketKey {
                series: key.id(),
                resolution: Resolution::OneMinute,
                start_unix_s: START,
            },
            shard_id: "shard-0".into(),
            first_seq: SequenceNumber::from_u128(1),
            last_seq: SequenceNumber::from_u128(1),
            stats,
            expires_at_unix_s: NOW + 86_400,
        })
        .await
        .unwrap();
    store
        .upsert_series(&[SeriesMeta {
            id: key.id(),
            key,
            kind: MetricKind::Gauge,
            unit: String::new(),
            last_seen_unix_s: START + 59,
        }])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let alerts: Arc<dyn AlertStore> =
        Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap());
    let metrics: Arc<dyn MetricStore> = store.clone();
    let settings = BreakerSettings {
        timeout: Duration::from_millis(300),
        consecutive_failures: 2,
        open_for: Duration::from_millis(300),
        open_for_max: Duration::from_millis(300),
        ..BreakerSettings::default()
    };
    let state = ApiState::new(metrics, alerts, Arc::new(RuleSet::shipped().unwrap()))
        .with_clock(Arc::new(|| NOW))
        .with_store_breaker(settings, 16, 1 << 20);
    Setup {
        router: api::router(state),
        store,
        _dir: dir,
    }
}

fn history_uri() -> String {
    format!(
        "/api/services/api/metrics/latency?from={START}&to={}",
        START + 600
    )
}

#[tokio::test]
async fn a_stopped_store_answers_from_recent_results_marked_stale_and_recovers() {
    let s = setup().await;
    let uri = history_uri();
    let fresh = get(&s.router, &uri).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert!(fresh.stale.is_none());
    assert!(fresh.body.get("stale").is_none());

    s.store.set_reads(ReadMode::Unavailable);
    let stale = get(&s.router, &uri).await;
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.stale.as_deref(), Some("true"));
    assert_eq!(stale.body["stale"], true);
    let mut without_flag = stale.body.clone();
    without_flag.as_object_mut().unwrap().remove("stale");
    assert_eq!(without_flag, fresh.body, "the kept answer, unchanged");
    // Nothing kept for another query: the store's error.
    let other = get(&s.router, "/api/services/api/metrics/latency?from=0&to=60").await;
    assert!(other.status >= 500, "{}", other.body);

    // The breaker is open now: reads no longer reach the store.
    let failures = s.store.calls().injected_failures;
    let rejected = get(&s.router, &uri).await;
    assert_eq!(rejected.stale.as_deref(), Some("true"));
    assert_eq!(
        s.store.calls().injected_failures,
        failures,
        "an open breaker refuses reads without calling the store"
    );

    // The store comes back: after the pause a probe goes through and answers are fresh again.
    s.store.set_reads(ReadMode::Normal);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(&s.router, &uri).await;
        if answer.stale.is_none() {
            assert_eq!(answer.status, 200);
            assert_eq!(answer.body, fresh.body);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still stale 10 s after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hanging_store_costs_one_timeout_then_answers_stale() {
    let s = setup().await;
    let uri = history_uri();
    assert_eq!(get(&s.router, &uri).await.status, 200);
    s.store.set_reads(ReadMode::Hang);
    // Without the read timeout this would never return; the bound here is only against a hang.
    let stale = tokio::time::timeout(Duration::from_secs(10), get(&s.router, &uri))
        .await
        .expect("the query answered instead of hanging with the store");
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.stale.as_deref(), Some("true"));
    // Uncached: the error names the timeout.
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        get(&s.router, "/api/services/api/metrics/latency?from=0&to=60"),
    )
    .await
    .expect("answered");
    assert!(other.status >= 500, "{}", other.body);
    assert!(
        other.body["error"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{}",
        other.body
    );
}
