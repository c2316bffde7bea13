//! The AWS path end to end, against emulators (`scripts/emulators.sh start`, then
//! `source "$(scripts/emulators.sh env)"`): an OTLP request through the ingest handler into Kinesis,
//! the shard read back with GetRecords and handed to the aggregator handler as a real Kinesis event,
//! buckets in DynamoDB, read through the query handler, and pushed live through the WebSocket and
//! fan-out handlers. Each test creates its own stream and tables and deletes them at the end.
//!
//! Built only with the `emulator-tests` feature (`scripts/aws-tests.sh`); without emulator endpoints
//! they fail rather than pass unrun.

use std::sync::Arc;

use aws_config::SdkConfig;
use bytes::Bytes;
use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::alerts::RuleSet;
use flowscope_core::auth::ApiKeys;
use flowscope_core::aws::lambda::kinesis::{handle_kinesis_event, handle_kinesis_event_with_live};
use flowscope_core::aws::lambda::snapshot::SnapshotConfig;
use flowscope_core::aws::lambda::streams::handle_bucket_stream;
use flowscope_core::aws::lambda::websocket::{handle_connect, handle_message};
use flowscope_core::aws::{
    delete_tables_if_present, DynamoAlertStore, DynamoConnections, DynamoLiveEvents, DynamoStore,
    DynamoTraceStore, KinesisStream, TableNames,
};
use flowscope_core::http::ApiState;
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::model::{Resolution, Retention, SeriesKey};
use flowscope_core::pipeline::ShardProcessor;
use flowscope_core::ports::{
    ConnectionStore, MetricStore, SeriesCatalog, StreamEntry, StreamRecord, StreamSink,
    StreamSource,
};
use flowscope_core::testing::FailingStore;
use flowscope_integration_tests::events::{
    api_get, bucket_stream_event, dyn_ingest, ingest_function, json_body, kinesis_event,
    live_stream_event, otlp_post, otlp_post_to, query_function, websocket_event,
};
use flowscope_integration_tests::otlp::{gauge_request, two_service_trace_request};
use flowscope_integration_tests::pusher::RecordingPusher;
use flowscope_integration_tests::shard::read_shard;
use flowscope_integration_tests::{
    api_keys, emulators, now_unix_s, stream_and_tables, unique, API_KEY,
};
use serde_json::Value;

const METRIC: &str = "queue.depth";

/// One test's stream, tables and handlers.
struct Pipeline {
    config: SdkConfig,
    stream: Arc<KinesisStream>,
    store: Arc<DynamoStore>,
    tables: TableNames,
    ingest: Arc<Ingest<dyn StreamSink>>,
    keys: ApiKeys,
}

impl Pipeline {
    async fn start(test: &str) -> Option<Pipeline> {
        let config = emulators(test).await?;
        let prefix = unique("flowscope-e2e");
        let (stream, tables) = stream_and_tables(&config, &prefix).await;
        Some(Pipeline {
            store: Arc::new(DynamoStore::new(&config, tables.clone())),
            ingest: Arc::new(dyn_ingest(stream.clone(), IngestLimits::default())),
            stream,
            tables,
            config,
            keys: api_keys(),
        })
    }

    /// One OTLP request of gauge points through the ingest handler; returns the HTTP status.
    async fn send(&self, service: &str, values: &[f64]) -> u16 {
        let body = gauge_request(service, METRIC, values, now_unix_s());
        ingest_function(&self.ingest, &self.keys, otlp_post(&body, Some(API_KEY)))
            .await
            .status()
            .as_u16()
    }

    /// Every record of the stream's shard, read with GetRecords from the oldest, once at least
    /// `expected` are there.
    async fn records(&self, expected: usize) -> Vec<StreamRecord> {
        let shards = self.stream.shard_ids().await.expect("shard ids");
        assert_eq!(shards.len(), 1);
        read_shard(self.stream.as_ref(), &shards[0], expected).await
    }

