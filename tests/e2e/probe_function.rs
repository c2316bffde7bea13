//! Issue 13 on AWS: the scheduled probe function's work (`probing::probe_and_score_rounds`, what
//! `functions/probe` runs) against DynamoDB Local + kinesis-mock. A registered instance is probed,
//! its results go through Kinesis and the aggregator handler into DynamoDB, the next round scores
//! the service: the `flowscope.health.score` series reaches DynamoDB the same way, and the `health`
//! event — like the `registry` event of the registration made through a registry with the live
//! sink, as the query function's — reaches a subscribed WebSocket client through the live table's
//! stream and the fan-out handler (as `trace` events do).

use std::sync::Arc;
use std::time::Duration;

use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::aws::lambda::kinesis::handle_kinesis_event;
use flowscope_core::aws::lambda::snapshot::SnapshotConfig;
use flowscope_core::aws::lambda::streams::handle_bucket_stream;
use flowscope_core::aws::lambda::websocket::{handle_connect, handle_message};
use flowscope_core::aws::{
    delete_tables_if_present, DynamoAlertStore, DynamoConnections, DynamoLiveEvents,
    DynamoRegistryStore, DynamoStore,
};
use flowscope_core::ingest::IngestLimits;
use flowscope_core::model::{Resolution, Retention};
use flowscope_core::ports::{BucketStore, SeriesCatalog, StreamSource};
use flowscope_core::probing::{probe_and_score_rounds, HealthPorts, Prober};
use flowscope_core::registry::probe::ProbeSettings;
use flowscope_core::registry::score::{ScoreSettings, SCORE_METRIC};
use flowscope_core::registry::{Registration, Registry, RegistryLimits};
use flowscope_integration_tests::events::{
    dyn_ingest, kinesis_event, live_stream_event, websocket_event,
};
use flowscope_integration_tests::pusher::RecordingPusher;
use flowscope_integration_tests::shard::read_shard;
use flowscope_integration_tests::{
    api_keys, emulators, now_unix_s, stream_and_tables, unique, API_KEY,
};
use serde_json::Value;

