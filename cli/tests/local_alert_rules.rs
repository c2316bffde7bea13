//! Alert rules changing while local mode runs (issue 13 items 6 and the reload fix): a rule file
//! edit and `PUT /api/alert-rules` are stored as versions of one document, the newest change wins;
//! a change reaches the evaluator, the notification sinks and `GET /api/alert-rules`; an invalid
//! body is refused and the running rules stay; the version in force survives a restart.

mod support;

use std::time::Duration;

use flowscope_cli::local;
use serde_json::Value;
use support::wait_until;
use tokio::time::sleep;

const NEVER_RULE: &str = "  - name: never\n    metric: nothing.here\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 1\n    critical: 2\n";
const DEPTH_RULE: &str = "  - name: deep-queue\n    metric: queue.depth\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 50\n    critical: 80\n";

fn rules_file(sinks: &str, rules: &str) -> String {
    format!(
        "version: 1\nsettings:\n  evaluation_delay: 5s\nnotifications:\n  group_wait: 1s\n  sinks: [{sinks}]\nrules:\n{rules}"
    )
}

async fn rules_in_force(addr: std::net::SocketAddr) -> Value {
    let (status, body) = support::http(addr, "GET", "/api/alert-rules", "", b"").await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

fn names(rules: &Value) -> Vec<String> {
    rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_changes_reach_the_evaluator_sinks_and_api_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rules_file("", NEVER_RULE)).unwrap();
    let hook = flowscope_core::testing::http_receiver::Receiver::start(vec![200]).await;
    let args = || support::args_with(&data, &["--alert-rules", rules.to_str().unwrap()]);
    let handle = local::start(args()).await.unwrap();
    let http = handle.http_addr;

    let seed = rules_in_force(http).await;
    assert_eq!(
        (seed["version"].as_u64(), names(&seed)),
        (Some(0), vec!["never".into()])
    );

    // A deep queue, every second, so the last whole minute holds points whatever the boundary.
    let sender = {
        let otlp = handle.otlp_addr;
        tokio::spawn(async move {
            loop {
                let request = support::gauge_request("orders", "queue.depth", 100.0);
                let (status, _) = support::http(
                    otlp,
                    "POST",
                    "/v1/metrics",
                    "application/x-protobuf",
                    &request,
                )
                .await;
                assert_eq!(status, 200);
                sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The file gains a rule and a sink: stored as version 1, served by the API, and the new sink
    // receives the new rule's notification.
    let sink = format!("{{ name: hook, kind: webhook, url: \"{}\" }}", hook.url);
    std::fs::write(
        &rules,
        rules_file(&sink, &format!("{NEVER_RULE}{DEPTH_RULE}")),
    )
    .unwrap();
    wait_until(Duration::from_secs(30), "version 1 served", || async move {
        let rules = rules_in_force(http).await;
        let done = rules["version"] == 1
            && names(&rules) == ["never", "deep-queue"]
            && rules["notifications"]["sinks"][0]["name"] == "hook";
        (done, rules.to_string())
    })
    .await;
    let requests = hook.received.clone();
    wait_until(Duration::from_secs(150), "deep-queue notified", || {
        let requests = requests.clone();
        async move {
            let bodies: Vec<String> = requests
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.json().to_string())
                .collect();
            (
                bodies.iter().any(|b| b.contains("deep-queue")),
                format!("{bodies:?}"),
            )
        }
    })
    .await;

    // Through the API: an invalid body is refused with its position, the running rules stay.
    let broken = rules_file("", "  - name: x\n    metric: m\n    aggregation: avg\n    window: 1m\n    condition: sideways\n");
    let (status, body) = support::http(
        http,
        "PUT",
        "/api/alert-rules",
        "application/yaml",
        broken.as_bytes(),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("body:12:"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(rules_in_force(http).await["version"], 1);
    // A valid one is version 2, in force at once.
    let only_never = rules_file("", NEVER_RULE);
    let (status, body) = support::http(
        http,
        "PUT",
        "/api/alert-rules",
        "application/yaml",
        only_never.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let now = rules_in_force(http).await;
    assert_eq!(
        (now["version"].as_u64(), names(&now)),
        (Some(2), vec!["never".into()])
    );

    sender.abort();
    handle.shutdown().await.unwrap();

    // The API's version is newer than the file: it stays in force after a restart.
    let handle = local::start(args()).await.unwrap();
    let after = rules_in_force(handle.http_addr).await;
    assert_eq!(
        (after["version"].as_u64(), names(&after)),
        (Some(2), vec!["never".into()])
    );
    handle.shutdown().await.unwrap();
}
