//! Notifications: silences suppress, a failing service sends one grouped message, webhooks are retried
//! with backoff against a real HTTP receiver on 127.0.0.1, and what cannot be delivered is dead-lettered.

mod alerts_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alerts_support::{minute, notification_settings, transition, Fixture, Receiver};
use async_trait::async_trait;
use flowscope_core::alerts::notify::{Dispatcher, Notification, NotificationStatus};
use flowscope_core::alerts::rules::SinkKind;
use flowscope_core::alerts::silence::{MatchOp, Matcher, Silence};
use flowscope_core::alerts::webhook::WebhookNotifier;
use flowscope_core::alerts::TransitionKind;
use flowscope_core::embedded::RedbAlertStore;
use flowscope_core::model::MetricKind;
use flowscope_core::ports::{AlertStore, Notifier, NotifyError};

/// A sink that records what it is sent.
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<Notification>>,
}

#[async_trait]
impl Notifier for Recording {
    fn name(&self) -> &str {
        "recording"
    }
    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        self.sent.lock().unwrap().push(notification.clone());
        Ok(())
    }
}

fn silence_service(service: &str, from: i64, to: i64) -> Silence {
    Silence {
        id: format!("silence-{service}"),
        matchers: vec![Matcher {
            name: "service".into(),
            value: service.into(),
            op: MatchOp::Equal,
        }],
        starts_at: from,
        ends_at: to,
        created_by: "ann".into(),
        comment: "deploy".into(),
        created_at: from,
    }
}

#[tokio::test]
async fn silences_suppress_notifications_only_while_active() {
    let fx = Fixture::new();
    let sink = Arc::new(Recording::default());
    let dispatcher = Dispatcher::new(
        fx.alerts.clone(),
        vec![sink.clone()],
        &notification_settings(1),
    );
    let now = minute(0);
    fx.alerts
        .put_silence(&silence_service("api", now, now + 600))
        .await
        .unwrap();
    let report = dispatcher
        .submit(
            &[
                transition("api", "latency", TransitionKind::Firing, now),
                transition("web", "latency", TransitionKind::Firing, now),
            ],
            now,
        )
        .await
        .unwrap();
    assert_eq!((report.queued, report.silenced), (1, 1));
    dispatcher.flush_due(now + 30).await;
    let services: Vec<String> = sink
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.service.clone())
        .collect();
    assert_eq!(services, vec!["web".to_string()]);
    // After the silence ends, api's next transition is sent.
    let later = now + 600;
    dispatcher
        .submit(
            &[transition(
                "api",
                "latency",
                TransitionKind::Resolved,
                later,
            )],
            later,
        )
        .await
        .unwrap();
    dispatcher.flush_due(later + 30).await;
    let last = sink.sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.service, "api");
    assert_eq!(last.status, NotificationStatus::Resolved);
}

#[tokio::test]
async fn a_failing_service_sends_one_message_per_group_window() {
    let fx = Fixture::new();
    let sink = Arc::new(Recording::default());
    let dispatcher = Dispatcher::new(
        fx.alerts.clone(),
        vec![sink.clone()],
        &notification_settings(1),
    );
    let now = minute(0);
    // Twenty alerts of one service over 25 s, one of another, and a pending one nobody is told about.
    for i in 0..20 {
        let t = transition(
            "checkout",
            &format!("rule-{i}"),
            TransitionKind::Firing,
            now + i,
        );
        dispatcher.submit(&[t], now + i).await.unwrap();
    }
    dispatcher
        .submit(
            &[transition(
                "web",
                "latency",
                TransitionKind::Firing,
                now + 5,
            )],
            now + 5,
        )
        .await
        .unwrap();
    let pending = transition("web", "cpu", TransitionKind::Pending, now + 5);
    assert_eq!(
        dispatcher.submit(&[pending], now + 5).await.unwrap().queued,
        0
    );

    assert!(
        dispatcher.flush_due(now + 29).await.is_empty(),
        "window still open"
    );
    let reports = dispatcher.flush_due(now + 30).await;
    assert_eq!(reports.len(), 1);
    {
        let sent = sink.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].service, "checkout");
        assert_eq!(sent[0].alerts.len(), 20);
    }
    dispatcher.flush_due(now + 35).await;
    let sent = sink.sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[1].service.as_str(), sent[1].alerts.len()), ("web", 1));
}

