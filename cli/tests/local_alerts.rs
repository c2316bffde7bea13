//! Alerts in local mode, driven by the load generator's own incident: with the quick rules
//! (`infra/alert-rules.quick.yaml`, the README's demo), a planned spike on `api` fires an error-rate
//! alert and its end resolves it, seen over the WebSocket (`alert` events), through the query API
//! (active alerts, history) and at the webhook sink (a firing and a resolve notification). Takes two
//! to three minutes: rules read whole minutes.

mod support;

use std::time::{Duration, Instant};

use flowscope_cli::loadgen::{self, LoadgenArgs};
use flowscope_cli::local::{self, LocalHandle};
use futures::SinkExt;
use serde_json::Value;
use support::{args_with, connect, get_json, next_json, Socket};
use tokio_tungstenite::tungstenite::Message;

const RULE: &str = "quick-error-rate";
/// The spike fills at least half of some minute wherever the run starts in it (≥ 10% errors in
/// that minute), and one whole quiet minute follows within three minutes.
const SPIKE: &str = "api:0s:75s";
/// Each phase (fire, then resolve) waits at most this long.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// Reads the socket until an `alert` event of `RULE` for `api` with transition `kind` arrives.
async fn wait_for_alert_event(socket: &mut Socket, kind: &str) -> Value {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no `{kind}` alert event for api within {PHASE_LIMIT:?}"
        );
        let message = next_json(socket).await;
        if message["type"] == "alert" && message["rule"] == RULE {
            assert_eq!(
                message["service"], "api",
                "subscribed to api only: {message}"
            );
            if message["kind"] == kind {
                return message;
            }
        }
    }
}

async fn active_alerts(handle: &LocalHandle) -> Vec<Value> {
    let (status, body) = get_json(handle, "/api/alerts").await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_generator_spike_fires_an_alert_and_its_end_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let webhook = flowscope_core::testing::http_receiver::Receiver::start(vec![200]).await;
    // The quick rules' optional webhook sink reads this at start. The only test in this binary,
    // so setting the variable races nothing.
    std::env::set_var("FLOWSCOPE_ALERT_WEBHOOK_URL", &webhook.url);
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/alert-rules.quick.yaml"
    );
    let handle = local::start(args_with(dir.path(), &["--alert-rules", rules]))
        .await
        .unwrap();
    let mut socket = connect(&handle).await;
    socket
        .send(Message::text(r#"{"type":"subscribe","services":["api"]}"#))
        .await
        .unwrap();

    let started = Instant::now();
    let load = tokio::spawn(loadgen::run(LoadgenArgs {
        endpoint: format!("http://{}", handle.otlp_addr),
        rate: 500,
        duration: Some(2 * PHASE_LIMIT),
        traces_per_second: 2.0,
        spikes: vec![SPIKE.parse().unwrap()],
        no_random_spikes: true,
        quiet: true,
        ..LoadgenArgs::default()
    }));

    let fired = wait_for_alert_event(&mut socket, "firing").await;
    let fired_after = started.elapsed();
    let fingerprint = fired["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fired["status"], "firing");
    let severity = fired["severity"].as_str().unwrap();
    let value = fired["value"].as_f64().unwrap();
    // The spike fails a fifth of requests; a minute it fills at least half of is at ≥ 10%.
    assert!(
        value > 5.0,
        "error rate {value}% should be above the warning"
    );
    assert!(
        (severity == "critical") == (value > 10.0),
        "{severity} at {value}%"
    );

    let active = active_alerts(&handle).await;
    let listed = active
        .iter()
        .find(|a| a["fingerprint"] == fingerprint.as_str())
        .unwrap_or_else(|| panic!("the firing alert is listed: {active:?}"));
    assert_eq!(listed["status"], "firing");
    assert_eq!(listed["labels"]["service"], "api");
    assert_eq!(
        active
            .iter()
            .filter(|a| a["rule"] == RULE && a["labels"]["service"] != "api")
            .count(),
        0,
        "only api was spiked, yet other services alert: {active:?}"
    );

    let resolved = wait_for_alert_event(&mut socket, "resolved").await;
    let resolved_after = started.elapsed();
    assert_eq!(resolved["fingerprint"], fingerprint.as_str());
    assert_eq!(resolved["status"], "resolved");
    assert!(
        resolved["value"].as_f64().is_none_or(|v| v < 5.0),
        "resolved while the error rate was {}",
        resolved["value"]
    );
    assert!(
        !active_alerts(&handle)
            .await
            .iter()
            .any(|a| a["fingerprint"] == fingerprint.as_str()),
        "a resolved alert is no longer active"
    );

    let (status, history) = get_json(
        &handle,
        &format!("/api/alerts/history?fingerprint={fingerprint}"),
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let kinds: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"resolved"), "newest first: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"firing"), "newest first: {kinds:?}");
    // The sink got one message when it fired and one when it resolved (grouped per service, after
    // the rules' 10 s group_wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    let notified = loop {
        let notified: Vec<(String, String)> = webhook
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|n| n["service"] == "api")
            .flat_map(|n| {
                let status = n["status"].as_str().unwrap_or_default().to_string();
                n["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a["fingerprint"] == fingerprint.as_str())
                    .map(move |a| {
                        (
                            status.clone(),
                            a["kind"].as_str().unwrap_or_default().to_string(),
                        )
                    })
            })
            .collect();
        if notified.iter().any(|(_, kind)| kind == "resolved") || Instant::now() > deadline {
            break notified;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(
        notified
            .first()
            .map(|(status, kind)| (status.as_str(), kind.as_str())),
        Some(("firing", "firing")),
        "{notified:?}"
    );
    assert_eq!(
        notified
            .last()
            .map(|(status, kind)| (status.as_str(), kind.as_str())),
        Some(("resolved", "resolved")),
        "{notified:?}"
    );
    eprintln!(
        "spike {SPIKE}: fired ({severity}, {value:.1}%) after {:.0} s, resolved after {:.0} s; history {kinds:?}",
        fired_after.as_secs_f64(),
        resolved_after.as_secs_f64()
    );

    load.abort();
    handle.shutdown().await.unwrap();
}
