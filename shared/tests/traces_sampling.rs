//! Sampling (quota per service and minute, then a ratio, errors always kept — also when the error
//! arrives late), the trace API with its critical path, and live trace events.

#[path = "traces_support/builders.rs"]
mod builders;

use std::collections::BTreeSet;

use builders::*;
use flowscope_core::embedded::RedbTraceStore;
use flowscope_core::model::Resolution;
use flowscope_core::ports::TraceStore;
use flowscope_core::query::{QueryService, Range};
use flowscope_core::spans::{hex, Span, SpanKind};
use flowscope_core::traces::{SamplingPolicy, TraceConfig};

fn policy(per_minute: u32, ratio: f64) -> TraceConfig {
    TraceConfig {
        sampling: SamplingPolicy { per_minute, ratio },
        ..TraceConfig::default()
    }
}

/// A one-span trace of `web` starting `start_ms` after t0.
fn request(trace: u32, start_ms: u64) -> Span {
    span(
        trace,
        trace * 10 + 1,
        None,
        "web",
        "GET /",
        SpanKind::Server,
        (start_ms, 5),
    )
}

async fn listed(traces: &RedbTraceStore, service: &str) -> BTreeSet<String> {
    traces
        .recent_traces(service, 200)
        .await
        .unwrap()
        .iter()
        .map(|t| hex(&t.trace_id))
        .collect()
}

#[tokio::test]
async fn the_first_ten_per_minute_are_kept_then_only_errors_when_the_ratio_is_zero() {
    let s = setup(policy(10, 0.0));
    // 25 traces in the first minute, 3 of them (late ones) failing; 4 more in the next minute.
    let mut spans: Vec<Vec<Span>> = (1..=25)
        .map(|n| {
            let request = request(n, u64::from(n) * 100);
            vec![if n >= 20 && n % 2 == 0 {
                failed(request)
            } else {
                request
            }]
        })
        .collect();
    spans.extend((26..=29).map(|n| vec![request(n, 60_000 + u64::from(n))]));
    let outcome = s.processor.process("shard-0", &records(1, spans)).await;
    assert_eq!(outcome.retry_from, None);

    let expected: BTreeSet<String> = (1..=10)
        .chain([20, 22, 24])
        .chain(26..=29)
        .map(|n| hex(&trace_id(n)))
        .collect();
    assert_eq!(listed(&s.traces, "web").await, expected);
    assert_eq!(outcome.counters.fold.traces_kept, 17);
    assert_eq!(outcome.counters.fold.traces_dropped, 12);
    // Sampling decides storage only: RED counts every request.
    let range = Range {
        from: t0() as i64,
        to: t0() as i64 + 3600,
        resolution: Resolution::OneHour,
    };
    let requests = QueryService::new(s.store.clone())
        .metric_history("web", "red.requests", range)
        .await
        .unwrap();
    assert_eq!(requests.buckets[0].sum, 29.0);
}

#[tokio::test]
async fn beyond_the_quota_the_ratio_keeps_the_same_traces_on_every_replay() {
    let spans: Vec<Vec<Span>> = (1..=400).map(|n| vec![request(n, u64::from(n))]).collect();
    let mut kept_sets = Vec::new();
    for _ in 0..2 {
        let s = setup(policy(0, 0.5));
        s.processor
            .process("shard-0", &records(1, spans.clone()))
            .await;
        kept_sets.push(listed(&s.traces, "web").await);
    }
    assert_eq!(kept_sets[0], kept_sets[1]);
    let kept = kept_sets[0].len();
    assert!(
        (150..=250).contains(&kept),
        "kept {kept} of 400 at ratio 0.5"
    );
}

#[tokio::test]
async fn an_error_arriving_after_the_trace_was_dropped_keeps_the_whole_trace() {
    let s = setup(policy(0, 0.0));
    let trace = checkout(1, 0, 100, true);
    let id = hex(&trace_id(1));
    let first = s
        .processor
        .process("shard-0", &records(1, vec![trace.web]))
        .await;
    assert_eq!(first.counters.fold.traces_dropped, 1);
    assert!(
        first.trace_events.is_empty(),
        "dropped traces are not shown live"
    );
    let (status, _) = api_get(
        s.store.clone(),
        s.traces.clone(),
        &format!("/api/traces/{id}"),
        "",
    )
    .await;
    assert_eq!(status, 404);

    let second = s
        .processor
        .process("shard-0", &records(2, vec![trace.pay]))
        .await;
    assert_eq!(second.counters.fold.traces_promoted, 1);
    let (status, body) = api_get(
        s.store.clone(),
        s.traces.clone(),
        &format!("/api/traces/{id}"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // web's spans, held while the trace was dropped, are part of it.
    assert_eq!(body["spans"].as_array().unwrap().len(), 4);
    assert_eq!(body["error"], true);
    assert_eq!(listed(&s.traces, "web").await, BTreeSet::from([id]));
}

#[tokio::test]
async fn without_holding_dropped_spans_a_late_error_keeps_only_what_follows() {
    let s = setup(TraceConfig {
        hold_dropped_spans: false,
        ..policy(0, 0.0)
    });
    let trace = checkout(1, 0, 100, true);
    s.processor
        .process("shard-0", &records(1, vec![trace.web]))
        .await;
    s.processor
        .process("shard-0", &records(2, vec![trace.pay]))
        .await;
    let spans = s.traces.get_trace(&trace_id(1)).await.unwrap().unwrap();
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["pay"]));
}

