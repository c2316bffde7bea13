//! The scheduled alerts function against DynamoDB (emulators: `scripts/emulators.sh start`, then
//! `source "$(scripts/emulators.sh env)"`), wired as `functions/alerts` wires it: the engine reads
//! buckets and series from DynamoDB, records transitions in the alerts table with conditional
//! writes, notifies the sinks and pushes `alert` events to the connections subscribed to the
//! service. EventBridge Scheduler delivers at least once, so two invocations for the same minute
//! run at once here; the alert must still fire once, notify once and be pushed once.
//!
//! The query function's alert routes (the core's `/api/*` router, as the function serves it) read and write the
//! same table: active alerts, acknowledgement, silences.
//!
//! Built only with the `emulator-tests` feature (`scripts/aws-tests.sh`); without emulator endpoints
//! they fail rather than pass unrun.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::SdkConfig;
use flowscope_core::aggregate::BucketStats;
use flowscope_core::alerts::notify::NotificationStatus;
use flowscope_core::alerts::{AlertEngine, Dispatcher, Notification, RuleSet, TransitionKind};
use flowscope_core::aws::lambda::alerts::{evaluate_and_notify, AlertRunReport};
use flowscope_core::aws::{
    create_tables_if_missing, delete_tables_if_present, DynamoAlertStore, DynamoConnections,
    DynamoStore, TableNames,
};
use flowscope_core::http::ApiState;
use flowscope_core::model::{Attributes, MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{
    AlertStore, BucketDelta, BucketKey, BucketStore, ConnectionStore, Notifier, NotifyError,
    SequenceNumber, SeriesCatalog, Subscription,
};
use flowscope_integration_tests::events::{http_request, json_body, query_function};
use flowscope_integration_tests::pusher::RecordingPusher;
use flowscope_integration_tests::{api_keys, emulators, now_unix_s, unique, API_KEY};
use serde_json::Value;

const REQUESTS: &str = "http.server.requests";
const ERRORS: &str = "http.server.errors";

/// The shipped error-rate rule, on a 1-minute window and without `for`, so one minute decides.
const RULES: &str = r#"
settings:
  evaluation_delay: 0s
notifications:
  retry: { attempts: 2, initial_backoff: 10ms, max_backoff: 10ms }
rules:
  - name: high-error-rate
    ratio:
      numerator: { metric: http.server.errors }
      denominator: { metric: http.server.requests }
    aggregation: rate
    scale: 100
    unit: "%"
    window: 1m
    condition: above
    warning: 5
    critical: 10
"#;

/// Every notification a sink was handed; `fail` makes it refuse them all.
struct RecordingSink {
    name: &'static str,
    fail: bool,
    received: Mutex<Vec<Notification>>,
}

impl RecordingSink {
    fn new(name: &'static str, fail: bool) -> Arc<RecordingSink> {
        Arc::new(RecordingSink {
            name,
            fail,
            received: Mutex::new(Vec::new()),
        })
    }

    fn statuses(&self) -> Vec<NotificationStatus> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.status)
            .collect()
    }
}

#[async_trait]
impl Notifier for RecordingSink {
    fn name(&self) -> &str {
        self.name
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        self.received.lock().unwrap().push(notification.clone());
        if self.fail {
            return Err(NotifyError::Retryable("HTTP 503: hook unavailable".into()));
        }
        Ok(())
    }
}

/// One test's tables and the function's parts, as `functions/alerts` builds them.
struct AlertsFunction {
    config: SdkConfig,
    tables: TableNames,
    metrics: Arc<DynamoStore>,
    alerts: Arc<DynamoAlertStore>,
    connections: DynamoConnections,
    engine: AlertEngine<DynamoStore, DynamoAlertStore>,
    /// The query function's router over the same tables and rules.
    api: ApiState,
    dispatcher: Dispatcher<DynamoAlertStore>,
    /// The first minute of the synthetic series (ten minutes ago, so TTLs are in the future).
    base: i64,
    sequence: u64,
}

