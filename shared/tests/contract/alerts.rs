//! The [`AlertStore`] contract: conditional state writes (exactly one of racing writers wins, and only
//! its history is kept), history newest first within a range, silences and dead letters. Every
//! alert has a random service label and history sits at a random time base, so the suite runs
//! against a shared table; assertions look only at what this run wrote. Expiry is left out: DynamoDB
//! does it by TTL, on its own schedule (the embedded store's purge has its own tests).

use flowscope_core::alerts::notify::{DeadLetter, Notification};
use flowscope_core::alerts::silence::{MatchOp, Matcher, Silence};
use flowscope_core::alerts::state::{AlertState, AlertTransition, Labels, TransitionKind};
use flowscope_core::alerts::AlertStatus;
use flowscope_core::ports::{AlertStore, PutOutcome};

use super::{far_future, unique};

/// Everything an [`AlertStore`] must do.
pub async fn alert_store_contract<S: AlertStore>(store: &S) {
    writes_are_conditional_on_the_stored_version(store).await;
    exactly_one_of_racing_writers_wins_and_only_its_history_is_kept(store).await;
    history_is_newest_first_within_the_range_and_limited(store).await;
    silences_are_replaced_by_id_and_deleted_once(store).await;
    dead_letters_list_newest_first(store).await;
}

fn state() -> AlertState {
    let mut labels = Labels::new();
    labels.insert("service".into(), unique("api"));
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

/// A history time base no other run uses (with overwhelming likelihood), at whole days so that day
/// boundaries are crossed at known offsets.
fn time_base() -> i64 {
    1_000_000 * 86_400 + i64::from(rand::random::<u32>() % 1_000_000) * 86_400
}

/// Create needs expected version 0, each write bumps the version by one, a stale or never-stored
/// expected version is a conflict that shows what is stored, and reads see the latest write.
pub async fn writes_are_conditional_on_the_stored_version<S: AlertStore>(store: &S) {
    let mut s = state();
    assert_eq!(
        store.get_state(&s.fingerprint).await.expect("get_state"),
        None
    );
    assert_eq!(
        store
            .put_state(&s, 0, &[], far_future())
            .await
            .expect("create"),
        PutOutcome::Written { version: 1 }
    );
    s.status = AlertStatus::Pending;
    match store
        .put_state(&s, 0, &[], far_future())
        .await
        .expect("second create")
    {
        PutOutcome::Conflict {
            current: Some(current),
        } => assert_eq!(
            (current.version, current.status),
            (1, AlertStatus::Inactive),
            "the loser is shown the stored state"
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .put_state(&s, 1, &[], far_future())
            .await
            .expect("update"),
        PutOutcome::Written { version: 2 }
    );
    let stored = store
        .get_state(&s.fingerprint)
        .await
        .expect("get_state")
        .expect("stored");
    assert_eq!(stored.version, 2);
    let mut expected = s.clone();
    expected.version = 2;
    assert_eq!(stored, expected, "the state reads back as written");
    assert!(matches!(
        store
            .put_state(&s, 7, &[], far_future())
            .await
            .expect("stale"),
        PutOutcome::Conflict { current: Some(_) }
    ));
    let never = state();
    assert_eq!(
        store
            .put_state(&never, 3, &[], far_future())
            .await
            .expect("never stored"),
        PutOutcome::Conflict { current: None },
        "nothing stored is version 0"
    );
    let listed = store.list_states().await.expect("list_states");
    assert!(listed.contains(&expected), "list_states holds the state");
    assert!(
        !listed.iter().any(|l| l.fingerprint == never.fingerprint),
        "a conflicting create stores nothing"
    );
}

/// Of several writers holding the same version, exactly one wins; the losers' history is not kept.
pub async fn exactly_one_of_racing_writers_wins_and_only_its_history_is_kept<S: AlertStore>(
    store: &S,
) {
    let s = state();
    let base = time_base();
    store
        .put_state(&s, 0, &[], far_future())
        .await
        .expect("create");
    let mut next = s.clone();
    next.status = AlertStatus::Firing;
    let writers = (0..8).map(|i| {
        let history = vec![entry(&next, TransitionKind::Firing, base + i)];
        let next = next.clone();
        async move { store.put_state(&next, 1, &history, far_future()).await }
    });
    let outcomes = futures::future::join_all(writers).await;
    let written = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().expect("put_state"), PutOutcome::Written { .. }))
        .count();
    assert_eq!(written, 1, "exactly one racing writer wins: {outcomes:?}");
    let kept: Vec<AlertTransition> = store
        .history(base, base + 100, 100)
        .await
        .expect("history")
        .into_iter()
        .filter(|t| t.fingerprint == s.fingerprint)
        .collect();
    assert_eq!(kept.len(), 1, "only the winner's history is kept");
}

