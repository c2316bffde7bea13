//! The embedded alert store keeps the AlertStore contract: conditional writes by version (exactly one
//! of several racing writers wins), history in time order with expiry, silences, dead letters, and all
//! of it survives a reopen.

use std::sync::Arc;

use flowscope_core::alerts::notify::{DeadLetter, Notification};
use flowscope_core::alerts::silence::{MatchOp, Matcher, Silence};
use flowscope_core::alerts::state::{AlertState, AlertTransition, Labels, TransitionKind};
use flowscope_core::alerts::AlertStatus;
use flowscope_core::embedded::RedbAlertStore;
use flowscope_core::ports::{AlertStore, PutOutcome};

fn state(service: &str) -> AlertState {
    let mut labels = Labels::new();
    labels.insert("service".into(), service.into());
    AlertState::new("latency", labels, 100)
}

fn entry(s: &AlertState, kind: TransitionKind, at: i64) -> AlertTransition {
    AlertTransition {
        fingerprint: s.fingerprint.clone(),
        rule: s.rule.clone(),
        labels: s.labels.clone(),
        kind,
        status: AlertStatus::Firing,
        previous_status: AlertStatus::Pending,
        severity: None,
        previous_severity: None,
        value: Some(1.0),
        reason: None,
        at,
        summary: format!("{kind:?}"),
        by: None,
    }
}

fn silence(id: &str, ends_at: i64) -> Silence {
    Silence {
        id: id.into(),
        matchers: vec![Matcher {
            name: "service".into(),
            value: "api".into(),
            op: MatchOp::Equal,
        }],
        starts_at: 0,
        ends_at,
        created_by: "ann".into(),
        comment: String::new(),
        created_at: 0,
    }
}

#[tokio::test]
async fn writes_are_conditional_on_the_stored_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap();
    let mut s = state("api");
    assert_eq!(
        store.put_state(&s, 0, &[], 0).await.unwrap(),
        PutOutcome::Written { version: 1 }
    );
    // A second creator loses and is shown what is stored.
    s.status = AlertStatus::Pending;
    match store.put_state(&s, 0, &[], 0).await.unwrap() {
        PutOutcome::Conflict {
            current: Some(current),
        } => {
            assert_eq!(
                (current.version, current.status),
                (1, AlertStatus::Inactive)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.put_state(&s, 1, &[], 0).await.unwrap(),
        PutOutcome::Written { version: 2 }
    );
    let stored = store.get_state(&s.fingerprint).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.status), (2, AlertStatus::Pending));
    // Writing against a version that was never stored is a conflict too.
    assert!(matches!(
        store.put_state(&s, 7, &[], 0).await.unwrap(),
        PutOutcome::Conflict { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_racing_writers_wins_and_only_its_history_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap());
    let s = state("api");
    store.put_state(&s, 0, &[], 0).await.unwrap();
    let writers = (0..8).map(|i| {
        let store = store.clone();
        let mut next = s.clone();
        next.status = AlertStatus::Firing;
        tokio::spawn(async move {
            let history = [entry(&next, TransitionKind::Firing, 1000 + i)];
            store
                .put_state(&next, 1, &history, 1_000_000)
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(writers).await;
    let written = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().unwrap(), PutOutcome::Written { .. }))
        .count();
    assert_eq!(written, 1);
    assert_eq!(store.history(0, 10_000, 100).await.unwrap().len(), 1);
}

#[tokio::test]
async fn history_is_time_ordered_limited_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap();
    let a = state("api");
    let b = state("web");
    // Two entries at the same second must both be kept.
    store
        .put_state(
            &a,
            0,
            &[
                entry(&a, TransitionKind::Pending, 300),
                entry(&a, TransitionKind::Firing, 300),
            ],
            5000,
        )
        .await
        .unwrap();
    store
        .put_state(&b, 0, &[entry(&b, TransitionKind::Firing, 200)], 9000)
        .await
        .unwrap();
    let all = store.history(0, 1000, 100).await.unwrap();
    let seen: Vec<(i64, TransitionKind)> = all.iter().map(|t| (t.at, t.kind)).collect();
    assert_eq!(
        seen,
        vec![
            (300, TransitionKind::Firing),
            (300, TransitionKind::Pending),
            (200, TransitionKind::Firing),
        ]
    );
    let newest = store.history(0, 1000, 1).await.unwrap();
    assert_eq!(
        (newest.len(), newest[0].kind),
        (1, TransitionKind::Firing),
        "a limit keeps the newest"
    );
    assert_eq!(
        store.history(250, 300, 100).await.unwrap().len(),
        0,
        "`to` is exclusive"
    );
    // a's entries expire at 5000, b's at 9000.
    assert_eq!(store.purge_expired(4999).await.unwrap(), 0);
    assert_eq!(
        store.purge_expired(5000).await.unwrap(),
        0,
        "expiry is exclusive"
    );
    assert_eq!(store.purge_expired(5001).await.unwrap(), 2);
    let left = store.history(0, 1000, 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].fingerprint, b.fingerprint);
    // States are not history: they stay.
    assert_eq!(store.list_states().await.unwrap().len(), 2);
}

#[tokio::test]
async fn silences_dead_letters_and_states_survive_a_reopen_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.redb");
    {
        let store = RedbAlertStore::open(&path).unwrap();
        let s = state("api");
        store
            .put_state(&s, 0, &[entry(&s, TransitionKind::Firing, 10)], 1000)
            .await
            .unwrap();
        store.put_silence(&silence("short", 500)).await.unwrap();
        store.put_silence(&silence("long", 5000)).await.unwrap();
        for (id, failed_at) in [("older", 10), ("newer", 20)] {
            store
                .put_dead_letter(&DeadLetter {
                    id: id.into(),
                    sink: "ops".into(),
                    notification: Notification::new(
                        "api".into(),
                        vec![entry(&s, TransitionKind::Firing, 10)],
                        10,
                    ),
                    error: "HTTP 503".into(),
                    attempts: 5,
                    failed_at,
                    expires_at: failed_at + 1000,
                })
                .await
                .unwrap();
        }
    }
    let store = RedbAlertStore::open(&path).unwrap();
    assert_eq!(store.list_states().await.unwrap().len(), 1);
    assert_eq!(store.history(0, 100, 10).await.unwrap().len(), 1);
    let letters = store.list_dead_letters(10).await.unwrap();
    let ids: Vec<&str> = letters.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, vec!["newer", "older"], "newest first");
    assert_eq!(store.list_dead_letters(1).await.unwrap().len(), 1);
    assert_eq!(store.list_silences().await.unwrap().len(), 2);

    // At 1015: the short silence has ended, the history entry (1000) and the older letter (1010) expired.
    assert_eq!(store.purge_expired(1015).await.unwrap(), 3);
    let silences: Vec<String> = store
        .list_silences()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(silences, vec!["long".to_string()]);
    assert_eq!(store.list_dead_letters(10).await.unwrap()[0].id, "newer");
    assert!(store.delete_silence("long").await.unwrap());
    assert!(!store.delete_silence("long").await.unwrap());
}
