//! The Jira sink against a local server that speaks Jira's REST API shape
//! (`flowscope_core::testing::jira_receiver`): one issue per firing group, a comment instead of a
//! second issue, a comment and a "Done" transition on resolve, the issue key kept in the alert store
//! across a restart, and 5xx retried then dead-lettered like any sink.

mod alerts_support;

use std::sync::Arc;

use alerts_support::{minute, notification_settings, transition};
use flowscope_core::alerts::notify::Dispatcher;
use flowscope_core::alerts::webhook::sinks_with_state;
use flowscope_core::alerts::{RuleSet, TransitionKind};
use flowscope_core::embedded::RedbAlertStore;
use flowscope_core::ports::{AlertStore, Notifier, SinkStateStore};
use flowscope_core::testing::jira_receiver::JiraReceiver;

const RULES: &str = r#"
version: 1
notifications:
  retry: { attempts: 3, initial_backoff: 10ms, max_backoff: 50ms }
  sinks:
    - name: jira
      kind: jira
      url_env: FLOWSCOPE_JIRA_URL
      jira: { project: OPS, issue_type: Bug, labels: [prod], done_transition: "31" }
rules:
  - { name: r, metric: m, aggregation: avg, window: 1m, condition: above, warning: 1 }
"#;

fn env(url: &str) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| match name {
        "FLOWSCOPE_JIRA_URL" => Some(url.to_string()),
        "FLOWSCOPE_JIRA_USER" => Some("bot@example.com".to_string()),
        "FLOWSCOPE_JIRA_TOKEN" => Some("s3cret".to_string()),
        _ => None,
    }
}

/// The Jira sink of [`RULES`] on `receiver`, its issues kept in `state`.
fn jira_sink(receiver: &JiraReceiver, state: Arc<RedbAlertStore>) -> Arc<dyn Notifier> {
    let rules = RuleSet::parse(RULES, "rules.yaml").unwrap();
    let mut sinks = sinks_with_state(&rules.notifications, env(&receiver.url), state).unwrap();
    assert_eq!(sinks.len(), 1);
    sinks.remove(0)
}

fn dispatcher(
    store: &Arc<RedbAlertStore>,
    sink: Arc<dyn Notifier>,
    attempts: u32,
) -> Dispatcher<RedbAlertStore> {
    Dispatcher::new(store.clone(), vec![sink], &notification_settings(attempts))
}

fn open_store(dir: &tempfile::TempDir) -> Arc<RedbAlertStore> {
    Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap())
}

#[tokio::test]
async fn a_firing_group_creates_one_issue_and_a_repeat_comments_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let receiver = JiraReceiver::start().await;
    let dispatcher = dispatcher(&store, jira_sink(&receiver, store.clone()), 3);
    let now = minute(0);
    let fired = transition("checkout", "latency", TransitionKind::Firing, now);
    let reports = dispatcher.dispatch_now(&[fired], now).await.unwrap();
    assert!(reports.iter().all(|r| r.delivered()), "{reports:?}");
    let escalated = transition("checkout", "latency", TransitionKind::Escalated, now + 60);
    let reports = dispatcher
        .dispatch_now(&[escalated], now + 60)
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.delivered()), "{reports:?}");

    let created = receiver.accepted("create");
    assert_eq!(created.len(), 1, "{:?}", receiver.requests());
    let fields = &created[0].body["fields"];
    assert_eq!(fields["project"]["key"], "OPS");
    assert_eq!(fields["issuetype"]["name"], "Bug");
    assert_eq!(fields["summary"], "[Flowscope] checkout: latency");
    assert_eq!(fields["labels"], serde_json::json!(["flowscope", "prod"]));
    assert!(fields["description"]
        .as_str()
        .unwrap()
        .contains("[CRITICAL] latency — latency summary"));
    // Basic authentication with user:token.
    assert_eq!(
        created[0].authorization.as_deref(),
        Some("Basic Ym90QGV4YW1wbGUuY29tOnMzY3JldA==")
    );
    let comments = receiver.accepted("comment");
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].key.as_deref(), Some("FS-1"));
    assert!(receiver.accepted("transition").is_empty());
}

#[tokio::test]
async fn resolving_the_group_comments_and_transitions_the_issue_to_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let receiver = JiraReceiver::start().await;
    let dispatcher = dispatcher(&store, jira_sink(&receiver, store.clone()), 3);
    let now = minute(0);
    let both = [
        transition("checkout", "latency", TransitionKind::Firing, now),
        transition("checkout", "errors", TransitionKind::Firing, now),
    ];
    dispatcher.dispatch_now(&both, now).await.unwrap();
    // One of the two resolves: the group still fires, so the issue only gets a comment.
    let one = transition("checkout", "latency", TransitionKind::Resolved, now + 60);
    dispatcher.dispatch_now(&[one], now + 60).await.unwrap();
    assert_eq!(receiver.accepted("comment").len(), 1);
    assert!(receiver.accepted("transition").is_empty());
    // The last one resolves: comment, then the Done transition.
    let last = transition("checkout", "errors", TransitionKind::Resolved, now + 120);
    let reports = dispatcher.dispatch_now(&[last], now + 120).await.unwrap();
    assert!(reports.iter().all(|r| r.delivered()), "{reports:?}");
    let comments = receiver.accepted("comment");
    assert_eq!(comments.len(), 2);
    assert!(comments[1].body["body"]
        .as_str()
        .unwrap()
        .contains("[RESOLVED] errors"));
    let transitions = receiver.accepted("transition");
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].key.as_deref(), Some("FS-1"));
    assert_eq!(
        transitions[0].body,
        serde_json::json!({"transition": {"id": "31"}})
    );
    assert_eq!(
        store.get_sink_state("jira", "checkout").await.unwrap(),
        None
    );
    // The next episode files a new issue.
    let again = transition("checkout", "latency", TransitionKind::Firing, now + 600);
    dispatcher.dispatch_now(&[again], now + 600).await.unwrap();
    let created = receiver.accepted("create");
    assert_eq!(created.len(), 2);
}