impl AlertsFunction {
    async fn start(test: &str, sinks: Vec<Arc<dyn Notifier>>) -> Option<AlertsFunction> {
        let config = emulators(test).await?;
        let tables = TableNames::with_prefix(&unique("flowscope-alerts"));
        create_tables_if_missing(&config, &tables)
            .await
            .expect("create the tables");
        let rules = Arc::new(RuleSet::parse(RULES, "test-rules.yaml").expect("valid rules"));
        let metrics = Arc::new(DynamoStore::new(&config, tables.clone()));
        let alerts = Arc::new(DynamoAlertStore::new(&config, tables.alerts.clone()));
        Some(AlertsFunction {
            dispatcher: Dispatcher::new(alerts.clone(), sinks, &rules.notifications),
            api: ApiState::new(metrics.clone(), alerts.clone(), rules.clone()),
            engine: AlertEngine::new(metrics.clone(), alerts.clone(), rules),
            connections: DynamoConnections::new(&config, &tables.connections),
            base: Resolution::OneMinute.bucket_start(now_unix_s()) - 600,
            metrics,
            alerts,
            tables,
            config,
            sequence: 0,
        })
    }

    fn minute(&self, m: i64) -> i64 {
        self.base + 60 * m
    }

    /// Writes one minute of a counter's increase for `service`, as the aggregator would.
    async fn record(&mut self, service: &str, metric: &str, m: i64, increase: f64) {
        let key = SeriesKey {
            service: service.into(),
            metric: metric.into(),
            attributes: Attributes::new(),
        };
        let mut stats = BucketStats::new();
        stats.observe(increase);
        self.sequence += 1;
        let sequence = SequenceNumber::from_u128(u128::from(self.sequence));
        let delta = BucketDelta {
            key: BucketKey {
                series: key.id(),
                resolution: Resolution::OneMinute,
                start_unix_s: self.minute(m),
            },
            shard_id: "shardId-000000000000".into(),
            first_seq: sequence.clone(),
            last_seq: sequence,
            stats,
            expires_at_unix_s: now_unix_s() + 86_400,
        };
        self.metrics
            .apply_bucket(&delta)
            .await
            .expect("write bucket");
        self.metrics
            .upsert_series(&[SeriesMeta {
                id: key.id(),
                key,
                kind: MetricKind::Counter,
                unit: String::new(),
                last_seen_unix_s: self.minute(m) + 59,
            }])
            .await
            .expect("register series");
    }

    /// `invocations` scheduled runs for the same minute at once (at-least-once delivery).
    async fn invoke(
        &self,
        pusher: &RecordingPusher,
        now: i64,
        invocations: usize,
    ) -> AlertRunReport {
        let runs = (0..invocations).map(|_| {
            evaluate_and_notify(
                &self.engine,
                &self.dispatcher,
                &self.connections,
                pusher,
                now,
            )
        });
        let mut total = AlertRunReport::default();
        for report in futures::future::join_all(runs).await {
            let report = report.expect("the function succeeds");
            total.transitions += report.transitions;
            total.notifications_delivered += report.notifications_delivered;
            total.notifications_dead_lettered += report.notifications_dead_lettered;
            total.events_pushed += report.events_pushed;
        }
        total
    }

    /// One request through the query function's handler, as API Gateway would deliver it.
    async fn request(&self, method: &str, path: &str, body: &str) -> (u16, Option<String>, Value) {
        let request = http_request(method, path, "", &[("x-api-key", API_KEY)], body.as_bytes());
        let response = query_function(&self.api, &api_keys(), request).await;
        let allow = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (response.status().as_u16(), allow, json_body(&response))
    }

    async fn finish(self) {
        delete_tables_if_present(&self.config, &self.tables)
            .await
            .expect("delete the tables");
    }
}

