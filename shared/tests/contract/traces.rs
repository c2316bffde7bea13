//! The [`TraceStore`] contract: kept vs provisional traces, idempotent span writes, the per-service
//! list newest first, and expired traces reading as absent. Trace ids are random and services carry
//! a random suffix, so the suite runs against a shared table that is not empty.

use std::sync::OnceLock;

use flowscope_core::model::Attributes;
use flowscope_core::ports::{TraceStore, TraceSummary, TraceWrite};
use flowscope_core::spans::{Span, SpanKind, SpanStatus};

use super::{far_future, now_unix_s, unique};

const MS: u64 = 1_000_000;

/// Everything a [`TraceStore`] must do.
pub async fn trace_store_contract<S: TraceStore>(store: &S) {
    provisional_spans_stay_hidden_until_the_trace_is_kept(store).await;
    writing_the_same_spans_again_changes_nothing(store).await;
    services_list_their_traces_newest_first_and_an_earlier_span_moves_a_trace_back(store).await;
    expired_traces_read_as_absent(store).await;
}

fn random_trace_id() -> [u8; 16] {
    rand::random()
}

/// The base every span starts from: an hour before the suite's first span, in whole seconds,
/// computed once. Recomputing it per span let a second boundary between two calls make the
/// "earlier" span of a trace later than the others.
fn base_unix_nano() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| u64::try_from(now_unix_s() - 3600).unwrap_or(0) * 1_000 * MS)
}

/// A span starting `start_ms` after [`base_unix_nano`], lasting `duration_ms`.
fn span(
    trace_id: [u8; 16],
    id: u64,
    parent: Option<u64>,
    service: &str,
    name: &str,
    (start_ms, duration_ms): (u64, u64),
) -> Span {
    let base = base_unix_nano();
    Span {
        trace_id,
        span_id: id.to_be_bytes(),
        parent_span_id: parent.map(u64::to_be_bytes),
        service: service.to_string(),
        name: name.to_string(),
        kind: if parent.is_none() {
            SpanKind::Server
        } else {
            SpanKind::Client
        },
        start_unix_nano: base + start_ms * MS,
        end_unix_nano: base + (start_ms + duration_ms) * MS,
        status: SpanStatus::Unset,
        attributes: Attributes::new(),
    }
}

fn write(trace_id: [u8; 16], spans: Vec<Span>, kept: bool, expires_at: i64) -> TraceWrite {
    TraceWrite {
        trace_id,
        spans,
        kept,
        expires_at_unix_s: expires_at,
    }
}

/// A checkout: `web` serves it and calls `pay`, whose charge fails.
fn checkout(trace_id: [u8; 16], web: &str, pay: &str) -> (Vec<Span>, Vec<Span>) {
    let web_spans = vec![
        span(trace_id, 1, None, web, "GET /checkout", (0, 100)),
        span(trace_id, 2, Some(1), web, "call pay", (10, 80)),
    ];
    let mut charge = span(trace_id, 3, Some(2), pay, "charge", (20, 60));
    charge.status = SpanStatus::Error;
    let pay_spans = vec![charge, span(trace_id, 4, Some(3), pay, "SELECT", (30, 10))];
    (web_spans, pay_spans)
}

fn ids(list: &[TraceSummary]) -> Vec<[u8; 16]> {
    list.iter().map(|t| t.trace_id).collect()
}

/// Provisional spans are neither readable nor listed; a kept write shows every span of the trace,
/// the provisional ones included, ordered by start; a later provisional write does not un-keep.
pub async fn provisional_spans_stay_hidden_until_the_trace_is_kept<S: TraceStore>(store: &S) {
    let (web, pay) = (unique("web"), unique("pay"));
    let trace = random_trace_id();
    let (web_spans, pay_spans) = checkout(trace, &web, &pay);
    store
        .write(&[write(trace, web_spans.clone(), false, far_future())])
        .await
        .expect("provisional write");
    assert_eq!(
        store.get_trace(&trace).await.expect("get_trace"),
        None,
        "a provisional trace is not readable"
    );
    assert!(
        store
            .recent_traces(&web, 10)
            .await
            .expect("list")
            .is_empty(),
        "a provisional trace is not listed"
    );

    store
        .write(&[write(trace, pay_spans.clone(), true, far_future())])
        .await
        .expect("kept write");
    let spans = store
        .get_trace(&trace)
        .await
        .expect("get_trace")
        .expect("a kept trace is readable");
    assert_eq!(spans.len(), 4, "earlier provisional spans show once kept");
    assert!(
        spans
            .windows(2)
            .all(|w| w[0].start_unix_nano <= w[1].start_unix_nano),
        "spans come ordered by start"
    );
    for written in web_spans.iter().chain(&pay_spans) {
        assert!(spans.contains(written), "{written:?} reads back as written");
    }
    for service in [&web, &pay] {
        assert_eq!(
            ids(&store.recent_traces(service, 10).await.expect("list")),
            [trace],
            "a kept trace is listed under each of its services"
        );
    }

    store
        .write(&[write(trace, vec![], false, far_future())])
        .await
        .expect("later provisional write");
    assert!(
        store.get_trace(&trace).await.expect("get_trace").is_some(),
        "kept is sticky"
    );

    // A promotion may come before any span: spans written after it are kept too.
    let promoted = random_trace_id();
    store
        .write(&[write(promoted, vec![], true, far_future())])
        .await
        .expect("promotion of an unknown trace");
    let root = span(promoted, 1, None, &web, "GET /late", (0, 5));
    store
        .write(&[write(promoted, vec![root.clone()], false, far_future())])
        .await
        .expect("spans after the promotion");
    assert_eq!(
        store.get_trace(&promoted).await.expect("get_trace"),
        Some(vec![root])
    );
}

