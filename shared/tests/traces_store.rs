//! The embedded trace store: kept vs provisional traces, idempotent span writes, the per-service list,
//! expiry, and persistence across a reopen.

#[path = "traces_support/builders.rs"]
mod builders;

use builders::*;
use flowscope_core::embedded::RedbTraceStore;
use flowscope_core::ports::{TraceStore, TraceWrite};
use flowscope_core::spans::{Span, SpanKind};

fn write(trace: u32, spans: Vec<Span>, kept: bool, expires_at: i64) -> TraceWrite {
    TraceWrite {
        trace_id: trace_id(trace),
        spans,
        kept,
        expires_at_unix_s: expires_at,
    }
}

/// Far enough ahead of the wall clock that nothing expires during a test.
fn later() -> i64 {
    now() + 86_400
}

#[tokio::test]
async fn provisional_spans_are_hidden_until_the_trace_is_kept_then_all_of_them_show() {
    let (_dir, store) = open_traces();
    let trace = checkout(1, 0, 100, false);
    store
        .write(&[write(1, trace.web.clone(), false, later())])
        .await
        .unwrap();
    assert_eq!(store.get_trace(&trace_id(1)).await.unwrap(), None);
    assert!(store.recent_traces("web", 10).await.unwrap().is_empty());

    store
        .write(&[write(1, trace.pay.clone(), true, later())])
        .await
        .unwrap();
    let spans = store.get_trace(&trace_id(1)).await.unwrap().unwrap();
    assert_eq!(spans.len(), 4);
    assert!(spans
        .windows(2)
        .all(|w| w[0].start_unix_nano <= w[1].start_unix_nano));
    let mut expected = trace.web.clone();
    expected.extend(trace.pay.clone());
    for span in &expected {
        assert!(spans.contains(span), "{span:?} stored as written");
    }
    // A later provisional write does not un-keep it.
    store
        .write(&[write(1, vec![], false, later())])
        .await
        .unwrap();
    assert!(store.get_trace(&trace_id(1)).await.unwrap().is_some());
}

#[tokio::test]
async fn writing_the_same_spans_again_changes_nothing() {
    let (_dir, store) = open_traces();
    let trace = checkout(1, 0, 100, true);
    let mut spans = trace.web.clone();
    spans.extend(trace.pay.clone());
    let once = write(1, spans, true, later());
    store.write(std::slice::from_ref(&once)).await.unwrap();
    let before = store.recent_traces("pay", 10).await.unwrap();
    store.write(&[once.clone(), once]).await.unwrap();
    let after = store.recent_traces("pay", 10).await.unwrap();
    assert_eq!(before, after);
    let [summary] = after.as_slice() else {
        panic!("one trace listed, got {after:?}");
    };
    assert_eq!(summary.span_count, 4);
    assert_eq!(summary.duration_nanos, 100 * MS);
    assert!(summary.error);
    assert_eq!(summary.root_name.as_deref(), Some("GET /checkout"));
    assert_eq!(summary.services, ["pay", "web"]);
    assert_eq!(
        store.get_trace(&trace_id(1)).await.unwrap().unwrap().len(),
        4
    );
}

#[tokio::test]
async fn each_service_lists_its_traces_newest_first_and_an_earlier_span_moves_a_trace_back() {
    let (_dir, store) = open_traces();
    for n in 1..=4u32 {
        let root = span(
            n,
            n * 10,
            None,
            "web",
            "GET /",
            SpanKind::Server,
            (u64::from(n) * 1_000, 5),
        );
        store
            .write(&[write(n, vec![root], true, later())])
            .await
            .unwrap();
    }
    let ids = |list: Vec<flowscope_core::ports::TraceSummary>| -> Vec<[u8; 16]> {
        list.iter().map(|t| t.trace_id).collect()
    };
    assert_eq!(
        ids(store.recent_traces("web", 3).await.unwrap()),
        [trace_id(4), trace_id(3), trace_id(2)]
    );
    assert!(store.recent_traces("pay", 3).await.unwrap().is_empty());
    // Trace 4 turns out to have started first (a span from another service arrives late).
    let early = span(4, 49, Some(40), "pay", "charge", SpanKind::Server, (0, 1));
    store
        .write(&[write(4, vec![early], true, later())])
        .await
        .unwrap();
    assert_eq!(
        ids(store.recent_traces("web", 10).await.unwrap()),
        [trace_id(3), trace_id(2), trace_id(1), trace_id(4)]
    );
    assert_eq!(
        ids(store.recent_traces("pay", 10).await.unwrap()),
        [trace_id(4)]
    );
}

#[tokio::test]
async fn expired_traces_read_as_absent_and_purging_deletes_only_them() {
    let (_dir, store) = open_traces();
    let past = now() - 7_200; // `now()` is an hour ahead of the wall clock at most
    let trace = checkout(1, 0, 100, false);
    store
        .write(&[write(1, trace.web, true, past)])
        .await
        .unwrap();
    store
        .write(&[write(2, checkout(2, 0, 100, false).web, true, later())])
        .await
        .unwrap();
    assert_eq!(store.get_trace(&trace_id(1)).await.unwrap(), None);
    assert_eq!(store.recent_traces("web", 10).await.unwrap().len(), 1);

    assert_eq!(store.purge_expired(past + 1).await.unwrap(), 1);
    assert_eq!(store.purge_expired(past + 1).await.unwrap(), 0);
    assert!(store.get_trace(&trace_id(2)).await.unwrap().is_some());
    // A later write extends a trace's expiry: a kept trace written again with a longer TTL stays.
    store
        .write(&[write(2, vec![], true, later() + 10)])
        .await
        .unwrap();
    assert_eq!(store.purge_expired(later() + 5).await.unwrap(), 0);
    assert_eq!(store.purge_expired(later() + 11).await.unwrap(), 1);
    assert_eq!(store.get_trace(&trace_id(2)).await.unwrap(), None);
}

#[tokio::test]
async fn kept_traces_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbTraceStore::open(dir.path()).unwrap();
        store
            .write(&[write(1, checkout(1, 0, 100, false).web, true, later())])
            .await
            .unwrap();
    }
    let store = RedbTraceStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get_trace(&trace_id(1)).await.unwrap().unwrap().len(),
        2
    );
    assert_eq!(store.recent_traces("web", 5).await.unwrap().len(), 1);
}