/// A health endpoint that answers every probe 200.
async fn health_endpoint() -> String {
    flowscope_core::testing::http_receiver::Receiver::start(vec![200])
        .await
        .url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_function_scores_into_dynamodb_and_pushes_health_and_registry_frames() {
    let test = "the_probe_function_scores_into_dynamodb_and_pushes_health_and_registry_frames";
    let Some(config) = emulators(test).await else {
        return;
    };
    let prefix = unique("flowscope-health");
    let (stream, tables) = stream_and_tables(&config, &prefix).await;
    let store = Arc::new(DynamoStore::new(&config, tables.clone()));
    let alerts = DynamoAlertStore::new(&config, tables.alerts.clone());
    let live = Arc::new(DynamoLiveEvents::new(&config, tables.live.clone()));
    let registry = Registry::new(
        Arc::new(DynamoRegistryStore::new(&config, tables.registry.clone())),
        RegistryLimits::default(),
    )
    .with_live_events(live.clone());
    let ingest = dyn_ingest(stream.clone(), IngestLimits::default());
    let service = unique("checkout");

    // A browser subscribed to the service (ws-connect, ws-message).
    let connections = DynamoConnections::new(&config, &tables.connections);
    let pusher = RecordingPusher::default();
    let keys = api_keys();
    let connected = handle_connect(
        &connections,
        &keys,
        &websocket_event("$connect", "watcher", Some(API_KEY), None),
    )
    .await
    .unwrap();
    assert_eq!(connected.status_code, 200);
    let subscribe = serde_json::json!({"type": "subscribe", "services": [service]}).to_string();
    handle_message(
        &connections,
        &pusher,
        store.as_ref(),
        &SnapshotConfig::default(),
        &websocket_event("subscribe", "watcher", None, Some(&subscribe)),
    )
    .await
    .unwrap();

    // Registered as through the query function's API (its registry has the live sink).
    let registration = Registration {
        service: service.clone(),
        instance: "c-1".into(),
        version: Some("1.0".into()),
        host: None,
        metadata: Default::default(),
        health_url: Some(health_endpoint().await),
        metrics_url: None,
        lease_seconds: Some(600),
    };
    registry
        .register(&registration, now_unix_s())
        .await
        .unwrap();

    let prober = Prober::new(ProbeSettings {
        timeout: Duration::from_secs(2),
        ..ProbeSettings::default()
    })
    .unwrap();
    let ports = HealthPorts {
        registry: &registry,
        metrics: store.as_ref(),
        alerts: &alerts,
        ingest: &ingest,
        live: live.as_ref(),
    };
    let aggregator = Aggregator::new(store.clone(), Retention::default());
    let shard = stream.shard_ids().await.unwrap().remove(0);

    // First invocation: probes into Kinesis → aggregator → DynamoDB (the score has no probe data yet).
    let first = probe_and_score_rounds(
        &ports,
        &prober,
        &ScoreSettings::default(),
        1,
        Duration::ZERO,
        now_unix_s,
    )
    .await;
    let probe = first[0].probe.as_ref().expect("probed");
    assert_eq!((probe.probed, probe.up, probe.ingest_status), (1, 1, 200));
    let written = ingest.stats().stream_records as usize;
    let records = read_shard(stream.as_ref(), &shard, written).await;
    let handled = handle_kinesis_event(&aggregator, None, kinesis_event(&records))
        .await
        .unwrap();
    assert!(handled.batch_item_failures.is_empty());

    // Second invocation: the service is scored from the stored probes.
    let second = probe_and_score_rounds(
        &ports,
        &prober,
        &ScoreSettings::default(),
        1,
        Duration::ZERO,
        now_unix_s,
    )
    .await;
    let health = second[0].health.as_ref().expect("scored");
    assert_eq!(
        (health.scored, health.ingest_status),
        (1, 200),
        "{health:?}"
    );
    let written = ingest.stats().stream_records as usize;
    let records = read_shard(stream.as_ref(), &shard, written).await;
    let handled = handle_kinesis_event(&aggregator, None, kinesis_event(&records))
        .await
        .unwrap();
    assert!(handled.batch_item_failures.is_empty());

    // The score series is in DynamoDB under the service, through the exactly-once path.
    let series = store.list_series(&service).await.unwrap();
    let score_series = series
        .iter()
        .find(|s| s.key.metric == SCORE_METRIC)
        .unwrap_or_else(|| panic!("no score series among {series:?}"));
    let now = now_unix_s();
    let buckets = store
        .query_buckets(score_series.id, Resolution::OneMinute, now - 600, now + 60)
        .await
        .unwrap();
    let (count, max) = buckets.iter().fold((0, f64::MIN), |(c, m), (_, b)| {
        (c + b.count, m.max(b.finite_max().unwrap_or(f64::MIN)))
    });
    assert_eq!(count, 1, "one score point: {buckets:?}");
    assert_eq!(max, 100.0, "every probe succeeded");

    // The live table's stream (its INSERT records) through the fan-out handler.
    let items = aws_sdk_dynamodb::Client::new(&config)
        .scan()
        .table_name(&tables.live)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items()
        .to_vec();
    let report = handle_bucket_stream(
        store.as_ref(),
        &connections,
        &pusher,
        &live_stream_event(&items),
    )
    .await
    .expect("fan-out handled");
    assert!(report.messages_posted >= 2, "{report:?}");
    let frames: Vec<Value> = pusher.messages_to("watcher");
    let registered = frames
        .iter()
        .find(|f| f["type"] == "registry")
        .unwrap_or_else(|| panic!("no registry frame in {frames:?}"));
    assert_eq!(registered["action"], "registered");
    assert_eq!(registered["service"], service.as_str());
    let scored: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "health" && f["score"].is_number())
        .collect();
    assert_eq!(scored.len(), 1, "{frames:?}");
    assert_eq!(scored[0]["service"], service.as_str());
    assert_eq!(scored[0]["score"], 100.0);
    assert_eq!(scored[0]["inputs"]["probe_availability"], 1.0);

    stream.delete_if_present().await.unwrap();
    delete_tables_if_present(&config, &tables).await.unwrap();
}
