//! An expression alert end to end in local mode, notified through the log sink and the Jira sink (a
//! local server speaking Jira's REST API shape): a gauge above the threshold for a whole minute fires
//! `max by (job) (…) ` and files one issue, the log gets one line per notification, and a whole minute
//! below resolves it: a comment and the "Done" transition on the same issue. Takes two to three
//! minutes: rules read whole minutes.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowscope_cli::local;
use flowscope_core::testing::jira_receiver::JiraReceiver;
use support::{args_with, send_gauge, wait_until};

/// Each phase (fire, then resolve) waits at most this long.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// The process's log, kept in memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Notification lines of the log sink (target `flowscope::alert_notification`).
    fn notifications(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("flowscope::alert_notification"))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_alert_notifies_the_log_and_files_then_closes_a_jira_issue() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter("flowscope::alert_notification=info")
        .with_writer(move || writer.clone())
        .init();
    let jira = JiraReceiver::start().await;
    // The only test in this binary, so setting the variables races nothing.
    std::env::set_var("FLOWSCOPE_JIRA_USER", "bot@example.com");
    std::env::set_var("FLOWSCOPE_JIRA_TOKEN", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(
        &rules_path,
        format!(
            r#"version: 1
settings: {{ evaluation_delay: 1s }}
notifications:
  group_wait: 1s
  retry: {{ attempts: 3, initial_backoff: 100ms, max_backoff: 1s }}
  sinks:
    - {{ name: log, kind: log }}
    - name: jira
      kind: jira
      url: "{}"
      jira: {{ project: OPS, done_transition: "31" }}
rules:
  - name: hot
    expr: max by (job) (e2e_temperature_percent)
    condition: above
    warning: 50
"#,
            jira.url
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let handle = local::start(args_with(
        &data,
        &["--alert-rules", rules_path.to_str().unwrap()],
    ))
    .await
    .unwrap();

    // Hot until the alert fires (its minute closes, then an evaluation and the group wait).
    wait_until(PHASE_LIMIT, "a Jira issue for the hot gauge", || async {
        send_gauge(&handle, "oven", "e2e.temperature", 100.0).await;
        let created = jira.accepted("create");
        (!created.is_empty(), format!("{:?}", jira.requests()))
    })
    .await;
    let created = jira.accepted("create");
    assert_eq!(created.len(), 1, "{:?}", jira.requests());
    let fields = &created[0].body["fields"];
    assert_eq!(fields["project"]["key"], "OPS");
    assert_eq!(fields["summary"], "[Flowscope] oven: hot");

    // Cool until the group resolves: a whole minute at 1 closes the issue.
    wait_until(
        PHASE_LIMIT,
        "the Jira issue transitioned to Done",
        || async {
            send_gauge(&handle, "oven", "e2e.temperature", 1.0).await;
            let done = jira.accepted("transition");
            (!done.is_empty(), format!("{:?}", jira.requests()))
        },
    )
    .await;
    assert_eq!(jira.accepted("create").len(), 1, "one issue per episode");
    let transitions = jira.accepted("transition");
    assert_eq!(transitions[0].key.as_deref(), Some("FS-1"));
    assert_eq!(transitions[0].body["transition"]["id"], "31");
    let comments = jira.accepted("comment");
    assert!(
        comments.iter().all(|c| c.key.as_deref() == Some("FS-1")),
        "{comments:?}"
    );
    assert!(
        comments
            .last()
            .and_then(|c| c.body["body"].as_str())
            .is_some_and(|b| b.contains("[RESOLVED] hot")),
        "{comments:?}"
    );

    // The log sink wrote one line per notification: the firing and the resolve.
    let lines = log.notifications();
    assert!(
        lines.iter().any(|l| l.contains(r#""status":"firing""#))
            && lines.iter().any(|l| l.contains(r#""status":"resolved""#)),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.contains(r#""service":"oven""#)),
        "{lines:?}"
    );
    handle.shutdown().await.unwrap();
}