/// History comes oldest first within `from <= at < to`, keeps two entries of the same second in
/// their order, and honours `limit`.
pub async fn history_is_newest_first_within_the_range_and_limited<S: AlertStore>(store: &S) {
    let (a, b) = (state(), state());
    let base = time_base();
    store
        .put_state(
            &a,
            0,
            &[
                entry(&a, TransitionKind::Pending, base + 300),
                entry(&a, TransitionKind::Firing, base + 300),
            ],
            far_future(),
        )
        .await
        .expect("a");
    store
        .put_state(
            &b,
            0,
            &[entry(&b, TransitionKind::Firing, base + 200)],
            far_future(),
        )
        .await
        .expect("b");
    // Across a day boundary too.
    store
        .put_state(
            &b,
            1,
            &[entry(&b, TransitionKind::Resolved, base + 86_400 + 5)],
            far_future(),
        )
        .await
        .expect("b later");
    let ours = |list: Vec<AlertTransition>| -> Vec<(String, i64, TransitionKind)> {
        list.into_iter()
            .filter(|t| t.fingerprint == a.fingerprint || t.fingerprint == b.fingerprint)
            .map(|t| (t.fingerprint, t.at, t.kind))
            .collect()
    };
    assert_eq!(
        ours(
            store
                .history(base, base + 2 * 86_400, 100)
                .await
                .expect("history")
        ),
        vec![
            (
                b.fingerprint.clone(),
                base + 86_405,
                TransitionKind::Resolved
            ),
            (a.fingerprint.clone(), base + 300, TransitionKind::Firing),
            (a.fingerprint.clone(), base + 300, TransitionKind::Pending),
            (b.fingerprint.clone(), base + 200, TransitionKind::Firing),
        ],
        "newest first; one evaluation's transitions of the same second in reverse order too"
    );
    assert_eq!(
        ours(
            store
                .history(base, base + 2 * 86_400, 2)
                .await
                .expect("history")
        ),
        vec![
            (
                b.fingerprint.clone(),
                base + 86_405,
                TransitionKind::Resolved
            ),
            (a.fingerprint.clone(), base + 300, TransitionKind::Firing),
        ],
        "limit keeps the newest"
    );
    assert!(
        ours(
            store
                .history(base + 250, base + 300, 100)
                .await
                .expect("history")
        )
        .is_empty(),
        "`to` is exclusive"
    );
    assert_eq!(
        ours(
            store
                .history(base + 300, base + 301, 100)
                .await
                .expect("history")
        )
        .len(),
        2,
        "`from` is inclusive"
    );
    assert!(store
        .history(base + 300, base + 300, 100)
        .await
        .expect("empty range")
        .is_empty());
}

fn silence(id: &str, comment: &str) -> Silence {
    Silence {
        id: id.into(),
        matchers: vec![Matcher {
            name: "service".into(),
            value: "api".into(),
            op: MatchOp::Equal,
        }],
        starts_at: 0,
        ends_at: far_future(),
        created_by: "ann".into(),
        comment: comment.into(),
        created_at: 0,
    }
}

/// Silences read back as written, a put with the same id replaces, and a delete says whether the
/// silence existed.
pub async fn silences_are_replaced_by_id_and_deleted_once<S: AlertStore>(store: &S) {
    let (first, second) = (unique("silence"), unique("silence"));
    store
        .put_silence(&silence(&first, "deploy"))
        .await
        .expect("put");
    // Built once: `silence` stamps its end from the clock, so a second call could differ.
    let maintenance = silence(&second, "maintenance");
    store.put_silence(&maintenance).await.expect("put");
    let replaced = silence(&first, "deploy, extended");
    store.put_silence(&replaced).await.expect("replace");
    let ours: Vec<Silence> = store
        .list_silences()
        .await
        .expect("list")
        .into_iter()
        .filter(|s| s.id == first || s.id == second)
        .collect();
    assert_eq!(ours.len(), 2, "a put with the same id replaces");
    assert!(ours.contains(&replaced));
    assert!(ours.contains(&maintenance));

    assert!(store.delete_silence(&first).await.expect("delete"));
    assert!(!store.delete_silence(&first).await.expect("delete again"));
    let left: Vec<String> = store
        .list_silences()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .filter(|id| *id == first || *id == second)
        .collect();
    assert_eq!(left, vec![second.clone()]);
    assert!(store.delete_silence(&second).await.expect("clean up"));
}

/// Dead letters come back whole, newest failure first, at most `limit`.
pub async fn dead_letters_list_newest_first<S: AlertStore>(store: &S) {
    let s = state();
    // Newer than anything a real dispatcher writes, so they are the newest whatever else is stored.
    let newest = far_future() + 365 * 86_400;
    let letters: Vec<DeadLetter> = [("older", newest - 10), ("newer", newest)]
        .into_iter()
        .map(|(name, failed_at)| DeadLetter {
            id: unique(name),
            sink: "ops".into(),
            notification: Notification::new(
                s.service().unwrap_or_default().to_string(),
                vec![entry(&s, TransitionKind::Firing, 10)],
                10,
            ),
            error: "HTTP 503".into(),
            attempts: 5,
            failed_at,
            expires_at: far_future(),
        })
        .collect();
    for letter in &letters {
        store.put_dead_letter(letter).await.expect("put");
    }
    let listed = store.list_dead_letters(1000).await.expect("list");
    let ours: Vec<&DeadLetter> = listed
        .iter()
        .filter(|l| letters.iter().any(|w| w.id == l.id))
        .collect();
    assert_eq!(ours, vec![&letters[1], &letters[0]], "newest first, whole");
    assert!(
        listed.windows(2).all(|w| w[0].failed_at >= w[1].failed_at),
        "the whole list is newest first"
    );
    assert_eq!(store.list_dead_letters(1).await.expect("list").len(), 1);
    assert!(store.list_dead_letters(0).await.expect("list").is_empty());
}