#[tokio::test]
async fn duplicate_invocations_fire_notify_and_push_once_then_resolve() {
    let test = "duplicate_invocations_fire_notify_and_push_once_then_resolve";
    let ops = RecordingSink::new("ops", false);
    let broken = RecordingSink::new("broken-hook", true);
    let Some(mut function) = AlertsFunction::start(test, vec![ops.clone(), broken.clone()]).await
    else {
        return;
    };
    let service = unique("checkout");
    let pusher = RecordingPusher::default();
    for (connection, services) in [
        ("watcher", vec![service.clone()]),
        ("bystander", vec![unique("billing")]),
    ] {
        function
            .connections
            .put_connection(connection, "test", now_unix_s() + 3600)
            .await
            .expect("connect");
        function
            .connections
            .set_subscription(
                connection,
                &Subscription {
                    services,
                    metrics: Vec::new(),
                },
                now_unix_s() + 3600,
            )
            .await
            .expect("subscribe");
    }

    // Two healthy minutes, then one where a fifth of the requests fail.
    for (m, errors) in [(0, 6.0), (1, 12.0), (2, 1200.0)] {
        function.record(&service, REQUESTS, m, 6000.0).await;
        function.record(&service, ERRORS, m, errors).await;
    }
    let quiet = function.invoke(&pusher, function.minute(2) + 5, 2).await;
    assert_eq!(quiet.transitions, 0, "0.2% errors is healthy: {quiet:?}");

    let fired = function.invoke(&pusher, function.minute(3) + 5, 2).await;
    assert_eq!(
        fired.transitions, 1,
        "two invocations, one transition: {fired:?}"
    );
    assert_eq!(fired.notifications_delivered, 1, "{fired:?}");
    assert_eq!(fired.notifications_dead_lettered, 1, "{fired:?}");
    assert_eq!(fired.events_pushed, 1, "{fired:?}");
    assert_eq!(ops.statuses(), vec![NotificationStatus::Firing]);
    let event = &pusher.messages_to("watcher")[0];
    assert_eq!(event["type"], "alert");
    assert_eq!(event["kind"], "firing");
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["service"], service.as_str());
    assert!(
        (event["value"].as_f64().unwrap() - 20.0).abs() < 1e-6,
        "{event}"
    );
    assert!(
        pusher.messages_to("bystander").is_empty(),
        "not its service"
    );

    // The query function lists it, records an acknowledgement and takes a silence.
    let fingerprint = event["fingerprint"].as_str().unwrap().to_string();
    let (status, _, active) = function.request("GET", "/api/alerts", "").await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["alerts"][0]["fingerprint"], fingerprint.as_str());
    assert_eq!(active["alerts"][0]["status"], "firing");
    let ack = format!("/api/alerts/{fingerprint}/ack");
    let (status, _, acked) = function.request("POST", &ack, r#"{"by":"ann"}"#).await;
    assert_eq!(status, 200, "{acked}");
    let state = function
        .alerts
        .get_state(&fingerprint)
        .await
        .expect("state")
        .expect("the alert");
    assert_eq!(state.ack.map(|a| a.by).as_deref(), Some("ann"));
    let silence = format!(
        r#"{{"matchers":[{{"name":"service","value":"{service}","op":"="}}],"duration":"1h","created_by":"ann"}}"#
    );
    let (status, _, created) = function.request("POST", "/api/silences", &silence).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        function
            .alerts
            .list_silences()
            .await
            .expect("silences")
            .len(),
        1
    );
    let (status, allow, _) = function.request("POST", "/api/services", "{}").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET,HEAD")));
    // Lifted again, so the resolve notification below still goes out.
    let id = created["silence"]["id"].as_str().unwrap().to_string();
    let (status, _, _) = function
        .request("DELETE", &format!("/api/silences/{id}"), "")
        .await;
    assert!(status == 200 || status == 204, "{status}");

    // The sink that keeps failing is tried `attempts` times, then dead-lettered in DynamoDB.
    assert_eq!(broken.statuses().len(), 2, "two attempts");
    let letters = function
        .alerts
        .list_dead_letters(10)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].sink, "broken-hook");
    assert!(letters[0].error.contains("503"), "{}", letters[0].error);
    assert_eq!(letters[0].attempts, 2);

    // The next minute is healthy again: resolved, once, with a resolve message.
    function.record(&service, REQUESTS, 3, 6000.0).await;
    function.record(&service, ERRORS, 3, 6.0).await;
    let resolved = function.invoke(&pusher, function.minute(4) + 5, 2).await;
    assert_eq!(resolved.transitions, 1, "{resolved:?}");
    assert_eq!(
        ops.statuses(),
        vec![NotificationStatus::Firing, NotificationStatus::Resolved]
    );
    let events = pusher.messages_to("watcher");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["kind"], "resolved");

    let history = function
        .alerts
        .history(function.minute(0), function.minute(10), 100)
        .await
        .expect("history");
    let kinds: Vec<TransitionKind> = history.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        vec![TransitionKind::Resolved, TransitionKind::Firing],
        "newest first"
    );
    let states = function.alerts.list_states().await.expect("states");
    assert_eq!(states.len(), 1);
    assert_eq!(
        states[0].status,
        flowscope_core::alerts::AlertStatus::Resolved
    );
    function.finish().await;
}

