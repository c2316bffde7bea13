//! Every file in `events/` (the sample events `sam local invoke -e` and `cargo lambda invoke
//! --data-file` take) through the handler its function's `main` wires up, against the emulators
//! (`scripts/aws-tests.sh`): a sample that no longer parses, or that its handler answers with an
//! error, fails here.
//!
//! Order follows the data: the ingest request puts points on Kinesis, the aggregator folds a Kinesis
//! batch into DynamoDB, a WebSocket client connects and subscribes, the fan-out pushes a bucket
//! change to it, the query API lists the service, the scheduled alerts run, the client disconnects.
//!
//! `aggregator.json` and `fanout.json` hold encoded records and bucket images: after a change to the
//! record or bucket encoding, rewrite them from `ingest.json` with
//! `FLOWSCOPE_WRITE_EVENTS=1 scripts/aws-tests.sh` (this test then writes them before reading them).
//!
//! Built only with the `emulator-tests` feature; without emulator endpoints it fails rather than
//! passes unrun.

use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use flowscope_core::alerts::{webhook, AlertEngine, Dispatcher, RuleSet};
use flowscope_core::auth::ApiKeys;
use flowscope_core::aws::lambda::alerts::evaluate_and_notify;
use flowscope_core::aws::lambda::kinesis::handle_kinesis_event;
use flowscope_core::aws::lambda::snapshot::SnapshotConfig;
use flowscope_core::aws::lambda::streams::handle_bucket_stream;
use flowscope_core::aws::lambda::websocket::{handle_connect, handle_disconnect, handle_message};
use flowscope_core::aws::{
    delete_tables_if_present, DynamoAlertStore, DynamoConnections, DynamoRegistryStore,
    DynamoStore, DynamoTraceStore,
};
use flowscope_core::http::ApiState;
use flowscope_core::ingest::IngestLimits;
use flowscope_core::model::{Resolution, Retention};
use flowscope_core::pipeline::ShardProcessor;
use flowscope_core::ports::{ConnectionStore, SeriesCatalog, StreamSource};
use flowscope_core::probing::{probe_rounds, Prober};
use flowscope_core::registry::probe::ProbeSettings;
use flowscope_core::registry::{Registration, Registry, RegistryLimits};
use flowscope_integration_tests::events::{
    bucket_stream_event, dyn_ingest, ingest_function, json_body, kinesis_event, query_function,
};
use flowscope_integration_tests::pusher::RecordingPusher;
use flowscope_integration_tests::shard::read_shard;
use flowscope_integration_tests::{emulators, now_unix_s, stream_and_tables, unique};
use serde_json::Value;

/// The development key the samples carry (`localstack/init/ready.d` stores its hash).
const DEV_KEY: &str = "flowscope-dev-key";
/// The service the samples' points come from.
const SERVICE: &str = "checkout";

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read_event(name: &str) -> String {
    let path = events_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&read_event(name))
        .unwrap_or_else(|e| panic!("events/{name} is not the event its function takes: {e}"))
}

/// `events/ingest.json` with its points stamped now, as a fresh export would be (the file's own
/// timestamps age out of the retention window; the shape is fed unchanged).
fn fresh_ingest_request() -> lambda_http::Request {
    let mut event: Value = serde_json::from_str(&read_event("ingest.json")).expect("JSON");
    let mut body: Value =
        serde_json::from_str(event["body"].as_str().expect("a text body")).expect("OTLP/JSON");
    let now_ns = u64::try_from(now_unix_s()).expect("after 1970") * 1_000_000_000;
    let points = body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"]
        .as_array_mut()
        .expect("gauge points");
    let first = points[0]["timeUnixNano"]
        .as_str()
        .and_then(|t| t.parse::<u64>().ok())
        .expect("timeUnixNano");
    for point in points.iter_mut() {
        let t: u64 = point["timeUnixNano"]
            .as_str()
            .expect("t")
            .parse()
            .expect("t");
        point["timeUnixNano"] = Value::String((now_ns - 30_000_000_000 + (t - first)).to_string());
    }
    let text = body.to_string();
    event["headers"]["content-length"] = Value::String(text.len().to_string());
    event["body"] = Value::String(text);
    lambda_http::request::from_str(&event.to_string())
        .expect("events/ingest.json is an HTTP API v2 event")
}