#[tokio::test]
async fn webhook_is_retried_with_backoff_until_the_receiver_accepts() {
    let fx = Fixture::new();
    let receiver = Receiver::start(vec![500, 503, 200]).await;
    let webhook = WebhookNotifier::new("ops", SinkKind::Webhook, &receiver.url).unwrap();
    let dispatcher = Dispatcher::new(
        fx.alerts.clone(),
        vec![Arc::new(webhook)],
        &notification_settings(5),
    );
    let now = minute(0);
    dispatcher
        .submit(
            &[transition("api", "latency", TransitionKind::Firing, now)],
            now,
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let reports = dispatcher.flush_due(now + 30).await;
    assert_eq!(reports.len(), 1);
    assert!(reports[0].delivered(), "{:?}", reports[0].error);
    assert_eq!(reports[0].attempts, 3);
    // Backoff waited 20 ms, then 40 ms, between the attempts.
    assert!(started.elapsed() >= Duration::from_millis(60));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    // Every attempt carries the same notification and idempotency key, so the receiver can dedupe.
    let keys: Vec<Option<String>> = requests
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert!(keys[0].is_some());
    assert!(keys.iter().all(|k| *k == keys[0]));
    let body = requests[2].json();
    assert_eq!(body["service"], "api");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["rule"], "latency");
    assert_eq!(body["alerts"][0]["severity"], "critical");
    assert!(fx.alerts.list_dead_letters(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn undeliverable_notifications_become_dead_letters() {
    let fx = Fixture::new();
    let always_failing = Receiver::start(vec![503]).await;
    let rejecting = Receiver::start(vec![400]).await;
    let sinks: Vec<Arc<dyn Notifier>> = vec![
        Arc::new(WebhookNotifier::new("flaky", SinkKind::Webhook, &always_failing.url).unwrap()),
        Arc::new(WebhookNotifier::new("strict", SinkKind::Webhook, &rejecting.url).unwrap()),
    ];
    let dispatcher = Dispatcher::new(fx.alerts.clone(), sinks, &notification_settings(3));
    let now = minute(0);
    let resolved = transition("api", "latency", TransitionKind::Resolved, now);
    let reports = dispatcher.dispatch_now(&[resolved], now).await.unwrap();
    let mut outcome: Vec<(String, u32, bool)> = reports
        .iter()
        .map(|r| (r.sink.clone(), r.attempts, r.delivered()))
        .collect();
    outcome.sort();
    // 503 is retried up to the attempt limit; 400 cannot get better and is not retried.
    assert_eq!(
        outcome,
        vec![("flaky".into(), 3, false), ("strict".into(), 1, false)]
    );
    assert_eq!(always_failing.requests().len(), 3);
    assert_eq!(rejecting.requests().len(), 1);
    let mut letters = fx.alerts.list_dead_letters(10).await.unwrap();
    letters.sort_by(|a, b| a.sink.cmp(&b.sink));
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].sink, "flaky");
    assert!(letters[0].error.contains("503"), "{}", letters[0].error);
    assert_eq!(letters[0].notification.status, NotificationStatus::Resolved);
    assert_eq!(letters[1].attempts, 1);
}

#[tokio::test]
async fn unreachable_receivers_are_retried_then_dead_lettered() {
    let fx = Fixture::new();
    // A port nothing listens on: bind, note the address, close.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let webhook = WebhookNotifier::new("gone", SinkKind::Webhook, &format!("http://{address}/x"))
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let dispatcher = Dispatcher::new(
        fx.alerts.clone(),
        vec![Arc::new(webhook)],
        &notification_settings(2),
    );
    let now = minute(0);
    let reports = dispatcher
        .dispatch_now(
            &[transition("api", "latency", TransitionKind::Firing, now)],
            now,
        )
        .await
        .unwrap();
    assert_eq!(reports[0].attempts, 2);
    assert!(matches!(reports[0].error, Some(NotifyError::Retryable(_))));
    assert_eq!(fx.alerts.list_dead_letters(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn slack_sink_posts_a_text_message_with_every_alert_of_the_service() {
    let fx = Fixture::new();
    let receiver = Receiver::start(vec![200]).await;
    let slack = WebhookNotifier::new("slack", SinkKind::Slack, &receiver.url).unwrap();
    let dispatcher = Dispatcher::new(
        fx.alerts.clone(),
        vec![Arc::new(slack)],
        &notification_settings(1),
    );
    let now = minute(0);
    let reports = dispatcher
        .dispatch_now(
            &[
                transition("checkout", "high-latency", TransitionKind::Firing, now),
                transition("checkout", "high-error-rate", TransitionKind::Resolved, now),
            ],
            now,
        )
        .await
        .unwrap();
    assert!(reports[0].delivered());
    let body = receiver.requests()[0].json();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("*checkout*: 1 firing, 1 resolved"), "{text}");
    assert!(
        text.contains("[CRITICAL] high-latency — high-latency summary"),
        "{text}"
    );
    assert!(text.contains("[RESOLVED] high-error-rate"), "{text}");
}

#[tokio::test]
async fn engine_transitions_flow_to_a_webhook_including_the_resolve() {
    let fx = Fixture::new();
    let receiver = Receiver::start(vec![200]).await;
    let rules = "settings:\n  evaluation_delay: 0s\nrules:\n  - name: cpu\n    metric: process.cpu.utilization\n    aggregation: avg\n    scale: 100\n    unit: \"%\"\n    window: 1m\n    condition: above\n    warning: 80\n    critical: 95\n";
    fx.record(
        "api",
        "process.cpu.utilization",
        &[],
        MetricKind::Gauge,
        0,
        &[0.97],
    )
    .await;
    fx.record(
        "api",
        "process.cpu.utilization",
        &[],
        MetricKind::Gauge,
        1,
        &[0.2],
    )
    .await;
    let engine = fx.engine(rules);
    let webhook = WebhookNotifier::new("ops", SinkKind::Webhook, &receiver.url).unwrap();
    let store: Arc<RedbAlertStore> = fx.alerts.clone();
    let dispatcher = Dispatcher::new(store, vec![Arc::new(webhook)], &notification_settings(1));
    for now in [minute(1), minute(2)] {
        let transitions = engine.evaluate(now).await.unwrap();
        dispatcher.submit(&transitions, now).await.unwrap();
        dispatcher.flush_due(now + 30).await;
    }
    let bodies: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["status"], "firing");
    assert_eq!(bodies[0]["alerts"][0]["severity"], "critical");
    assert!(
        bodies[0]["alerts"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("avg of process.cpu.utilization is 97% (critical above 95%)"),
        "{}",
        bodies[0]["alerts"][0]["summary"]
    );
    assert_eq!(bodies[1]["status"], "resolved");
    assert_eq!(bodies[1]["alerts"][0]["kind"], "resolved");
}
