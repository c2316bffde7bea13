//! RED metrics and the service graph from hand-built traces: the numbers a dashboard shows, edges
//! paired within one batch and across batches, and virtual nodes for peers that never report.

#[path = "traces_support/builders.rs"]
mod builders;

use builders::*;
use flowscope_core::model::{MetricKind, Resolution};
use flowscope_core::query::{QueryService, Range};
use flowscope_core::spans::SpanKind;
use flowscope_core::traces::TraceConfig;

fn hour() -> Range {
    Range {
        from: t0() as i64,
        to: t0() as i64 + 3600,
        resolution: Resolution::OneMinute,
    }
}

#[tokio::test]
async fn red_metrics_count_rate_errors_and_latency_per_service_and_operation() {
    let s = setup(TraceConfig::default());
    let slow = checkout(1, 0, 100, true);
    let fast = checkout(2, 5_000, 300, false);
    let outcome = s
        .processor
        .process(
            "shard-0",
            &records(1, vec![slow.web, slow.pay, fast.web, fast.pay]),
        )
        .await;
    assert_eq!(outcome.retry_from, None);
    let query = QueryService::new(s.store.clone());

    // Service level: web served two requests (its outgoing call is not one of its requests).
    let duration = query
        .metric_history("web", "red.duration", hour())
        .await
        .unwrap();
    assert_eq!(duration.kind, MetricKind::Histogram);
    assert_eq!(duration.unit, "ms");
    let [bucket] = duration.buckets.as_slice() else {
        panic!("one 1m bucket expected, got {:?}", duration.buckets);
    };
    assert_eq!(bucket.start, t0() as i64);
    assert_eq!(
        (bucket.count, bucket.sum, bucket.min, bucket.max),
        (2, 400.0, Some(100.0), Some(300.0))
    );
    let p50 = bucket.p50.unwrap();
    assert!((p50 - 100.0).abs() <= 1.0, "p50 {p50}");
    let requests = query
        .metric_history("web", "red.requests", hour())
        .await
        .unwrap();
    assert_eq!(requests.buckets[0].sum, 2.0);
    assert!((requests.buckets[0].rate - 2.0 / 60.0).abs() < 1e-12);

    // Only pay failed (an HTTP 503), once; web has no error series at all.
    let pay_errors = query
        .metric_history("pay", "red.errors", hour())
        .await
        .unwrap();
    assert_eq!(pay_errors.buckets[0].sum, 1.0);
    let web_metrics: Vec<String> = query
        .metrics("web")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(
        !web_metrics.contains(&"red.errors".to_string()),
        "{web_metrics:?}"
    );

    // Operation level: pay's database call, by name and kind.
    let pay_metrics = query.metrics("pay").await.unwrap();
    let per_operation = pay_metrics
        .iter()
        .find(|m| m.name == "red.operation.duration")
        .unwrap();
    let insert = per_operation
        .series
        .iter()
        .find(|s| s.attributes.get("operation").map(String::as_str) == Some("INSERT payments"))
        .unwrap();
    assert_eq!(insert.attributes["span.kind"], "client");
    let history = query
        .series_history(insert.id.parse().unwrap(), hour())
        .await
        .unwrap();
    assert_eq!(history.buckets[0].count, 2);
    assert_eq!(history.buckets[0].avg, Some(30.0));

    // The same buckets at 5m and 1h.
    for resolution in [Resolution::FiveMinutes, Resolution::OneHour] {
        let range = Range {
            resolution,
            ..hour()
        };
        let coarse = query
            .metric_history("web", "red.duration", range)
            .await
            .unwrap();
        assert_eq!(coarse.buckets.iter().map(|b| b.count).sum::<u64>(), 2);
    }
}

#[tokio::test]
async fn an_edge_pairs_within_one_batch_with_count_errors_and_client_latency() {
    let s = setup(TraceConfig::default());
    let trace = checkout(1, 0, 100, true);
    // Both halves in one record (order inside it does not matter: the server comes first).
    let mut one_record = trace.pay.clone();
    one_record.extend(trace.web.clone());
    let outcome = s
        .processor
        .process("shard-0", &records(1, vec![one_record]))
        .await;
    assert_eq!(outcome.counters.fold.edges_paired, 1);

    let graph = graph(s.store.clone(), s.traces.clone()).await;
    let call = edge(&graph, "web", "pay").expect("web → pay");
    assert_eq!(call["kind"], "call");
    assert_eq!(call["count"], 1);
    assert_eq!(call["errors"], 1);
    assert_eq!(call["error_rate"], 1.0);
    let p50 = call["p50_ms"].as_f64().unwrap();
    assert!((p50 - 50.0).abs() <= 0.5, "client span is 50 ms, p50 {p50}");
    let web = node(&graph, "web").unwrap();
    assert_eq!(
        (web["kind"].as_str(), web["virtual"].as_bool()),
        (Some("service"), Some(false))
    );
    assert_eq!(web["count"], 1);
    assert_eq!(node(&graph, "pay").unwrap()["errors"], 1);
}