fn write_event(name: &str, event: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(event).expect("serialize");
    std::fs::write(events_dir().join(name), text + "\n").expect("write the event");
}

#[tokio::test]
async fn every_sample_event_is_handled_by_its_functions_handler() {
    let Some(config) = emulators("every_sample_event_is_handled_by_its_functions_handler").await
    else {
        return;
    };
    let prefix = unique("flowscope-events");
    let (stream, tables) = stream_and_tables(&config, &prefix).await;
    let keys = ApiKeys::from_clear_keys([DEV_KEY]);
    let store = Arc::new(DynamoStore::new(&config, tables.clone()));
    let traces = Arc::new(DynamoTraceStore::new(&config, tables.traces.clone()));
    let aggregator = ShardProcessor::new(store.clone(), traces, Retention::default());
    let write = std::env::var("FLOWSCOPE_WRITE_EVENTS").is_ok_and(|v| v == "1");

    // ingest.json → the ingest function: 200, both points accepted, on the stream.
    let ingest = Arc::new(dyn_ingest(stream.clone(), IngestLimits::default()));
    let response = ingest_function(&ingest, &keys, fresh_ingest_request()).await;
    let body = String::from_utf8_lossy(response.body().as_ref()).to_string();
    assert_eq!(response.status(), 200, "{body}");
    assert!(!body.contains("rejected"), "no point refused: {body}");
    assert_eq!(ingest.stats().accepted_data_points, 2);
    let shard = stream.shard_ids().await.expect("shards").remove(0);
    let records = read_shard(stream.as_ref(), &shard, 1).await;
    if write {
        write_event("aggregator.json", &kinesis_event(&records));
    }

    // What the stream holds now, then aggregator.json → the aggregator function: no failed item.
    let fresh = handle_kinesis_event(&aggregator, None, kinesis_event(&records))
        .await
        .expect("the aggregator handles the fresh batch");
    assert!(fresh.batch_item_failures.is_empty());
    let sample: KinesisEvent = parse("aggregator.json");
    assert!(
        !sample.records.is_empty(),
        "events/aggregator.json has records"
    );
    let response = handle_kinesis_event(&aggregator, None, sample)
        .await
        .expect("the aggregator handles events/aggregator.json");
    assert!(
        response.batch_item_failures.is_empty(),
        "events/aggregator.json decodes and applies: {:?}",
        response.batch_item_failures
    );
    let series = store.list_series(SERVICE).await.expect("series");
    assert_eq!(series.len(), 1, "one series of {SERVICE}: {series:?}");

    // ws-connect.json, ws-message.json → the WebSocket functions: connected, subscribed, snapshot.
    let connections = DynamoConnections::new(&config, &tables.connections);
    let pusher = RecordingPusher::default();
    let connect: ApiGatewayWebsocketProxyRequest = parse("ws-connect.json");
    let connection = connect
        .request_context
        .connection_id
        .clone()
        .expect("a connection id");
    let connected = handle_connect(&connections, &keys, &connect)
        .await
        .expect("$connect handled");
    assert_eq!(connected.status_code, 200, "{:?}", connected.body);
    let message: ApiGatewayWebsocketProxyRequest = parse("ws-message.json");
    let replied = handle_message(
        &connections,
        &pusher,
        store.as_ref(),
        &SnapshotConfig::default(),
        &message,
    )
    .await
    .expect("subscribe handled");
    assert_eq!(replied.status_code, 200, "{:?}", replied.body);
    let snapshot = &pusher.messages_to(&connection)[0];
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(
        snapshot["updates"][0]["service"], SERVICE,
        "the data just aggregated is in the snapshot: {snapshot}"
    );

    // fanout.json → the fan-out function: the bucket change reaches the subscribed connection.
    if write {
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let start = Resolution::OneMinute.bucket_start(now_unix_s());
        let mut images = Vec::new();
        for bucket_start in [start - 60, start] {
            let item = dynamodb
                .get_item()
                .table_name(&tables.buckets)
                .key("pk", AttributeValue::S(format!("{}#1m", series[0].id)))
                .key("start", AttributeValue::N(bucket_start.to_string()))
                .send()
                .await
                .expect("GetItem");
            images.extend(item.item().cloned());
        }
        write_event("fanout.json", &bucket_stream_event(&images));
    }
    let change: DynamoDbEvent = parse("fanout.json");
    let report = handle_bucket_stream(store.as_ref(), &connections, &pusher, &change)
        .await
        .expect("events/fanout.json handled");
    assert_eq!(report.connections_reached, 1, "{report:?}");
    let update = pusher.messages_to(&connection).pop().expect("an update");
    assert_eq!(update["type"], "metrics_update", "{update}");
    assert_eq!(update["updates"][0]["service"], SERVICE, "{update}");

    // query.json → the query function: the service is listed.
    let api = ApiState::new(
        store.clone(),
        Arc::new(DynamoAlertStore::new(&config, tables.alerts.clone())),
        Arc::new(RuleSet::shipped().expect("the shipped rules are valid")),
    );
    let request = lambda_http::request::from_str(&read_event("query.json"))
        .expect("events/query.json is an HTTP API v2 event");
    let response = query_function(&api, &keys, request).await;
    assert_eq!(response.status(), 200, "{}", json_body(&response));
    assert!(
        json_body(&response).to_string().contains(SERVICE),
        "{SERVICE} is listed: {}",
        json_body(&response)
    );

    // alerts.json → the alerts function: a scheduled event; the shipped rules evaluate.
    let _scheduled: EventBridgeEvent<Value> = parse("alerts.json");
    let rules = Arc::new(RuleSet::shipped().expect("the shipped rules are valid"));
    let alert_store = Arc::new(DynamoAlertStore::new(&config, tables.alerts.clone()));
    let sinks = webhook::http_sinks(&rules.notifications, |_| None).expect("optional sinks");
    let dispatcher = Dispatcher::new(alert_store.clone(), sinks, &rules.notifications);
    let engine = AlertEngine::new(store.clone(), alert_store, rules);
    let report = evaluate_and_notify(&engine, &dispatcher, &connections, &pusher, now_unix_s())
        .await
        .expect("the alerts run");
    assert_eq!(report.rules_failed, 0, "{report:?}");

    // probe.json → the probe function: a scheduled event; one round probes every registered
    // instance with a health URL and writes the results into Kinesis through the receiver.
    let _scheduled: EventBridgeEvent<Value> = parse("probe.json");
    let registry = Registry::new(
        Arc::new(DynamoRegistryStore::new(&config, &tables.registry)),
        RegistryLimits::default(),
    );
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        drop(listener);
        format!("http://{addr}/healthz")
    };
    let registration = Registration {
        service: SERVICE.to_string(),
        instance: "probe-1".to_string(),
        version: None,
        host: None,
        metadata: Default::default(),
        health_url: Some(dead),
        metrics_url: None,
        lease_seconds: Some(600),
    };
    registry
        .register(&registration, now_unix_s())
        .await
        .expect("register");
    let prober = Prober::new(ProbeSettings::default()).expect("a probe client");
    let reports = probe_rounds(
        &registry,
        &prober,
        ingest.as_ref(),
        1,
        std::time::Duration::ZERO,
        now_unix_s,
    )
    .await;
    let report = reports[0].as_ref().expect("the probe round ran");
    assert_eq!(
        (report.probed, report.up, report.ingest_status),
        (1, 0, 200)
    );

    // scraper.json → the scraper function takes the same scheduled event (its handler against the
    // emulators: tests/e2e/scraper_function.rs).
    let _scheduled: EventBridgeEvent<Value> = parse("scraper.json");

    // ws-disconnect.json → the disconnect function: the subscription is gone.
    let disconnect: ApiGatewayWebsocketProxyRequest = parse("ws-disconnect.json");
    let gone = handle_disconnect(&connections, &disconnect)
        .await
        .expect("$disconnect handled");
    assert_eq!(gone.status_code, 200);
    assert!(
        connections
            .subscribers(SERVICE)
            .await
            .expect("subscribers")
            .is_empty(),
        "the disconnected client is no longer subscribed"
    );

    stream.delete_if_present().await.expect("delete stream");
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete tables");
}