    /// The query function's router over this test's tables.
    fn api(&self) -> ApiState {
        ApiState::new(
            self.store.clone(),
            Arc::new(DynamoAlertStore::new(
                &self.config,
                self.tables.alerts.clone(),
            )),
            Arc::new(RuleSet::shipped().expect("the shipped rules are valid")),
        )
    }

    fn aggregator<S: MetricStore>(&self, store: Arc<S>) -> Aggregator<S> {
        Aggregator::new(store, Retention::default())
    }

    /// The 1-minute history of `service`'s metric over the last hour, through the query handler.
    async fn history(&self, service: &str) -> Value {
        let now = now_unix_s();
        let query = format!("from={}&to={}&resolution=1m", now - 3600, now + 120);
        let path = format!("/api/services/{service}/metrics/{METRIC}");
        let response =
            query_function(&self.api(), &self.keys, api_get(&path, &query, API_KEY)).await;
        assert_eq!(response.status(), 200, "{}", json_body(&response));
        json_body(&response)
    }

    /// Observations counted for `service` over the last hour (all buckets: a test may straddle
    /// a minute boundary).
    async fn count(&self, service: &str) -> u64 {
        let history = self.history(service).await;
        history["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b["count"].as_u64().expect("count"))
            .sum()
    }

    async fn sum(&self, service: &str) -> f64 {
        let history = self.history(service).await;
        history["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b["sum"].as_f64().expect("sum"))
            .sum()
    }

    async fn finish(self) {
        self.stream
            .delete_if_present()
            .await
            .expect("delete stream");
        delete_tables_if_present(&self.config, &self.tables)
            .await
            .expect("delete tables");
    }
}

fn failed_items(response: &aws_lambda_events::event::streams::KinesisEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn an_otlp_request_reaches_the_query_api_through_kinesis_and_dynamodb() {
    let Some(pipeline) =
        Pipeline::start("an_otlp_request_reaches_the_query_api_through_kinesis_and_dynamodb").await
    else {
        return;
    };
    let service = unique("checkout");
    let values: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(pipeline.send(&service, &values).await, 200);

    let records = pipeline.records(1).await;
    assert!(records.iter().all(|r| r.partition_key == service));
    let response = handle_kinesis_event(
        &pipeline.aggregator(pipeline.store.clone()),
        None,
        kinesis_event(&records),
    )
    .await
    .expect("the aggregator handles the event");
    assert!(failed_items(&response).is_empty(), "nothing to redeliver");

    let history = pipeline.history(&service).await;
    let buckets = history["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 1, "{history}");
    let bucket = &buckets[0];
    assert_eq!(bucket["count"], 10);
    assert_eq!(bucket["sum"], 55.0);
    assert_eq!(bucket["min"], 1.0);
    assert_eq!(bucket["max"], 10.0);
    let p50 = bucket["p50"].as_f64().expect("p50");
    assert!(
        (p50 - 5.0).abs() <= 5.0 * 0.02,
        "p50 {p50} within the sketch's accuracy"
    );
    assert_eq!(history["kind"], "gauge");

    let services = query_function(
        &pipeline.api(),
        &pipeline.keys,
        api_get("/api/services", "", API_KEY),
    )
    .await;
    let listed = json_body(&services);
    assert!(
        listed["services"]
            .as_array()
            .expect("services")
            .iter()
            .any(|s| s["name"] == service.as_str()),
        "{listed}"
    );
    let refused = query_function(
        &pipeline.api(),
        &pipeline.keys,
        api_get("/api/services", "", "wrong-key"),
    )
    .await;
    assert_eq!(refused.status(), 401);
    // The reason and the challenge reach the client (the dashboard shows the reason).
    assert_eq!(
        refused.headers()["www-authenticate"],
        flowscope_core::auth::CHALLENGE
    );
    assert_eq!(json_body(&refused)["error"], "invalid credential");
    pipeline.finish().await;
}

#[tokio::test]
async fn a_redelivered_kinesis_event_counts_every_point_once_and_poison_is_skipped() {
    let Some(pipeline) = Pipeline::start(
        "a_redelivered_kinesis_event_counts_every_point_once_and_poison_is_skipped",
    )
    .await
    else {
        return;
    };
    let service = unique("payments");
    assert_eq!(pipeline.send(&service, &[1.0, 2.0, 3.0]).await, 200);
    // A record that is not a Flowscope record at all, between two good ones.
    pipeline
        .stream
        .put_all(vec![StreamEntry {
            partition_key: service.clone(),
            data: Bytes::from_static(b"not a flowscope record"),
        }])
        .await
        .expect("put the poison record");
    assert_eq!(pipeline.send(&service, &[4.0]).await, 200);

    let event = kinesis_event(&pipeline.records(3).await);
    let aggregator = pipeline.aggregator(pipeline.store.clone());
    for delivery in 1..=2 {
        let response = handle_kinesis_event(&aggregator, None, event.clone())
            .await
            .expect("the aggregator handles the event");
        assert!(
            failed_items(&response).is_empty(),
            "delivery {delivery}: the poison record does not block the shard"
        );
        assert_eq!(pipeline.count(&service).await, 4, "delivery {delivery}");
        assert_eq!(pipeline.sum(&service).await, 10.0, "delivery {delivery}");
    }
    pipeline.finish().await;
}

#[tokio::test]
async fn a_write_failure_mid_batch_is_redelivered_from_its_record_and_counted_exactly_once() {
    let Some(pipeline) = Pipeline::start(
        "a_write_failure_mid_batch_is_redelivered_from_its_record_and_counted_exactly_once",
    )
    .await
    else {
        return;
    };
    let services = [unique("first"), unique("middle"), unique("last")];
    for (i, service) in services.iter().enumerate() {
        let values: Vec<f64> = (0..=i).map(|v| v as f64 + 1.0).collect();
        assert_eq!(pipeline.send(service, &values).await, 200);
    }
    let records = pipeline.records(3).await;
    let middle_record = records
        .iter()
        .find(|r| r.partition_key == services[1])
        .expect("the middle service's record")
        .sequence_number
        .clone();
    // The first 1-minute bucket write of one series fails, as a throttled or unreachable DynamoDB would.
    let flaky = FailingStore::new(pipeline.store.clone());
    let series = SeriesKey {
        service: services[1].clone(),
        metric: METRIC.to_string(),
        attributes: Default::default(),
    }
    .id();
    flaky.fail_series_writes(series, Resolution::OneMinute, 1);
    let aggregator = pipeline.aggregator(flaky.clone());

    let first = handle_kinesis_event(&aggregator, None, kinesis_event(&records))
        .await
        .expect("the aggregator handles the event");
    assert!(
        flaky.calls().injected_failures == 1,
        "the failure was injected"
    );
    assert_eq!(
        failed_items(&first),
        vec![middle_record.to_string()],
        "Lambda is told to restart the shard at the record whose bucket write failed"
    );

    // What Lambda does next: deliver the shard again from that record, the last one included.
    let redelivery: Vec<StreamRecord> = records
        .iter()
        .filter(|r| r.sequence_number >= middle_record)
        .cloned()
        .collect();
    assert_eq!(redelivery.len(), 2);
    let second = handle_kinesis_event(&aggregator, None, kinesis_event(&redelivery))
        .await
        .expect("the aggregator handles the redelivery");
    assert!(failed_items(&second).is_empty());

    for (i, service) in services.iter().enumerate() {
        assert_eq!(
            pipeline.count(service).await,
            i as u64 + 1,
            "{service}: written once although its record was delivered twice"
        );
    }
    pipeline.finish().await;
}

#[tokio::test]
async fn a_written_bucket_is_pushed_to_the_websocket_clients_subscribed_to_its_service() {
    let Some(pipeline) = Pipeline::start(
        "a_written_bucket_is_pushed_to_the_websocket_clients_subscribed_to_its_service",
    )
    .await
    else {
        return;
    };
    let service = unique("search");
    let other_service = unique("billing");
    let connections = DynamoConnections::new(&pipeline.config, &pipeline.tables.connections);
    let pusher = RecordingPusher::with_gone(["vanished"]);

    let refused = handle_connect(
        &connections,
        &pipeline.keys,
        &websocket_event("$connect", "intruder", Some("wrong"), None),
    )
    .await
    .expect("connect handled");
    assert_eq!(refused.status_code, 401);
    assert!(
        format!("{:?}", refused.body).contains("invalid credential"),
        "{:?}",
        refused.body
    );
    for (connection, subscribed_to) in [
        ("watcher", &service),
        ("bystander", &other_service),
        ("vanished", &service),
    ] {
        let connected = handle_connect(
            &connections,
            &pipeline.keys,
            &websocket_event("$connect", connection, Some(API_KEY), None),
        )
        .await
        .expect("connect handled");
        assert_eq!(connected.status_code, 200);
        let subscribe = format!(r#"{{"type":"subscribe","services":["{subscribed_to}"]}}"#);
        handle_message(
            &connections,
            &pusher,
            pipeline.store.as_ref(),
            &SnapshotConfig::default(),
            &websocket_event("subscribe", connection, None, Some(&subscribe)),
        )
        .await
        .expect("subscribe handled");
    }
    assert_eq!(
        pusher.messages_to("watcher")[0]["type"],
        "snapshot",
        "a subscribe is answered with a snapshot (empty: no data yet)"
    );

    assert_eq!(pipeline.send(&service, &[5.0, 7.0]).await, 200);
    let records = pipeline.records(1).await;
    handle_kinesis_event(
        &pipeline.aggregator(pipeline.store.clone()),
        None,
        kinesis_event(&records),
    )
    .await
    .expect("the aggregator handles the event");

    // What DynamoDB Streams would deliver for the write: the bucket item's new image.
    let series = pipeline.store.list_series(&service).await.expect("series");
    let start = Resolution::OneMinute.bucket_start(now_unix_s());
    let dynamodb = aws_sdk_dynamodb::Client::new(&pipeline.config);
    let mut images = Vec::new();
    for bucket_start in [start - 60, start] {
        let item = dynamodb
            .get_item()
            .table_name(&pipeline.tables.buckets)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("{}#1m", series[0].id)),
            )
            .key(
                "start",
                aws_sdk_dynamodb::types::AttributeValue::N(bucket_start.to_string()),
            )
            .send()
            .await
            .expect("GetItem");
        images.extend(item.item().cloned());
    }
    assert_eq!(images.len(), 1, "one 1-minute bucket was written");

    let report = handle_bucket_stream(
        pipeline.store.as_ref(),
        &connections,
        &pusher,
        &bucket_stream_event(&images),
    )
    .await
    .expect("fan-out handled");
    assert_eq!(report.connections_reached, 1);
    assert_eq!(report.gone_removed, 1);

    let updates = pusher.messages_to("watcher");
    let update = updates.last().expect("the watcher got the update");
    assert_eq!(update["type"], "metrics_update");
    assert_eq!(update["updates"][0]["service"], service.as_str());
    assert_eq!(update["updates"][0]["count"], 2);
    assert_eq!(update["updates"][0]["sum"], 12.0);
    assert_eq!(
        pusher.messages_to("bystander").len(),
        1,
        "only its own subscribe reply: not subscribed to this service"
    );
    let subscribers: Vec<String> = connections
        .subscribers(&service)
        .await
        .expect("subscribers")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        subscribers,
        vec!["watcher".to_string()],
        "the connection API Gateway reported gone was forgotten"
    );
    pipeline.finish().await;
}

/// The active-series limit on the AWS path: the ingest function with the DynamoDB admission adapter
/// refuses only the series beyond the limit, in `partial_success`, writes the rest to Kinesis, and the
/// query function's `/api/limits` reports the refusal.
#[tokio::test]
async fn series_beyond_the_limit_are_refused_in_the_partial_success_and_the_rest_is_stored() {
    use flowscope_core::aws::DynamoSeriesAdmission;
    use flowscope_core::cardinality::SeriesLimits;
    use flowscope_integration_tests::otlp::gauge_request_per_route;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use prost::Message as _;

    let Some(pipeline) = Pipeline::start(
        "series_beyond_the_limit_are_refused_in_the_partial_success_and_the_rest_is_stored",
    )
    .await
    else {
        return;
    };
    let limits = SeriesLimits {
        max_series_per_metric: 3,
        ..SeriesLimits::default()
    };
    let admission = Arc::new(DynamoSeriesAdmission::new(
        &pipeline.config,
        pipeline.tables.state.clone(),
        limits,
    ));
    let ingest = Arc::new(
        dyn_ingest(pipeline.stream.clone(), IngestLimits::default())
            .with_series_admission(admission.clone()),
    );
    let service = unique("exploding");

    // Five routes of one metric, one point each: three series fit, two are refused.
    let body = gauge_request_per_route(&service, METRIC, 5, 1, now_unix_s());
    let response = ingest_function(&ingest, &pipeline.keys, otlp_post(&body, Some(API_KEY))).await;
    assert_eq!(response.status(), 200);
    let answer =
        ExportMetricsServiceResponse::decode(response.body().as_ref()).expect("an OTLP response");
    let partial = answer.partial_success.expect("the refusal is named");
    assert_eq!(partial.rejected_data_points, 2, "{partial:?}");
    assert!(
        partial.error_message.contains(METRIC) && partial.error_message.contains("limit of 3"),
        "{}",
        partial.error_message
    );

    // Only the admitted series reach the stream, the aggregator and the store.
    let records = pipeline.records(1).await;
    let response = handle_kinesis_event(
        &pipeline.aggregator(pipeline.store.clone()),
        None,
        kinesis_event(&records),
    )
    .await
    .expect("the aggregator handles the event");
    assert!(failed_items(&response).is_empty());
    assert_eq!(
        pipeline.count(&service).await,
        3,
        "three series, one point each"
    );

    // The same request again: the three known series pass, the two new ones are refused again.
    let response = ingest_function(&ingest, &pipeline.keys, otlp_post(&body, Some(API_KEY))).await;
    let answer = ExportMetricsServiceResponse::decode(response.body().as_ref()).expect("OTLP");
    assert_eq!(
        answer
            .partial_success
            .expect("refused")
            .rejected_data_points,
        2
    );

    // The query function reports the refusals per service and metric.
    let api = pipeline.api().with_series_admission(admission);
    let response = query_function(&api, &pipeline.keys, api_get("/api/limits", "", API_KEY)).await;
    assert_eq!(response.status(), 200);
    let limits = json_body(&response);
    let refusal = limits["refusals"]
        .as_array()
        .expect("refusals")
        .iter()
        .find(|r| r["service"] == service.as_str())
        .unwrap_or_else(|| panic!("no refusal for {service}: {limits}"))
        .clone();
    assert_eq!(refusal["metric"], METRIC);
    assert_eq!(refusal["refused_points"], 4, "{refusal}");
    pipeline.finish().await;
}

/// Connects `connection` and subscribes it to `services` (with `last_seq` when given), as the
/// ws-connect and ws-message functions do.
async fn connect_and_subscribe(
    pipeline: &Pipeline,
    connections: &DynamoConnections,
    pusher: &RecordingPusher,
    connection: &str,
    services: &[&str],
    last_seq: Option<u64>,
) {
    let connected = handle_connect(
        connections,
        &pipeline.keys,
        &websocket_event("$connect", connection, Some(API_KEY), None),
    )
    .await
    .expect("connect handled");
    assert_eq!(connected.status_code, 200);
    let subscribe = serde_json::json!({
        "type": "subscribe",
        "services": services,
        "last_seq": last_seq,
    })
    .to_string();
    handle_message(
        connections,
        pusher,
        pipeline.store.as_ref(),
        &SnapshotConfig::default(),
        &websocket_event("subscribe", connection, None, Some(&subscribe)),
    )
    .await
    .expect("subscribe handled");
}

/// Every item of the live table (what its stream would deliver as INSERT records).
async fn live_items(
    pipeline: &Pipeline,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&pipeline.config)
        .scan()
        .table_name(&pipeline.tables.live)
        .consistent_read(true)
        .send()
        .await
        .expect("Scan of the live table")
        .items()
        .to_vec()
}

/// Issue 12 item 3: a kept trace reaches the browser on AWS as local mode sends it — an SDK-shaped
/// two-service trace through the ingest handler, Kinesis, the aggregator handler (which writes
/// the kept trace's event to the live table), DynamoDB and the fan-out handler fed that table's
/// stream records, to a subscribed WebSocket connection as a `trace` frame.
#[tokio::test]
async fn a_kept_trace_reaches_a_subscribed_websocket_client_as_a_trace_frame() {
    let Some(pipeline) =
        Pipeline::start("a_kept_trace_reaches_a_subscribed_websocket_client_as_a_trace_frame")
            .await
    else {
        return;
    };
    let frontend = unique("frontend");
    let checkout = unique("checkout");
    let connections = DynamoConnections::new(&pipeline.config, &pipeline.tables.connections);
    let pusher = RecordingPusher::default();
    connect_and_subscribe(
        &pipeline,
        &connections,
        &pusher,
        "watcher",
        &[&checkout],
        None,
    )
    .await;
    let elsewhere = unique("billing");
    connect_and_subscribe(
        &pipeline,
        &connections,
        &pusher,
        "bystander",
        &[&elsewhere],
        None,
    )
    .await;

    let trace_id: [u8; 16] = rand::random();
    let end_ns = u64::try_from(now_unix_s()).unwrap() * 1_000_000_000;
    let body = two_service_trace_request(&frontend, &checkout, trace_id, end_ns);
    let response = ingest_function(
        &pipeline.ingest,
        &pipeline.keys,
        otlp_post_to("/v1/traces", &body, Some(API_KEY)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let records = pipeline.records(1).await;

    let processor = ShardProcessor::new(
        pipeline.store.clone(),
        Arc::new(DynamoTraceStore::new(
            &pipeline.config,
            pipeline.tables.traces.clone(),
        )),
        Retention::default(),
    );
    let live = DynamoLiveEvents::new(&pipeline.config, pipeline.tables.live.clone());
    let handled =
        handle_kinesis_event_with_live(&processor, None, Some(&live), kinesis_event(&records))
            .await
            .expect("the aggregator handles the spans");
    assert!(handled.batch_item_failures.is_empty());
    let items = live_items(&pipeline).await;
    assert_eq!(items.len(), 1, "one live item for the batch's trace events");

    // The same batch delivered again (a retry) applies nothing and posts no second trace.
    handle_kinesis_event_with_live(&processor, None, Some(&live), kinesis_event(&records))
        .await
        .expect("the redelivery is handled");
    assert_eq!(
        live_items(&pipeline).await.len(),
        1,
        "no duplicate live item"
    );

    let report = handle_bucket_stream(
        pipeline.store.as_ref(),
        &connections,
        &pusher,
        &live_stream_event(&items),
    )
    .await
    .expect("fan-out handled");
    assert_eq!(report.connections_reached, 1, "{report:?}");

    let messages = pusher.messages_to("watcher");
    let frame = messages.last().expect("the watcher got a message");
    assert_eq!(frame["type"], "trace", "{frame}");
    assert!(frame["seq"].as_u64().is_some(), "{frame}");
    let traces = frame["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 1, "{frame}");
    let trace = &traces[0];
    let hex_id: String = trace_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(trace["trace_id"], hex_id.as_str());
    assert_eq!(trace["root_service"], frontend.as_str());
    assert_eq!(trace["root_name"], "GET /checkout");
    assert_eq!(trace["reason"], "quota", "the first trace of the minute");
    let hop = &trace["hops"][0];
    assert_eq!(
        (
            hop["from"].as_str(),
            hop["to"].as_str(),
            hop["kind"].as_str()
        ),
        (
            Some(frontend.as_str()),
            Some(checkout.as_str()),
            Some("call")
        ),
        "{trace}"
    );
    // The same JSON local mode sends: it reads back as the core's `trace` message.
    let parsed: flowscope_core::live::ServerMessage =
        serde_json::from_value(frame.clone()).expect("a ServerMessage");
    assert!(matches!(
        parsed,
        flowscope_core::live::ServerMessage::Trace { .. }
    ));
    assert_eq!(
        pusher.messages_to("bystander").len(),
        1,
        "only its own snapshot: the trace does not touch its service"
    );
    pipeline.finish().await;
}

/// Issue 12 item 3: a subscribe on AWS after data was aggregated is answered with a real snapshot
/// of the subscribed service's newest 1-minute buckets read from DynamoDB; a resubscribe with
/// `last_seq` gets what was written since then; one with a `last_seq` the store cannot answer for
/// gets the snapshot.
#[tokio::test]
async fn a_subscribe_after_data_was_aggregated_gets_a_snapshot_and_a_resume_what_changed() {
    let Some(pipeline) = Pipeline::start(
        "a_subscribe_after_data_was_aggregated_gets_a_snapshot_and_a_resume_what_changed",
    )
    .await
    else {
        return;
    };
    let service = unique("search");
    let other = unique("billing");
    assert_eq!(pipeline.send(&service, &[5.0, 7.0]).await, 200);
    assert_eq!(pipeline.send(&other, &[1.0]).await, 200);
    let records = pipeline.records(2).await;
    handle_kinesis_event(
        &pipeline.aggregator(pipeline.store.clone()),
        None,
        kinesis_event(&records),
    )
    .await
    .expect("aggregated");

    let connections = DynamoConnections::new(&pipeline.config, &pipeline.tables.connections);
    let pusher = RecordingPusher::default();
    connect_and_subscribe(&pipeline, &connections, &pusher, "late", &[&service], None).await;
    let messages = pusher.messages_to("late");
    assert_eq!(messages.len(), 1, "{messages:?}");
    let snapshot = &messages[0];
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(
        (snapshot["part"].as_u64(), snapshot["parts"].as_u64()),
        (Some(1), Some(1))
    );
    let updates = snapshot["updates"].as_array().expect("updates");
    assert!(!updates.is_empty(), "a non-empty snapshot: {snapshot}");
    for update in updates {
        assert_eq!(
            update["service"],
            service.as_str(),
            "only the subscribed service"
        );
        assert_eq!(update["metric"], METRIC);
        assert_eq!(update["resolution"], "1m");
    }
    let counted: u64 = updates.iter().map(|u| u["count"].as_u64().unwrap()).sum();
    let summed: f64 = updates.iter().map(|u| u["sum"].as_f64().unwrap()).sum();
    assert_eq!((counted, summed), (2, 12.0), "{snapshot}");
    let seq = snapshot["seq"].as_u64().expect("seq");

    // More data, then the client comes back with the seq it last saw: a catch-up of what changed.
    assert_eq!(pipeline.send(&service, &[1.0]).await, 200);
    let all = pipeline.records(3).await;
    handle_kinesis_event(
        &pipeline.aggregator(pipeline.store.clone()),
        None,
        kinesis_event(&all[records.len()..]),
    )
    .await
    .expect("aggregated");
    connect_and_subscribe(
        &pipeline,
        &connections,
        &pusher,
        "back",
        &[&service],
        Some(seq),
    )
    .await;
    let catch_up = pusher.messages_to("back").pop().expect("a reply");
    assert_eq!(catch_up["type"], "metrics_update", "{catch_up}");
    let updates = catch_up["updates"].as_array().expect("updates");
    let counted: u64 = updates.iter().map(|u| u["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 3, "the changed bucket's new totals: {catch_up}");

    // A sequence number that is no time of this deployment (local mode's counter, say): snapshot.
    connect_and_subscribe(
        &pipeline,
        &connections,
        &pusher,
        "stranger",
        &[&service],
        Some(42),
    )
    .await;
    let reply = pusher.messages_to("stranger").pop().expect("a reply");
    assert_eq!(reply["type"], "snapshot", "{reply}");
    pipeline.finish().await;
}

/// Issue 16's misbehaving key beside a well-behaved one, through the ingest function, Kinesis, the
/// aggregator function and DynamoDB: the key at ten times its rate gets 429 with `Retry-After` for
/// its excess, everything it was answered 200 for is stored, and the other key's data arrives whole.
#[tokio::test]
async fn a_key_over_its_rate_is_refused_with_429_and_a_well_behaved_key_arrives_complete() {
    use flowscope_core::key_limits::{KeyLimiter, KeyLimits};

    let Some(pipeline) = Pipeline::start(
        "a_key_over_its_rate_is_refused_with_429_and_a_well_behaved_key_arrives_complete",
    )
    .await
    else {
        return;
    };
    const NOISY_KEY: &str = "flowscope-integration-noisy-key";
    let keys = ApiKeys::from_clear_keys([API_KEY, NOISY_KEY]);
    // 100 points/s per key, as the ingest function reads it from its environment.
    let limits = KeyLimits::default()
        .with_env(|name| (name == "KEY_POINTS_PER_SECOND").then(|| "100".to_string()))
        .expect("valid limits");
    let ingest = Arc::new(
        dyn_ingest(pipeline.stream.clone(), IngestLimits::default())
            .with_key_limits(Arc::new(KeyLimiter::new(limits, 50))),
    );
    let noisy = unique("noisy");
    let good = unique("good");
    let values = |n: usize| (0..n).map(|i| i as f64).collect::<Vec<f64>>();

    // The noisy key offers 1,000 points at once (20 requests of 50): ten times its rate. The good
    // key sends 5 requests of 10 points between them, well inside its own limit.
    let (mut noisy_accepted, mut noisy_refused, mut requests_ok) = (0u64, 0u64, 0usize);
    for i in 0..20 {
        let body = gauge_request(&noisy, METRIC, &values(50), now_unix_s());
        let response = ingest_function(&ingest, &keys, otlp_post(&body, Some(NOISY_KEY))).await;
        match response.status().as_u16() {
            200 => {
                noisy_accepted += 50;
                requests_ok += 1;
            }
            429 => {
                noisy_refused += 50;
                let retry_after: u64 = response.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("whole seconds");
                assert!(retry_after >= 1);
            }
            other => panic!("noisy request {i}: {other}"),
        }
        if i % 4 == 0 {
            let body = gauge_request(&good, METRIC, &values(10), now_unix_s());
            let response = ingest_function(&ingest, &keys, otlp_post(&body, Some(API_KEY))).await;
            assert_eq!(
                response.status(),
                200,
                "the well-behaved key is never refused"
            );
            requests_ok += 1;
        }
    }
    assert!(
        noisy_refused >= 500,
        "most of the noisy key's excess is refused (accepted {noisy_accepted}, refused {noisy_refused})"
    );
    assert!(noisy_accepted >= 50, "its share within the limit is taken");

    let records = pipeline.records(requests_ok).await;
    let response = handle_kinesis_event(
        &pipeline.aggregator(pipeline.store.clone()),
        None,
        kinesis_event(&records),
    )
    .await
    .expect("the aggregator handles the event");
    assert!(failed_items(&response).is_empty());
    assert_eq!(
        pipeline.count(&good).await,
        50,
        "every point of the good key"
    );
    assert_eq!(
        pipeline.count(&noisy).await,
        noisy_accepted,
        "every point the noisy key was answered 200 for, and none it was refused"
    );
    pipeline.finish().await;
}