/// Repeating writes (in one call or across calls, or a span twice in one write) stores each span
/// once and leaves the summary as it was; the summary describes the trace.
pub async fn writing_the_same_spans_again_changes_nothing<S: TraceStore>(store: &S) {
    let (web, pay) = (unique("web"), unique("pay"));
    let trace = random_trace_id();
    let (web_spans, pay_spans) = checkout(trace, &web, &pay);
    let mut spans = web_spans.clone();
    spans.extend(pay_spans.clone());
    spans.push(pay_spans[1].clone());
    let once = write(trace, spans, true, far_future());
    store
        .write(std::slice::from_ref(&once))
        .await
        .expect("first write");
    let before = store.recent_traces(&pay, 10).await.expect("list");
    store
        .write(&[once.clone(), once])
        .await
        .expect("repeated writes");
    let after = store.recent_traces(&pay, 10).await.expect("list");
    assert_eq!(before, after, "a replay changes nothing");
    let [summary] = after.as_slice() else {
        panic!("one trace listed, got {after:?}");
    };
    assert_eq!(summary.trace_id, trace);
    assert_eq!(summary.span_count, 4, "each span counts once");
    assert_eq!(summary.start_unix_nano, web_spans[0].start_unix_nano);
    assert_eq!(summary.duration_nanos, 100 * MS);
    assert!(summary.error, "the failed charge marks the trace");
    assert_eq!(summary.root_service.as_deref(), Some(web.as_str()));
    assert_eq!(summary.root_name.as_deref(), Some("GET /checkout"));
    let mut services = vec![web.clone(), pay.clone()];
    services.sort();
    assert_eq!(summary.services, services);
    assert_eq!(
        store
            .get_trace(&trace)
            .await
            .expect("get_trace")
            .expect("kept")
            .len(),
        4
    );

    // Spans of another trace in a write are not stored under this one.
    let stray = span(random_trace_id(), 9, None, &web, "stray", (0, 1));
    store
        .write(&[write(trace, vec![stray], true, far_future())])
        .await
        .expect("write with a stray span");
    assert_eq!(
        store.recent_traces(&pay, 10).await.expect("list"),
        after,
        "a span of another trace changes nothing"
    );
}

/// Each service lists its kept traces newest start first, at most `limit`; a late span that starts
/// earlier moves its trace back in the list and lists it under the new span's service too.
pub async fn services_list_their_traces_newest_first_and_an_earlier_span_moves_a_trace_back<
    S: TraceStore,
>(
    store: &S,
) {
    let (web, pay) = (unique("web"), unique("pay"));
    let traces: Vec<[u8; 16]> = (0..4).map(|_| random_trace_id()).collect();
    for (n, trace) in (1u64..).zip(&traces) {
        let root = span(*trace, n * 10, None, &web, "GET /", (n * 1_000, 5));
        store
            .write(&[write(*trace, vec![root], true, far_future())])
            .await
            .expect("write");
    }
    assert_eq!(
        ids(&store.recent_traces(&web, 3).await.expect("list")),
        [traces[3], traces[2], traces[1]],
        "newest first, at most `limit`"
    );
    assert!(store.recent_traces(&pay, 3).await.expect("list").is_empty());
    assert!(store.recent_traces(&web, 0).await.expect("list").is_empty());

    let early = span(traces[3], 49, Some(40), &pay, "charge", (0, 1));
    store
        .write(&[write(traces[3], vec![early], true, far_future())])
        .await
        .expect("late early span");
    assert_eq!(
        ids(&store.recent_traces(&web, 10).await.expect("list")),
        [traces[2], traces[1], traces[0], traces[3]],
        "the trace moved back, and is listed once"
    );
    assert_eq!(
        ids(&store.recent_traces(&pay, 10).await.expect("list")),
        [traces[3]]
    );
}

/// A kept trace past its expiry reads as absent and is not listed, before any purge.
pub async fn expired_traces_read_as_absent<S: TraceStore>(store: &S) {
    let web = unique("web");
    let (expired, live) = (random_trace_id(), random_trace_id());
    let past = now_unix_s() - 7_200;
    store
        .write(&[
            write(
                expired,
                vec![span(expired, 1, None, &web, "old", (0, 5))],
                true,
                past,
            ),
            write(
                live,
                vec![span(live, 1, None, &web, "new", (10, 5))],
                true,
                far_future(),
            ),
        ])
        .await
        .expect("write");
    assert_eq!(store.get_trace(&expired).await.expect("get_trace"), None);
    assert_eq!(
        ids(&store.recent_traces(&web, 10).await.expect("list")),
        [live]
    );
    assert!(store.get_trace(&live).await.expect("get_trace").is_some());
}