#[tokio::test]
async fn the_trace_api_marks_the_critical_path_through_parallel_children() {
    let s = setup(TraceConfig::default());
    // root 0..100 ms: cache (5..20) and db (5..60) run in parallel, then publish (60..90); sql
    // (10..55) inside db. The parent waited for db, not for the cache call that ended earlier.
    let spans = vec![
        span(1, 1, None, "web", "GET /orders", SpanKind::Server, (0, 100)),
        span(1, 2, Some(1), "web", "cache get", SpanKind::Client, (5, 15)),
        span(1, 3, Some(1), "web", "db query", SpanKind::Client, (5, 55)),
        span(
            1,
            4,
            Some(1),
            "web",
            "publish",
            SpanKind::Producer,
            (60, 30),
        ),
        span(1, 5, Some(3), "web", "sql", SpanKind::Internal, (10, 45)),
    ];
    s.processor
        .process("shard-0", &records(1, vec![spans]))
        .await;
    let id = hex(&trace_id(1));
    let (status, body) = api_get(
        s.store.clone(),
        s.traces.clone(),
        &format!("/api/traces/{id}"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<(String, u64, bool, f64)> = body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["depth"].as_u64().unwrap(),
                s["critical"].as_bool().unwrap(),
                s["critical_ms"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("GET /orders", 0, true, 15.0), // 0..5 and 90..100
        ("cache get", 1, false, 0.0),
        ("db query", 1, true, 10.0), // 5..10 and 55..60
        ("sql", 2, true, 45.0),
        ("publish", 1, true, 30.0),
    ];
    let expected: Vec<(String, u64, bool, f64)> = expected
        .iter()
        .map(|(n, d, c, ms)| (n.to_string(), *d, *c, *ms))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(body["critical_path"].as_array().unwrap().len(), 4);
    assert_eq!(body["duration_ms"], 100.0);
    assert_eq!(body["root_name"], "GET /orders");

    let (status, _) = api_get(s.store.clone(), s.traces.clone(), "/api/traces/not-hex", "").await;
    assert_eq!(status, 400);
    let (status, _) = api_get(
        s.store.clone(),
        s.traces.clone(),
        &format!("/api/traces/{}", hex(&trace_id(2))),
        "",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn recent_traces_of_a_service_come_newest_first_up_to_the_limit() {
    let s = setup(TraceConfig::default());
    let spans: Vec<Vec<Span>> = (1..=5)
        .map(|n| vec![request(n, u64::from(n) * 1_000)])
        .collect();
    s.processor.process("shard-0", &records(1, spans)).await;
    let (status, body) = api_get(
        s.store.clone(),
        s.traces.clone(),
        "/api/services/web/traces",
        "limit=3",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    let newest: Vec<String> = [5, 4, 3].map(|n| hex(&trace_id(n))).to_vec();
    assert_eq!(ids, newest);
    assert_eq!(body["traces"][0]["root_service"], "web");
    assert_eq!(body["traces"][0]["duration_ms"], 5.0);
    let (status, _) = api_get(
        s.store.clone(),
        s.traces.clone(),
        "/api/services/web/traces",
        "limit=0",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn kept_traces_produce_live_events_with_hops_and_timings() {
    let s = setup(policy(1, 0.0));
    let kept = checkout(1, 0, 100, false);
    let dropped = checkout(2, 1_000, 100, false);
    let outcome = s
        .processor
        .process(
            "shard-0",
            &records(1, vec![kept.pay, kept.web, dropped.pay, dropped.web]),
        )
        .await;
    let [event] = outcome.trace_events.as_slice() else {
        panic!("one kept trace, got {:?}", outcome.trace_events);
    };
    assert_eq!(event.trace_id, hex(&trace_id(1)));
    assert_eq!(event.root_service, "web");
    assert_eq!(event.root_name.as_deref(), Some("GET /checkout"));
    assert_eq!(event.duration_ms, 100.0);
    assert_eq!(event.reason.as_deref(), Some("quota"));
    let [hop] = event.hops.as_slice() else {
        panic!("one hop, got {:?}", event.hops);
    };
    assert_eq!(
        (hop.from.as_str(), hop.to.as_str(), hop.kind.as_str()),
        ("web", "pay", "call")
    );
    assert_eq!(
        (hop.offset_ms, hop.duration_ms, hop.error),
        (10.0, 50.0, false)
    );
    let json = serde_json::to_value(event).unwrap();
    assert_eq!(json["hops"][0]["to_kind"], "service");
}
