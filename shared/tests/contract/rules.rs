//! The rule-store contract (the alert rules put through `PUT /api/alert-rules`), run on the redb
//! alert store here and on the DynamoDB alerts table in `contract_aws`. The store holds one
//! document, so the suite starts from whatever version is there.

use flowscope_core::ports::{RulePut, RuleStore};

use super::{now_unix_s, unique};

/// `store` keeps one versioned document; a write names the version it replaces and only one of two
/// writers of the same version wins.
pub async fn rule_store_contract(store: &dyn RuleStore) {
    let now = now_unix_s();
    let start = store
        .current()
        .await
        .expect("current")
        .map_or(0, |r| r.version);

    // A write of the current version is the next version, read back whole.
    let first = format!("rules: []\n# {}\n", unique("first"));
    assert_eq!(
        store.put(start, &first, now).await.expect("put"),
        RulePut::Written { version: start + 1 }
    );
    let stored = store.current().await.expect("current").expect("a document");
    assert_eq!(
        (stored.version, stored.text.as_str(), stored.updated_at),
        (start + 1, first.as_str(), now)
    );

    // A write naming a version that is no longer current changes nothing and says what is.
    let stale = format!("rules: []\n# {}\n", unique("stale"));
    assert_eq!(
        store.put(start, &stale, now + 1).await.expect("put"),
        RulePut::Conflict { current: start + 1 }
    );
    let future = store.put(start + 5, &stale, now + 1).await.expect("put");
    assert_eq!(future, RulePut::Conflict { current: start + 1 });
    assert_eq!(
        store
            .current()
            .await
            .expect("current")
            .expect("a document")
            .text,
        first,
        "a refused write leaves the document as it was"
    );

    // Two writers of the same version: exactly one wins.
    let (a, b) = (
        format!("rules: []\n# {}\n", unique("a")),
        format!("rules: []\n# {}\n", unique("b")),
    );
    let (ra, rb) = tokio::join!(
        store.put(start + 1, &a, now + 2),
        store.put(start + 1, &b, now + 2)
    );
    let outcomes = [ra.expect("put a"), rb.expect("put b")];
    let written: Vec<&RulePut> = outcomes
        .iter()
        .filter(|o| matches!(o, RulePut::Written { .. }))
        .collect();
    assert_eq!(written, vec![&RulePut::Written { version: start + 2 }]);
    assert!(outcomes.contains(&RulePut::Conflict { current: start + 2 }));
    let stored = store.current().await.expect("current").expect("a document");
    let winner = if matches!(outcomes[0], RulePut::Written { .. }) {
        &a
    } else {
        &b
    };
    assert_eq!((stored.version, &stored.text), (start + 2, winner));
}

/// The first write to an empty store names version 0, and a second "first" write loses.
pub async fn rule_store_first_write(store: &dyn RuleStore) {
    assert_eq!(
        store.current().await.expect("current"),
        None,
        "a new store is empty"
    );
    let now = now_unix_s();
    assert_eq!(
        store.put(0, "rules: []\n", now).await.expect("put"),
        RulePut::Written { version: 1 }
    );
    assert_eq!(
        store
            .put(0, "rules: []\n# again\n", now)
            .await
            .expect("put"),
        RulePut::Conflict { current: 1 }
    );
}