#[tokio::test]
async fn the_issue_of_a_firing_group_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = JiraReceiver::start().await;
    let now = minute(0);
    {
        let store = open_store(&dir);
        let dispatcher = dispatcher(&store, jira_sink(&receiver, store.clone()), 3);
        let fired = transition("checkout", "latency", TransitionKind::Firing, now);
        dispatcher.dispatch_now(&[fired], now).await.unwrap();
        let released = store.released();
        drop(dispatcher);
        drop(store);
        released.wait().await;
    }
    let store = open_store(&dir);
    let dispatcher = dispatcher(&store, jira_sink(&receiver, store.clone()), 3);
    let repeat = transition("checkout", "latency", TransitionKind::Escalated, now + 60);
    dispatcher.dispatch_now(&[repeat], now + 60).await.unwrap();
    let resolved = transition("checkout", "latency", TransitionKind::Resolved, now + 120);
    dispatcher
        .dispatch_now(&[resolved], now + 120)
        .await
        .unwrap();
    assert_eq!(
        receiver.accepted("create").len(),
        1,
        "{:?}",
        receiver.requests()
    );
    let comments = receiver.accepted("comment");
    assert_eq!(comments.len(), 2);
    assert!(comments.iter().all(|c| c.key.as_deref() == Some("FS-1")));
    assert_eq!(receiver.accepted("transition").len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_and_a_retry_files_no_second_issue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let receiver = JiraReceiver::start().await;
    let dispatcher = dispatcher(&store, jira_sink(&receiver, store.clone()), 5);
    let now = minute(0);
    receiver.fail_next(2, 503);
    let fired = transition("checkout", "latency", TransitionKind::Firing, now);
    let reports = dispatcher.dispatch_now(&[fired], now).await.unwrap();
    assert!(reports[0].delivered(), "{:?}", reports[0].error);
    assert_eq!(reports[0].attempts, 3);
    assert_eq!(receiver.accepted("create").len(), 1);
    // A resolve whose transition fails once: the retry transitions without commenting again.
    receiver.fail_next_of("transition", 1, 500);
    let resolved = transition("checkout", "latency", TransitionKind::Resolved, now + 60);
    let reports = dispatcher
        .dispatch_now(&[resolved], now + 60)
        .await
        .unwrap();
    assert!(reports[0].delivered(), "{:?}", reports[0].error);
    assert_eq!(reports[0].attempts, 2);
    assert_eq!(receiver.accepted("comment").len(), 1);
    assert_eq!(receiver.accepted("transition").len(), 1);
    assert!(store.list_dead_letters(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_jira_that_keeps_failing_dead_letters_the_notification() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let receiver = JiraReceiver::start().await;
    let dispatcher = dispatcher(&store, jira_sink(&receiver, store.clone()), 3);
    receiver.fail_next(100, 502);
    let now = minute(0);
    let fired = transition("checkout", "latency", TransitionKind::Firing, now);
    let reports = dispatcher.dispatch_now(&[fired], now).await.unwrap();
    assert!(!reports[0].delivered());
    assert_eq!(reports[0].attempts, 3);
    assert_eq!(receiver.requests().len(), 3);
    let letters = store.list_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].sink, "jira");
    assert!(letters[0].error.contains("502"), "{}", letters[0].error);
    // Nothing was filed, so nothing is remembered for the group.
    assert_eq!(
        store.get_sink_state("jira", "checkout").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn jira_credentials_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let rules = RuleSet::parse(RULES, "rules.yaml").unwrap();
    let missing_token = |name: &str| match name {
        "FLOWSCOPE_JIRA_URL" => Some("http://127.0.0.1:9".to_string()),
        "FLOWSCOPE_JIRA_USER" => Some("bot".to_string()),
        _ => None,
    };
    let error = sinks_with_state(&rules.notifications, missing_token, store.clone())
        .err()
        .expect("a jira sink without a token must be refused");
    assert!(
        error.contains("\"jira\"") && error.contains("FLOWSCOPE_JIRA_TOKEN"),
        "{error}"
    );
    // An optional Jira sink without its URL is off.
    let optional = RULES.replace(
        "url_env: FLOWSCOPE_JIRA_URL",
        "url_env: FLOWSCOPE_JIRA_URL\n      optional: true",
    );
    let rules = RuleSet::parse(&optional, "rules.yaml").unwrap();
    let sinks = sinks_with_state(&rules.notifications, |_| None, store.clone()).unwrap();
    assert!(sinks.is_empty());
    // With its URL set, an optional Jira sink still needs its credentials.
    let error = sinks_with_state(&rules.notifications, missing_token, store)
        .err()
        .expect("an optional jira sink with a URL but no token must be refused");
    assert!(error.contains("FLOWSCOPE_JIRA_TOKEN"), "{error}");
    // A `jira` section belongs to a jira sink only.
    let misplaced = RULES.replace("kind: jira", "kind: webhook");
    let error = RuleSet::parse(&misplaced, "rules.yaml")
        .unwrap_err()
        .to_string();
    assert!(error.contains("`jira` section"), "{error}");
}
