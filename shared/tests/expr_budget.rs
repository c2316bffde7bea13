//! The memory budget of expression queries (`--query-max-samples`, issue 15): a query whose selected
//! series × evaluation times, or whose loaded buckets, exceed the budget is refused with an error
//! naming the limit and what to narrow, before it holds that memory; a query under it answers.

use flowscope_core::domain::stats::BucketStats;
use flowscope_core::expr::{evaluate, EvalError, ExprLimits, QueryTimes};
use flowscope_core::model::{MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{BucketDelta, BucketKey, BucketStore, SequenceNumber, SeriesCatalog};
use flowscope_core::testing::MemoryStore;

/// `series` histogram series `lat` of service `api`, one 1m bucket per minute of `minutes`.
async fn store(series: usize, minutes: i64) -> std::sync::Arc<MemoryStore> {
    let store = MemoryStore::new();
    for i in 0..series {
        let key = SeriesKey {
            service: "api".into(),
            metric: "lat".into(),
            attributes: [("host".to_string(), format!("h{i}"))]
                .into_iter()
                .collect(),
        };
        let meta = SeriesMeta {
            id: key.id(),
            key,
            kind: MetricKind::Histogram,
            unit: String::new(),
            last_seen_unix_s: 0,
        };
        store
            .upsert_series(std::slice::from_ref(&meta))
            .await
            .unwrap();
        for m in 0..minutes {
            let mut stats = BucketStats::new();
            stats.observe(1.0 + m as f64);
            let seq = SequenceNumber::from_u128((i as u128) << 32 | m as u128);
            store
                .apply_bucket(&BucketDelta {
                    key: BucketKey {
                        series: meta.id,
                        resolution: Resolution::OneMinute,
                        start_unix_s: m * 60,
                    },
                    shard_id: format!("s{i}-{m}"),
                    first_seq: seq.clone(),
                    last_seq: seq,
                    stats,
                    expires_at_unix_s: i64::MAX,
                })
                .await
                .unwrap();
        }
    }
    store
}

fn limits(max_samples: usize) -> ExprLimits {
    ExprLimits {
        max_samples,
        ..ExprLimits::default()
    }
}

fn range(start: i64, end: i64) -> QueryTimes {
    QueryTimes {
        start,
        end,
        step: 60,
        resolution: Some(Resolution::OneMinute),
    }
}

#[tokio::test]
async fn a_query_over_the_sample_budget_is_refused_and_one_under_answers() {
    // 4 series × 30 minutes: a range query over minutes 1..=30 at 1m has 30 evaluation times, so
    // 4 × 30 = 120 points and 4 × 30 buckets = 240 samples.
    let store = store(4, 30).await;
    let expr = "sum(lat)";
    let ok = evaluate(store.as_ref(), expr, range(60, 1800), false, limits(240))
        .await
        .expect("240 samples fit a budget of 240");
    let points: usize = ok
        .series()
        .iter()
        .map(|(_, p)| p.iter().flatten().count())
        .sum();
    assert_eq!(points, 30);

    let err = evaluate(store.as_ref(), expr, range(60, 1800), false, limits(239))
        .await
        .unwrap_err();
    let EvalError::TooManySamples(e) = &err else {
        panic!("expected the sample budget, got {err}")
    };
    // The selector `lat` starts at character 5.
    assert_eq!(e.position, 5, "{err}");
    let text = err.to_string();
    for words in [
        "more than 239 samples",
        "--query-max-samples",
        "narrow the selectors",
        "larger step",
    ] {
        assert!(text.contains(words), "{text:?} lacks {words:?}");
    }

    // Estimated before loading: 4 series × 30 times = 120 > 100 is refused by the estimate.
    let err = evaluate(store.as_ref(), expr, range(60, 1800), false, limits(100))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("4 series × 30 evaluation times"),
        "{err}"
    );

    // Narrowed as the message says (one host), the same range answers under the same budget.
    let narrowed = evaluate(
        store.as_ref(),
        "sum(lat{host=\"h1\"})",
        range(60, 1800),
        false,
        limits(100),
    )
    .await
    .expect("one series fits");
    assert_eq!(narrowed.series().len(), 1);
}

