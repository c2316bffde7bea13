//! The expression language over a bucket store (issue 15 item 1): each function against hand-computed
//! results, and quantiles computed by merging the sketches of the selected series — equal (within the
//! sketch's 1%) to the exact quantile of the union of the raw values, and visibly different from the
//! average of per-instance percentiles.

use std::collections::BTreeMap;

use flowscope_core::domain::stats::BucketStats;
use flowscope_core::expr::{evaluate, EvalError, ExprLimits, QueryResult, QueryTimes};
use flowscope_core::model::{MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{BucketDelta, BucketKey, BucketStore, SequenceNumber, SeriesCatalog};
use flowscope_core::testing::MemoryStore;

type Store = std::sync::Arc<MemoryStore>;

fn meta(
    service: &str,
    metric: &str,
    unit: &str,
    kind: MetricKind,
    attrs: &[(&str, &str)],
) -> SeriesMeta {
    let key = SeriesKey {
        service: service.into(),
        metric: metric.into(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    SeriesMeta {
        id: key.id(),
        key,
        kind,
        unit: unit.into(),
        last_seen_unix_s: 0,
    }
}

/// Writes one 1m bucket holding `values` for `series`.
async fn put(store: &Store, series: &SeriesMeta, start: i64, values: &[f64]) {
    store
        .upsert_series(std::slice::from_ref(series))
        .await
        .unwrap();
    let mut stats = BucketStats::new();
    for v in values {
        stats.observe(*v);
    }
    let seq = SequenceNumber::from_u128(start as u128 + 1);
    store
        .apply_bucket(&BucketDelta {
            key: BucketKey {
                series: series.id,
                resolution: Resolution::OneMinute,
                start_unix_s: start,
            },
            shard_id: format!("{}-{start}", series.id),
            first_seq: seq.clone(),
            last_seq: seq,
            stats,
            expires_at_unix_s: i64::MAX,
        })
        .await
        .unwrap();
}

async fn instant(store: &Store, expr: &str, t: i64) -> Result<QueryResult, EvalError> {
    let times = QueryTimes {
        start: t,
        end: t,
        step: 60,
        resolution: None,
    };
    evaluate(store.as_ref(), expr, times, true, ExprLimits::default()).await
}

/// The instant result as `{labels rendered} → value`.
async fn values(store: &Store, expr: &str, t: i64) -> BTreeMap<String, f64> {
    let result = instant(store, expr, t)
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    result
        .series()
        .into_iter()
        .filter_map(|(labels, points)| {
            let v = points[0]?;
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Some((l.join(","), v))
        })
        .collect()
}

async fn one(store: &Store, expr: &str, t: i64) -> f64 {
    let v = values(store, expr, t).await;
    assert_eq!(v.len(), 1, "{expr}: {v:?}");
    v.into_values().next().unwrap()
}

fn exact_quantile(values: &mut [f64], q: f64) -> f64 {
    // The sketch's rank rule: the value at rank floor(q * (n - 1)).
    values.sort_by(f64::total_cmp);
    values[(q * (values.len() - 1) as f64).floor() as usize]
}

#[tokio::test]
async fn quantile_merges_sketches_across_instances_instead_of_averaging_percentiles() {
    let store = MemoryStore::new();
    // Three instances with very different latency distributions on the same route, and one on another.
    let raw: [(&str, Vec<f64>); 3] = [
        (
            "i-1",
            (1..=2000).map(|i| 10.0 + (i % 100) as f64 * 0.5).collect(),
        ),
        ("i-2", (1..=300).map(|i| 200.0 + i as f64 * 2.0).collect()),
        ("i-3", (1..=700).map(|i| 40.0 + (i % 50) as f64).collect()),
    ];
    let mut union = Vec::new();
    let mut per_instance_p95 = Vec::new();
    for (instance, values) in &raw {
        let m = meta(
            "checkout",
            "http.server.duration",
            "ms",
            MetricKind::Histogram,
            &[("http.route", "/checkout"), ("host", instance)],
        );
        put(&store, &m, 600, values).await;
        union.extend_from_slice(values);
        per_instance_p95.push(exact_quantile(&mut values.clone(), 0.95));
    }
    let other = meta(
        "checkout",
        "http.server.duration",
        "ms",
        MetricKind::Histogram,
        &[("http.route", "/cart")],
    );
    put(&store, &other, 600, &[5000.0; 10]).await;

    let exact = exact_quantile(&mut union, 0.95);
    let average_of_p95s = per_instance_p95.iter().sum::<f64>() / 3.0;
    let t = 660;
    for expr in [
        "quantile by (http_route) (0.95, sum by (http_route) (http_server_duration_milliseconds))",
        "quantile by (http.route) (0.95, http_server_duration{job=\"checkout\"})",
        "histogram_quantile(0.95, sum by (le, http_route) (rate(http_server_duration_milliseconds_bucket[1m])))",
    ] {
        let got = values(&store, expr, t).await;
        let checkout = *got.get("http_route=/checkout").unwrap_or_else(|| panic!("{expr}: {got:?}"));
        assert!(
            (checkout - exact).abs() <= 0.01 * exact,
            "{expr}: {checkout} vs exact {exact}"
        );
        assert!(
            (checkout - average_of_p95s).abs() > 0.2 * exact,
            "{expr}: {checkout} should differ from the average of per-instance p95s {average_of_p95s}"
        );
        let cart = got["http_route=/cart"];
        assert!((cart - 5000.0).abs() <= 50.0, "{expr}: {cart}");
    }
    // The literal form: one group, the sketches of the three instances merged.
    let merged = one(
        &store,
        "quantile(0.95, sum by (http_route) (http_server_duration_milliseconds{http_route=\"/checkout\"}))",
        t,
    )
    .await;
    assert!(
        (merged - exact).abs() <= 0.01 * exact,
        "{merged} vs exact {exact}"
    );
    eprintln!(
        "p95 of 3 instances: merged sketches {merged:.2}, exact union {exact:.2}, average of per-instance p95s {average_of_p95s:.2}"
    );
    // The average of percentiles is what a per-series quantile then `avg` gives: different.
    let avg = one(
        &store,
        "avg(histogram_quantile(0.95, http_server_duration{http_route=\"/checkout\"}))",
        t,
    )
    .await;
    assert!(
        (avg - average_of_p95s).abs() <= 0.01 * average_of_p95s,
        "{avg} vs {average_of_p95s}"
    );
}

async fn counter_store() -> Store {
    let store = MemoryStore::new();
    for (route, per_minute) in [("/a", [60.0, 120.0, 180.0]), ("/b", [6.0, 12.0, 18.0])] {
        let requests = meta(
            "api",
            "http.requests",
            "{request}",
            MetricKind::Counter,
            &[("route", route)],
        );
        let errors = meta(
            "api",
            "http.errors",
            "{request}",
            MetricKind::Counter,
            &[("route", route)],
        );
        for (i, n) in per_minute.iter().enumerate() {
            put(&store, &requests, i as i64 * 60, &[*n]).await;
            put(&store, &errors, i as i64 * 60, &[n / 10.0]).await;
        }
    }
    let temp = meta("api", "temperature", "Cel", MetricKind::Gauge, &[]);
    put(&store, &temp, 0, &[20.0, 22.0]).await;
    put(&store, &temp, 60, &[18.0, 30.0]).await;
    put(&store, &temp, 120, &[25.0]).await;
    store
}

#[tokio::test]
async fn functions_match_hand_computed_results() {
    let store = counter_store().await;
    let t = 180;
    // Buckets end at t: [120,180) is the instant sample, [60,180) the 2m window.
    assert_eq!(
        one(&store, "http_requests_total{route=\"/a\"}", t).await,
        180.0
    );
    assert_eq!(
        one(&store, "rate(http_requests_total{route=\"/a\"}[2m])", t).await,
        300.0 / 120.0
    );
    assert_eq!(
        one(&store, "increase(http_requests_total{route=\"/a\"}[3m])", t).await,
        360.0
    );
    assert_eq!(
        one(
            &store,
            "increase(http_requests_total{route=\"/a\"}[2m] offset 1m)",
            t
        )
        .await,
        180.0
    );
    assert_eq!(
        one(&store, "http_requests_total{route=\"/a\"} offset 2m", t).await,
        60.0
    );
    assert_eq!(one(&store, "sum(http_requests_total)", t).await, 198.0);
    assert_eq!(one(&store, "avg(http_requests_total)", t).await, 99.0);
    assert_eq!(one(&store, "min(http_requests_total)", t).await, 18.0);
    assert_eq!(one(&store, "max(http_requests_total)", t).await, 180.0);
    assert_eq!(one(&store, "count(http_requests_total)", t).await, 2.0);
    assert_eq!(
        one(&store, "count by (job) (http_requests_total)", t).await,
        2.0
    );
    assert_eq!(
        one(&store, "sum without (route) (http_requests_total)", t).await,
        198.0
    );
    assert_eq!(
        one(&store, "quantile(0.5, http_requests_total)", t).await,
        99.0
    );
    // Gauge over time: exact min/max/avg of every observation in the window.
    assert_eq!(
        one(&store, "min_over_time(temperature_celsius[3m])", t).await,
        18.0
    );
    assert_eq!(one(&store, "max_over_time(temperature[3m])", t).await, 30.0);
    assert_eq!(one(&store, "avg_over_time(temperature[3m])", t).await, 23.0);
    assert_eq!(
        one(&store, "count_over_time(temperature[3m])", t).await,
        5.0
    );
    assert_eq!(one(&store, "sum_over_time(temperature[2m])", t).await, 73.0);
    assert_eq!(
        one(
            &store,
            "sum_over_time(http_requests_total{route=\"/b\"}[3m])",
            t
        )
        .await,
        36.0
    );
    assert_eq!(
        one(
            &store,
            "avg_over_time(http_requests_total{route=\"/b\"}[3m])",
            t
        )
        .await,
        12.0
    );
    assert_eq!(
        one(
            &store,
            "max_over_time(http_requests_total{route=\"/b\"}[3m])",
            t
        )
        .await,
        18.0
    );
    // A plain gauge sample is the mean of its bucket.
    assert_eq!(one(&store, "temperature offset 1m", t).await, 24.0);
    // Arithmetic and functions.
    assert_eq!(one(&store, "-temperature * 2 + 1", t).await, -49.0);
    assert_eq!(one(&store, "abs(temperature - 30)", t).await, 5.0);
    assert_eq!(one(&store, "2 ^ 3 ^ 2 + vector(0)", t).await, 512.0);
    assert_eq!(one(&store, "time() + vector(0)", t).await, 180.0);
    assert_eq!(one(&store, "vector(7 % 4)", t).await, 3.0);
    // Comparisons: filter, or 0/1 with `bool`.
    assert_eq!(
        values(&store, "http_requests_total > 100", t).await.len(),
        1
    );
    let b = values(&store, "http_requests_total > bool 100", t).await;
    assert_eq!(b.values().copied().collect::<Vec<_>>(), vec![1.0, 0.0]);
    // Matchers.
    assert_eq!(
        one(&store, "http_requests_total{route=~\"/(a|c)\"}", t).await,
        180.0
    );
    assert_eq!(
        one(&store, "http_requests_total{route!~\"/a\"}", t).await,
        18.0
    );
    assert_eq!(
        one(
            &store,
            "http_requests_total{route!=\"/a\", service.name=\"api\"}",
            t
        )
        .await,
        18.0
    );
    assert!(values(&store, "http_requests_total{job=\"other\"}", t)
        .await
        .is_empty());
    assert_eq!(
        values(&store, "{__name__=~\"http_.*_total\"}", t)
            .await
            .len(),
        4
    );
}

#[tokio::test]
async fn vectors_match_one_to_one_on_labels() {
    let store = counter_store().await;
    let t = 180;
    let ratio = values(
        &store,
        "sum by (route) (rate(http_errors_total[3m])) / sum by (route) (rate(http_requests_total[3m]))",
        t,
    )
    .await;
    assert_eq!(ratio.len(), 2);
    for v in ratio.values() {
        assert!((v - 0.1).abs() < 1e-12, "{ratio:?}");
    }
    let on = values(
        &store,
        "http_errors_total / on(route) http_requests_total",
        t,
    )
    .await;
    assert_eq!(
        on.keys().cloned().collect::<Vec<_>>(),
        vec!["route=/a", "route=/b"]
    );
    let ignoring = values(
        &store,
        "http_errors_total - ignoring(job) http_requests_total",
        t,
    )
    .await;
    assert_eq!(ignoring["route=/a"], 18.0 - 180.0);
    // A filter keeps the left side's value and name.
    let f = values(
        &store,
        "http_requests_total > on(route) http_errors_total * 50",
        t,
    )
    .await;
    assert_eq!(
        f.len(),
        0,
        "180 > 18*50 is false, 18 > 1.8*50 is false: {f:?}"
    );
    let f = values(
        &store,
        "http_requests_total >= on(route) http_errors_total * 10",
        t,
    )
    .await;
    assert_eq!(f.len(), 2);
    assert!(
        f.keys().all(|k| k.contains("__name__=http_requests_total")),
        "{f:?}"
    );
    // Many-to-one without grouping is an error naming the operator's position.
    let err = instant(&store, "http_requests_total / on(job) http_errors_total", t)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("one-to-one") && err.to_string().contains("at position 21"),
        "{err}"
    );
}

#[tokio::test]
async fn range_queries_evaluate_every_step() {
    let store = counter_store().await;
    let times = QueryTimes {
        start: 60,
        end: 240,
        step: 60,
        resolution: None,
    };
    let r = evaluate(
        store.as_ref(),
        "sum(http_requests_total)",
        times,
        false,
        ExprLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(r.times, vec![60, 120, 180, 240]);
    let series = r.series();
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].1,
        vec![Some(66.0), Some(132.0), Some(198.0), None]
    );
    // A 5-minute step reads 5m buckets; this store only holds 1m ones, so nothing is there.
    let five = QueryTimes {
        start: 300,
        end: 600,
        step: 300,
        resolution: None,
    };
    let r = evaluate(
        store.as_ref(),
        "sum(http_requests_total)",
        five,
        false,
        ExprLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(r.resolution, Resolution::FiveMinutes);
    // Unless the expression's windows force 1m.
    let r = evaluate(
        store.as_ref(),
        "sum(increase(http_requests_total[1m]))",
        five,
        false,
        ExprLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(r.resolution, Resolution::OneMinute);
}

#[tokio::test]
async fn type_errors_and_limits_name_the_position() {
    let store = counter_store().await;
    for (expr, position, words) in [
        ("rate(http_requests_total)", 6, "range vector"),
        ("sum(rate(x[90s]))", 11, "whole number of minutes"),
        ("http_requests_total[5m]", 20, "only an argument"),
        (
            "histogram_quantile(0.9, http_requests_total)",
            25,
            "plain numbers",
        ),
        ("sum(1)", 1, "not a number"),
        ("1 > 2", 3, "need `bool`"),
        ("abs(http_requests_total, 1)", 1, "takes 1 argument"),
    ] {
        let err = instant(&store, expr, 180).await.unwrap_err();
        let EvalError::Expr(e) = &err else {
            panic!("{expr}: {err}")
        };
        assert_eq!(e.position, position, "{expr}: {err}");
        assert!(e.message.contains(words), "{expr}: {err}");
    }
    let limits = ExprLimits {
        max_steps: 10,
        max_series: 1,
        ..ExprLimits::default()
    };
    let err = evaluate(
        store.as_ref(),
        "http_requests_total",
        QueryTimes {
            start: 0,
            end: 60,
            step: 60,
            resolution: None,
        },
        false,
        limits,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("more than 1 series"), "{err}");
    let err = evaluate(
        store.as_ref(),
        "vector(1)",
        QueryTimes {
            start: 0,
            end: 6000,
            step: 60,
            resolution: None,
        },
        false,
        limits,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("at most 10"), "{err}");
}
