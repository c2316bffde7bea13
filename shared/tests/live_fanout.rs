//! Fan-out: one message per subscribed connection per flush, routed through the subscription index,
//! and a connection the gateway reports gone (410) is removed — that one, not the others.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use flowscope_core::embedded::MemoryConnections;
use flowscope_core::live::{Fanout, LiveBatch, LiveSeries, LiveUpdate, SharedSeries};
use flowscope_core::model::{MetricKind, Resolution};
use flowscope_core::ports::{ConnectionPusher, ConnectionStore, PushError, Subscription};
use flowscope_core::query::BucketView;

#[derive(Default)]
struct RecordingPusher {
    gone: Vec<String>,
    posted: Mutex<BTreeMap<String, Vec<serde_json::Value>>>,
}

#[async_trait]
impl ConnectionPusher for RecordingPusher {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), PushError> {
        if self.gone.iter().any(|g| g == connection_id) {
            return Err(PushError::Gone);
        }
        let message = serde_json::from_slice(&payload).expect("fan-out sends JSON");
        self.posted
            .lock()
            .unwrap()
            .entry(connection_id.to_string())
            .or_default()
            .push(message);
        Ok(())
    }
}

fn update(service: &str, metric: &str, series: usize) -> LiveUpdate {
    LiveUpdate {
        series: SharedSeries::new(LiveSeries {
            series_id: format!("{series:016x}"),
            service: service.into(),
            metric: metric.into(),
            attributes: Default::default(),
            kind: MetricKind::Gauge,
            unit: "%".into(),
        }),
        resolution: Resolution::OneMinute,
        bucket: BucketView {
            start: 60,
            count: 1,
            sum: 1.0,
            min: Some(1.0),
            max: Some(1.0),
            avg: Some(1.0),
            p50: Some(1.0),
            p95: Some(1.0),
            p99: Some(1.0),
            rate: 1.0 / 60.0,
        },
    }
}

async fn subscribe(store: &MemoryConnections, id: &str, services: &[&str], metrics: &[&str]) {
    store
        .put_connection(id, "test", i64::MAX / 2)
        .await
        .unwrap();
    store
        .set_subscription(
            id,
            &Subscription {
                services: services.iter().map(|s| s.to_string()).collect(),
                metrics: metrics.iter().map(|s| s.to_string()).collect(),
            },
            i64::MAX / 2,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn each_connection_gets_one_message_with_only_what_it_subscribed_to() {
    let store = MemoryConnections::default();
    subscribe(&store, "all", &[], &[]).await;
    subscribe(&store, "api-cpu", &["api"], &["cpu"]).await;
    subscribe(&store, "db", &["db"], &[]).await;
    let pusher = RecordingPusher::default();
    let updates = vec![
        update("api", "cpu", 1),
        update("api", "mem", 2),
        update("db", "cpu", 3),
    ];

    let report = Fanout::new(&store, &pusher)
        .deliver(7, &updates)
        .await
        .unwrap();

    let posted = pusher.posted.lock().unwrap();
    let metrics_of = |id: &str| -> Vec<String> {
        assert_eq!(posted[id].len(), 1, "one message per connection per flush");
        assert_eq!(posted[id][0]["seq"], 7);
        assert_eq!(posted[id][0]["type"], "metrics_update");
        let mut names: Vec<String> = posted[id][0]["updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                format!(
                    "{}/{}",
                    u["service"].as_str().unwrap(),
                    u["metric"].as_str().unwrap()
                )
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(metrics_of("all"), vec!["api/cpu", "api/mem", "db/cpu"]);
    assert_eq!(metrics_of("api-cpu"), vec!["api/cpu"]);
    assert_eq!(metrics_of("db"), vec!["db/cpu"]);
    assert_eq!(report.connections_reached, 3);
    assert_eq!(report.messages_posted, 3);
}

#[tokio::test]
async fn a_gone_connection_is_deleted_and_the_others_are_kept() {
    let store = MemoryConnections::default();
    subscribe(&store, "alive", &["api"], &[]).await;
    subscribe(&store, "stale", &["api"], &[]).await;
    let pusher = RecordingPusher {
        gone: vec!["stale".into()],
        ..Default::default()
    };

    let report = Fanout::new(&store, &pusher)
        .deliver(1, &[update("api", "cpu", 1)])
        .await
        .unwrap();

    assert_eq!(report.gone_removed, 1);
    let subscribers: Vec<String> = store
        .subscribers("api")
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(subscribers, vec!["alive".to_string()]);
    assert!(pusher.posted.lock().unwrap().contains_key("alive"));
}

#[tokio::test]
async fn a_batch_larger_than_one_websocket_message_is_split_under_the_limit() {
    let store = MemoryConnections::default();
    subscribe(&store, "all", &[], &[]).await;
    let pusher = RecordingPusher::default();
    let updates: Vec<LiveUpdate> = (0..2000).map(|i| update("api", "cpu", i)).collect();

    Fanout::new(&store, &pusher)
        .deliver(3, &updates)
        .await
        .unwrap();

    let posted = pusher.posted.lock().unwrap();
    let messages = &posted["all"];
    assert!(
        messages.len() > 1,
        "2000 updates do not fit in one 128 KB message"
    );
    let mut total = 0;
    for (i, message) in messages.iter().enumerate() {
        assert!(message.to_string().len() <= 128 * 1024);
        assert_eq!(message["seq"], 3);
        // Numbered in order so a client knows when it has the whole flush.
        assert_eq!(message["part"], i + 1);
        assert_eq!(message["parts"], messages.len());
        total += message["updates"].as_array().unwrap().len();
    }
    assert_eq!(total, 2000, "splitting loses nothing");
}

#[tokio::test]
async fn a_flush_is_stamped_with_its_start_and_alike_subscribers_get_the_same_message() {
    let store = MemoryConnections::default();
    for id in ["a", "b", "c"] {
        subscribe(&store, id, &["api"], &[]).await;
    }
    subscribe(&store, "db", &["db"], &[]).await;
    let pusher = RecordingPusher::default();
    let batch = LiveBatch {
        seq: 9,
        updates: vec![update("api", "cpu", 1), update("db", "cpu", 2)],
        traces: Vec::new(),
    };
    let before_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;

    let report = Fanout::new(&store, &pusher)
        .deliver_batch(&batch)
        .await
        .unwrap();

    let after_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let posted = pusher.posted.lock().unwrap();
    assert_eq!(report.connections_reached, 4);
    // The three subscribers of "api" receive one and the same message.
    assert_eq!(posted["a"], posted["b"]);
    assert_eq!(posted["a"], posted["c"]);
    let message = &posted["a"][0];
    assert_eq!(message["type"], "metrics_update");
    assert_eq!(message["seq"], 9);
    assert_eq!(message["updates"].as_array().unwrap().len(), 1);
    // Clients tell delivery time from the batch window by the flush's start, in unix µs.
    let stamp = message["flushed_at_us"]
        .as_u64()
        .expect("a flushed_at_us stamp");
    assert!((before_us..=after_us).contains(&stamp), "{stamp}");
    assert_eq!(posted["db"][0]["flushed_at_us"], message["flushed_at_us"]);
    assert_eq!(posted["db"][0]["updates"][0]["service"], "db");
}