#[tokio::test]
async fn loaded_buckets_are_counted_as_they_load() {
    // An instant query holds one point per series, but `[30m]` loads 30 buckets per series: the
    // estimate (3 points) passes and the buckets, counted as each series loads, do not.
    let store = store(3, 30).await;
    let times = QueryTimes {
        start: 1800,
        end: 1800,
        step: 60,
        resolution: Some(Resolution::OneMinute),
    };
    let expr = "sum(sum_over_time(lat_count[30m]))";
    let ok = evaluate(store.as_ref(), expr, times, true, limits(93))
        .await
        .expect("3 points + 90 buckets fit 93");
    assert_eq!(ok.series()[0].1, vec![Some(90.0)]);
    let err = evaluate(store.as_ref(), expr, times, true, limits(60))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EvalError::TooManySamples(_)) && err.to_string().contains("buckets loaded"),
        "{err}"
    );
}

#[tokio::test]
async fn the_default_budget_refuses_the_query_that_peaked_at_3_8_gb() {
    // docs/query-language.md: 1000 series × 1440 steps of `rate(h_bucket[5m])` held 1.44M merged
    // sketches. The estimate (series × steps) refuses it before a bucket is read; a store with the
    // series but no buckets is enough to show it.
    let store = store(1000, 0).await;
    let err = evaluate(
        store.as_ref(),
        "histogram_quantile(0.99, sum(rate(lat_bucket[5m])))",
        QueryTimes {
            start: 86_400,
            end: 2 * 86_400 - 60,
            step: 60,
            resolution: None,
        },
        false,
        ExprLimits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EvalError::TooManySamples(_)), "{err}");
    assert!(
        err.to_string()
            .contains("1000 series × 1440 evaluation times"),
        "{err}"
    );
}

#[tokio::test]
async fn samples_that_keep_their_sketch_count_more_and_the_answer_is_unchanged() {
    use flowscope_core::expr::SKETCH_SAMPLE_WEIGHT;
    // 4 histogram series × 30 minutes, as above: `sum(lat)` reads no sketch, so its 120 points and
    // 120 buckets count 1 each; under `quantile` the same selector keeps its sketches and each
    // sample counts `SKETCH_SAMPLE_WEIGHT`.
    let store = store(4, 30).await;
    let expr = "quantile(0.5, lat)";
    let kept = 240 * SKETCH_SAMPLE_WEIGHT;
    let ok = evaluate(store.as_ref(), expr, range(60, 1800), false, limits(kept))
        .await
        .expect("240 samples keeping their sketches fit 240 × the weight");
    let err = evaluate(
        store.as_ref(),
        expr,
        range(60, 1800),
        false,
        limits(kept - 1),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EvalError::TooManySamples(_)), "{err}");
    // The sketch answers: at minute m every series observed m, so the median is m (within the
    // sketch's 1% accuracy), which count/sum/min/max alone could not give for a merged sketch.
    let median = &ok.series()[0].1;
    assert_eq!(median.len(), 30);
    for (i, v) in median.iter().enumerate() {
        let want = i as f64 + 1.0;
        let got = v.expect("a point per minute");
        assert!(
            (got - want).abs() <= want * 0.02,
            "minute {i}: {got} vs {want}"
        );
    }
    // Without a sketch reader the stripped buckets answer the same sums under the unweighted count.
    let sums = evaluate(
        store.as_ref(),
        "sum(lat)",
        range(60, 1800),
        false,
        limits(240),
    )
    .await
    .expect("fits unweighted");
    assert_eq!(sums.series()[0].1.len(), 30);
}