#[tokio::test]
async fn halves_arriving_in_different_batches_up_to_30_seconds_apart_still_pair() {
    let s = setup(TraceConfig::default());
    let trace = checkout(1, 0, 100, false);
    // pay exports first; 25 s of other traffic pass on the shard before web's spans arrive.
    let first = s
        .processor
        .process("shard-0", &records(1, vec![trace.pay]))
        .await;
    assert_eq!(first.counters.fold.edges_paired, 0);
    assert!(edge(
        &graph(s.store.clone(), s.traces.clone()).await,
        "web",
        "pay"
    )
    .is_none());

    let other = span(
        9,
        91,
        None,
        "web",
        "GET /health",
        SpanKind::Server,
        (25_000, 1),
    );
    let second = s
        .processor
        .process("shard-0", &records(2, vec![vec![other], trace.web]))
        .await;
    assert_eq!(second.retry_from, None);
    assert_eq!(second.counters.fold.edges_paired, 1);
    let graph = graph(s.store.clone(), s.traces.clone()).await;
    assert_eq!(edge(&graph, "web", "pay").unwrap()["count"], 1);
}

#[tokio::test]
async fn a_half_whose_partner_comes_after_the_window_is_not_paired() {
    let s = setup(TraceConfig::default());
    let trace = checkout(1, 0, 100, false);
    s.processor
        .process("shard-0", &records(1, vec![trace.pay]))
        .await;
    let late = span(
        9,
        91,
        None,
        "web",
        "GET /health",
        SpanKind::Server,
        (40_000, 1),
    );
    let expired = s
        .processor
        .process("shard-0", &records(2, vec![vec![late]]))
        .await;
    // The server half had no peer to name: dropped. (The database call becomes a virtual edge.)
    assert_eq!(expired.counters.fold.halves_unpaired, 1);
    let after = s
        .processor
        .process("shard-0", &records(3, vec![trace.web]))
        .await;
    assert_eq!(after.counters.fold.edges_paired, 0);
    assert!(edge(
        &graph(s.store.clone(), s.traces.clone()).await,
        "web",
        "pay"
    )
    .is_none());
}

#[tokio::test]
async fn a_database_that_never_reports_becomes_a_virtual_node_after_the_window() {
    let s = setup(TraceConfig::default());
    let trace = checkout(1, 0, 100, false);
    s.processor
        .process("shard-0", &records(1, vec![trace.web, trace.pay]))
        .await;
    let graph_before = graph(s.store.clone(), s.traces.clone()).await;
    assert!(
        edge(&graph_before, "pay", "postgresql").is_none(),
        "still inside the window"
    );

    // More traffic on the shard, 31 s later: the database call's window has passed.
    let later = span(
        9,
        91,
        None,
        "web",
        "GET /health",
        SpanKind::Server,
        (31_000, 1),
    );
    let outcome = s
        .processor
        .process("shard-0", &records(2, vec![vec![later]]))
        .await;
    assert_eq!(outcome.counters.fold.edges_virtual, 1);

    let graph = graph(s.store.clone(), s.traces.clone()).await;
    let db_call = edge(&graph, "pay", "postgresql").expect("pay → postgresql");
    assert_eq!(db_call["count"], 1);
    let p50 = db_call["p50_ms"].as_f64().unwrap();
    assert!((p50 - 30.0).abs() <= 0.3, "p50 {p50}");
    let db = node(&graph, "postgresql").expect("virtual node");
    assert_eq!(db["kind"], "database");
    assert_eq!(db["virtual"], true);
    assert_eq!(
        db["count"], 1,
        "a virtual node's requests are the calls into it"
    );
    // The edge is stored under the caller with the callee's kind, like any series.
    let query = QueryService::new(s.store.clone());
    let edges = query.metrics("pay").await.unwrap();
    let series = &edges
        .iter()
        .find(|m| m.name == "graph.edge.duration")
        .unwrap()
        .series[0];
    assert_eq!(series.attributes["server"], "postgresql");
    assert_eq!(series.attributes["server.kind"], "database");
}

#[tokio::test]
async fn producer_and_consumer_make_a_messaging_edge() {
    let s = setup(TraceConfig::default());
    let producer = with(
        span(
            1,
            2,
            Some(1),
            "shop",
            "orders publish",
            SpanKind::Producer,
            (0, 5),
        ),
        "messaging.system",
        "kafka",
    );
    let consumer = span(
        1,
        3,
        Some(2),
        "mailer",
        "orders process",
        SpanKind::Consumer,
        (200, 40),
    );
    let root = span(1, 1, None, "shop", "POST /order", SpanKind::Server, (0, 20));
    s.processor
        .process(
            "shard-0",
            &records(1, vec![vec![root, producer], vec![consumer]]),
        )
        .await;
    let graph = graph(s.store.clone(), s.traces.clone()).await;
    let messaging = edge(&graph, "shop", "mailer").expect("shop → mailer");
    assert_eq!(messaging["kind"], "messaging");
    let p50 = messaging["p50_ms"].as_f64().unwrap();
    assert!(
        (p50 - 200.0).abs() <= 2.0,
        "publish to consume is 200 ms, p50 {p50}"
    );
    assert!(
        edge(&graph, "shop", "kafka").is_none(),
        "the consumer reported: no virtual broker"
    );
}