/// Issue 13 item 6 on AWS: a rule put through the query function (`PUT /api/alert-rules`, admin
/// key) is stored in the alerts table and fires on the alerts function's next run, with no
/// redeploy; an invalid body is refused with its position and the running rules keep working.
#[tokio::test]
async fn a_rule_put_through_the_api_fires_on_the_next_run_without_a_redeploy() {
    use flowscope_core::alerts::RuleSource;
    use flowscope_core::auth::ApiKeys;
    use flowscope_core::aws::lambda::alerts::AlertsFunction as ScheduledAlerts;
    use flowscope_core::http::rules::RuleWriters;

    let test = "a_rule_put_through_the_api_fires_on_the_next_run_without_a_redeploy";
    let ops = RecordingSink::new("ops", false);
    let Some(mut fixture) = AlertsFunction::start(test, vec![]).await else {
        return;
    };
    let seed = Arc::new(RuleSet::parse(RULES, "test-rules.yaml").expect("valid rules"));
    // The alerts function as `functions/alerts` builds it: its rules come from the alerts table.
    let sink = ops.clone();
    let scheduled = ScheduledAlerts::new(
        fixture.metrics.clone(),
        fixture.alerts.clone(),
        RuleSource::new(fixture.alerts.clone(), seed.clone()),
        Box::new(move |_| Ok(vec![sink.clone() as Arc<dyn Notifier>])),
    )
    .expect("the function starts");
    // The query function, another process: its own view of the same table, and an admin key.
    const ADMIN_KEY: &str = "e2e-admin-key";
    let admin = ApiKeys::from_clear_keys([ADMIN_KEY]);
    let keys = api_keys().union(&admin);
    let api = fixture.api.clone().with_rule_source(
        RuleSource::new(
            Arc::new(DynamoAlertStore::new(
                &fixture.config,
                fixture.tables.alerts.clone(),
            )),
            seed,
        ),
        RuleWriters::Keys(admin),
    );
    let put = |key: &'static str, body: &'static str| {
        let (api, keys) = (api.clone(), keys.clone());
        async move {
            let request = http_request(
                "PUT",
                "/api/alert-rules",
                "",
                &[("x-api-key", key)],
                body.as_bytes(),
            );
            let response = query_function(&api, &keys, request).await;
            (response.status().as_u16(), json_body(&response))
        }
    };

    let service = unique("queue");
    fixture.record(&service, "queue.depth", 2, 500.0).await;
    let pusher = RecordingPusher::default();
    let now = fixture.minute(3) + 5;
    let before = scheduled
        .run(&fixture.connections, &pusher, now)
        .await
        .expect("run");
    assert_eq!(
        before.transitions, 0,
        "no rule watches queue.depth yet: {before:?}"
    );

    // Refused: not an admin key; then not valid rules. The running rules stay.
    let (status, body) = put(API_KEY, QUEUE_RULES).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = put(ADMIN_KEY, "rules:\n  - name: queue-deep\n    metric: queue.depth\n    aggregation: sum\n    window: 1m\n    condition: deeper\n").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("body:6:"),
        "{body}"
    );
    let still = scheduled
        .run(&fixture.connections, &pusher, now)
        .await
        .expect("run");
    assert_eq!((still.transitions, scheduled.version().await), (0, 0));

    // Accepted: version 1 in the table; the next run fires it.
    let (status, body) = put(ADMIN_KEY, QUEUE_RULES).await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)), "{body}");
    let fired = scheduled
        .run(&fixture.connections, &pusher, now + 1)
        .await
        .expect("run");
    assert_eq!(scheduled.version().await, 1);
    assert_eq!(fired.transitions, 1, "{fired:?}");
    assert_eq!(ops.statuses(), vec![NotificationStatus::Firing]);
    let firing = fixture.alerts.list_states().await.expect("states");
    assert!(
        firing
            .iter()
            .any(|s| s.rule == "queue-deep" && s.labels.get("service") == Some(&service)),
        "{firing:?}"
    );
    fixture.finish().await;
}

/// The test rules plus a queue-depth rule.
const QUEUE_RULES: &str = r#"
settings:
  evaluation_delay: 0s
rules:
  - name: high-error-rate
    ratio:
      numerator: { metric: http.server.errors }
      denominator: { metric: http.server.requests }
    aggregation: rate
    scale: 100
    window: 1m
    condition: above
    warning: 5
    critical: 10
  - name: queue-deep
    metric: queue.depth
    aggregation: sum
    window: 1m
    condition: above
    critical: 100
"#;
