//! Conditional GETs on the query routes (issue 15 item 7a): a strong `ETag` of the answer, a long
//! `Cache-Control` for ranges of closed buckets and a few seconds for the open one, and `304 Not
//! Modified` for `If-None-Match` with the current tag — a changed answer gets a new tag.

mod alerts_support;

use std::sync::Arc;

use alerts_support::{minute, Fixture};
use axum::body::Body;
use axum::http::Request;
use flowscope_core::alerts::RuleSet;
use flowscope_core::http::caching::{CLOSED_MAX_AGE_S, OPEN_MAX_AGE_S};
use flowscope_core::http::{api, ApiState};
use flowscope_core::model::MetricKind;
use flowscope_core::ports::{AlertStore, MetricStore};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Answer {
    status: u16,
    etag: Option<String>,
    cache_control: Option<String>,
    body: Vec<u8>,
}

async fn get(router: &axum::Router, uri: &str, if_none_match: Option<&str>) -> Answer {
    let mut request = Request::builder().method("GET").uri(uri);
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (status, etag, cache_control) = (
        response.status().as_u16(),
        header("etag"),
        header("cache-control"),
    );
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        etag,
        cache_control,
        body,
    }
}

/// The API over the fixture's store, its clock at minute 60 (an hour after the data's start).
fn router(fx: &Fixture) -> axum::Router {
    let metrics: Arc<dyn MetricStore> = fx.metrics.clone();
    let alerts: Arc<dyn AlertStore> = fx.alerts.clone();
    api::router(
        ApiState::new(metrics, alerts, Arc::new(RuleSet::shipped().unwrap()))
            .with_clock(Arc::new(|| minute(60))),
    )
}

#[tokio::test]
async fn closed_ranges_are_cached_long_and_revalidate_with_304() {
    let fx = Fixture::new();
    fx.record("api", "latency", &[], MetricKind::Gauge, 1, &[10.0, 20.0])
        .await;
    let router = router(&fx);
    let uri = format!(
        "/api/services/api/metrics/latency?from={}&to={}",
        minute(0),
        minute(10)
    );
    let first = get(&router, &uri, None).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let tag = first.etag.clone().expect("an ETag");
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"),
        "{tag}"
    );
    assert_eq!(
        first.cache_control.as_deref(),
        Some(format!("private, max-age={CLOSED_MAX_AGE_S}").as_str())
    );

    // The same tag: 304, no body, the same validators.
    let again = get(&router, &uri, Some(&tag)).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.etag.as_deref(), Some(tag.as_str()));
    assert_eq!(again.cache_control, first.cache_control);
    // A list naming it, or a weak form of it, matches too; another tag does not.
    let listed = get(&router, &uri, Some(&format!("\"nope\", W/{tag}"))).await;
    assert_eq!(listed.status, 304);
    let other = get(&router, &uri, Some("\"nope\"")).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, first.body);

    // Data that changes the answer changes the tag: the old one gets the new body.
    fx.record("api", "latency", &[], MetricKind::Gauge, 2, &[99.0])
        .await;
    let changed = get(&router, &uri, Some(&tag)).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.etag.as_deref(), Some(tag.as_str()));
    assert_ne!(changed.body, first.body);
}

#[tokio::test]
async fn ranges_reaching_the_open_bucket_are_cached_for_seconds() {
    let fx = Fixture::new();
    fx.record("api", "latency", &[], MetricKind::Gauge, 59, &[10.0])
        .await;
    let router = router(&fx);
    let open = format!("private, max-age={OPEN_MAX_AGE_S}");
    // No `to`: up to now, open bucket included.
    let now = get(
        &router,
        &format!("/api/services/api/metrics/latency?from={}", minute(0)),
        None,
    )
    .await;
    assert_eq!(now.status, 200);
    assert_eq!(now.cache_control.as_deref(), Some(open.as_str()));
    assert!(now.etag.is_some());
    // Up to the current minute: still open.
    let recent = get(
        &router,
        &format!(
            "/api/services/api/metrics/latency?from={}&to={}",
            minute(0),
            minute(60)
        ),
        None,
    )
    .await;
    assert_eq!(recent.cache_control.as_deref(), Some(open.as_str()));

    // The expression API follows the same rule.
    let expr = format!("/api/query?expr=latency&time={}", minute(30));
    let closed = get(&router, &expr, None).await;
    assert_eq!(
        closed.status,
        200,
        "{}",
        String::from_utf8_lossy(&closed.body)
    );
    assert_eq!(
        closed.cache_control.as_deref(),
        Some(format!("private, max-age={CLOSED_MAX_AGE_S}").as_str())
    );
    let tag = closed.etag.unwrap();
    assert_eq!(get(&router, &expr, Some(&tag)).await.status, 304);

    // Errors are never tagged.
    let missing = get(&router, "/api/services/api/metrics/nope", None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.etag.is_none() && missing.cache_control.is_none());
}
