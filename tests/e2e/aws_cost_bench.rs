//! Benchmark, prints numbers (run with `--ignored --nocapture` against the emulators): what the AWS
//! path costs per million data points — Kinesis records and bytes, DynamoDB bucket writes, series and
//! state writes — plus handler throughput on the emulators (emulator speed, not AWS speed).

use std::sync::Arc;
use std::time::Instant;

use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::aws::dynamodb::decode_trace_item;
use flowscope_core::aws::lambda::kinesis::{handle_kinesis_event, handle_kinesis_event_with_live};
use flowscope_core::aws::lambda::streams::handle_bucket_stream;
use flowscope_core::aws::{
    delete_tables_if_present, DynamoConnections, DynamoLiveEvents, DynamoStore, DynamoTraceStore,
};
use flowscope_core::ingest::IngestLimits;
use flowscope_core::model::Retention;
use flowscope_core::pipeline::ShardProcessor;
use flowscope_core::ports::{ConnectionStore, StreamSource, Subscription};
use flowscope_core::testing::FailingStore;
use flowscope_integration_tests::events::{
    dyn_ingest, ingest_function, kinesis_event, live_stream_event, otlp_post, otlp_post_to,
};
use flowscope_integration_tests::otlp::{chain_traces_request, gauge_request_per_route};
use flowscope_integration_tests::pusher::RecordingPusher;
use flowscope_integration_tests::shard::read_shard;
use flowscope_integration_tests::{
    api_keys, emulators, now_unix_s, stream_and_tables, unique, API_KEY,
};

const SERVICES: usize = 8;
const REQUESTS: usize = 200;
const ROUTES: usize = 20;
const POINTS_PER_ROUTE: usize = 25;
/// Records per aggregator invocation: roughly one second of this load on one shard.
const RECORDS_PER_BATCH: usize = 100;

fn per_million(count: u64, points: u64) -> f64 {
    count as f64 * 1_000_000.0 / points as f64
}

#[tokio::test]
#[ignore = "benchmark: prints numbers; needs the emulators"]
async fn aws_calls_and_bytes_per_million_points() {
    let Some(config) = emulators("aws_calls_and_bytes_per_million_points").await else {
        return;
    };
    let prefix = unique("flowscope-bench");
    let (stream, tables) = stream_and_tables(&config, &prefix).await;
    let keys = api_keys();
    let ingest = Arc::new(dyn_ingest(stream.clone(), IngestLimits::default()));

    let started = Instant::now();
    let now = now_unix_s();
    for request in 0..REQUESTS {
        let service = format!("bench-{}", request % SERVICES);
        let body = gauge_request_per_route(&service, "latency", ROUTES, POINTS_PER_ROUTE, now);
        let response = ingest_function(&ingest, &keys, otlp_post(&body, Some(API_KEY))).await;
        assert_eq!(response.status(), 200);
    }
    let ingest_time = started.elapsed();
    let sent = ingest.stats();
    let points = sent.accepted_data_points;

    let shard = stream.shard_ids().await.expect("shards").remove(0);
    let records = read_shard(stream.as_ref(), &shard, sent.stream_records as usize).await;

    // Counts the store calls that cost DynamoDB writes.
    let store = FailingStore::new(Arc::new(DynamoStore::new(&config, tables.clone())));
    let aggregator = Aggregator::new(store.clone(), Retention::default());
    let started = Instant::now();
    let mut invocations = 0;
    for batch in records.chunks(RECORDS_PER_BATCH) {
        let response = handle_kinesis_event(&aggregator, None, kinesis_event(batch))
            .await
            .expect("aggregate");
        assert!(response.batch_item_failures.is_empty());
        invocations += 1;
    }
    let aggregate_time = started.elapsed();

    let calls = store.calls();
    println!(
        "AWS cost per million points ({points} gauge points, {REQUESTS} OTLP requests, \
         {SERVICES} services x {ROUTES} series, {invocations} aggregator invocations of <= {RECORDS_PER_BATCH} records)"
    );
    println!(
        "  Kinesis:  {} records, {} bytes -> {:.0} records and {:.1} MB per million points ({:.1} bytes/point)",
        sent.stream_records,
        sent.stream_bytes,
        per_million(sent.stream_records, points),
        per_million(sent.stream_bytes, points) / 1e6,
        sent.stream_bytes as f64 / points as f64
    );
    println!(
        "  DynamoDB: {} bucket writes (1 consistent GetItem + 1 conditional PutItem each) -> {:.0} per million points",
        calls.applied,
        per_million(calls.applied, points)
    );
    println!(
        "            {} series upserts, {} state items -> {:.0} and {:.0} per million points",
        calls.series_upserted,
        calls.state_items_saved,
        per_million(calls.series_upserted, points),
        per_million(calls.state_items_saved, points)
    );
    println!(
        "  Throughput on the emulators: ingest {:.0} points/s (kinesis-mock), aggregate {:.0} points/s (DynamoDB Local)",
        points as f64 / ingest_time.as_secs_f64(),
        points as f64 / aggregate_time.as_secs_f64()
    );

    stream.delete_if_present().await.expect("delete stream");
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete tables");
}

const TRACE_SERVICES: usize = 5;
const TRACES_PER_REQUEST: usize = 50;
const TRACE_REQUESTS: usize = 40;

/// Benchmark, prints numbers: what the live `trace` events cost on AWS per million spans — live-table
/// items and their write units, and `trace` messages posted per subscribed client — for traces of
/// five services (9 spans each) under the default sampling, each aggregator invocation's items fed to
/// the fan-out handler as its stream would (one invocation per item: the worst case of the 1 s window).
#[tokio::test]
#[ignore = "benchmark: prints numbers; needs the emulators"]
async fn live_trace_events_per_million_spans() {
    let Some(config) = emulators("live_trace_events_per_million_spans").await else {
        return;
    };
    let prefix = unique("flowscope-bench");
    let (stream, tables) = stream_and_tables(&config, &prefix).await;
    let keys = api_keys();
    let ingest = Arc::new(dyn_ingest(stream.clone(), IngestLimits::default()));
    let services: Vec<String> = (0..TRACE_SERVICES)
        .map(|i| format!("{prefix}-svc{i}"))
        .collect();
    let end_ns = u64::try_from(now_unix_s()).unwrap_or(0) * 1_000_000_000;
    let first_id: u128 = rand::random::<u64>() as u128;
    for request in 0..TRACE_REQUESTS {
        let body = chain_traces_request(
            &services,
            first_id + (request * TRACES_PER_REQUEST) as u128,
            TRACES_PER_REQUEST,
            end_ns,
        );
        let response = ingest_function(
            &ingest,
            &keys,
            otlp_post_to("/v1/traces", &body, Some(API_KEY)),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let sent = ingest.stats();
    let spans = (TRACE_REQUESTS * TRACES_PER_REQUEST * (2 * TRACE_SERVICES - 1)) as u64;
    let shard = stream.shard_ids().await.expect("shards").remove(0);
    let records = read_shard(stream.as_ref(), &shard, sent.stream_records as usize).await;

    let store = Arc::new(DynamoStore::new(&config, tables.clone()));
    let processor = ShardProcessor::new(
        store.clone(),
        Arc::new(DynamoTraceStore::new(&config, tables.traces.clone())),
        Retention::default(),
    );
    let live = DynamoLiveEvents::new(&config, tables.live.clone());
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let connections = DynamoConnections::new(&config, &tables.connections);
    connections
        .put_connection("dashboard", "bench", now_unix_s() + 3600)
        .await
        .expect("connection");
    connections
        .set_subscription("dashboard", &Subscription::default(), now_unix_s() + 3600)
        .await
        .expect("subscription");
    let pusher = RecordingPusher::default();
    let (mut invocations, mut items, mut write_units, mut item_bytes, mut events) = (0, 0, 0, 0, 0);
    let mut seen = std::collections::HashSet::new();
    for batch in records.chunks(RECORDS_PER_BATCH) {
        let response =
            handle_kinesis_event_with_live(&processor, None, Some(&live), kinesis_event(batch))
                .await
                .expect("aggregate");
        assert!(response.batch_item_failures.is_empty());
        invocations += 1;
        let scanned = dynamodb
            .scan()
            .table_name(&tables.live)
            .consistent_read(true)
            .send()
            .await
            .expect("scan");
        let new: Vec<_> = scanned
            .items()
            .iter()
            .filter(|item| seen.insert(format!("{:?}", item.get("pk"))))
            .cloned()
            .collect();
        for item in &new {
            // DynamoDB's item size: attribute names plus values (numbers ~ digits / 2 + 1).
            let size: usize = item
                .iter()
                .map(|(name, value)| {
                    name.len()
                        + match value {
                            aws_sdk_dynamodb::types::AttributeValue::S(s) => s.len(),
                            aws_sdk_dynamodb::types::AttributeValue::N(n) => n.len() / 2 + 1,
                            _ => 0,
                        }
                })
                .sum();
            item_bytes += size;
            write_units += size.div_ceil(1024);
            events += decode_trace_item(item).expect("a trace item").len();
        }
        items += new.len();
        if !new.is_empty() {
            handle_bucket_stream(
                store.as_ref(),
                &connections,
                &pusher,
                &live_stream_event(&new),
            )
            .await
            .expect("fan-out");
        }
    }
    let messages = pusher.messages_to("dashboard");
    let message_bytes: usize = messages.iter().map(|m| m.to_string().len()).sum();
    println!(
        "Live trace events per million spans ({spans} spans = {} traces of {TRACE_SERVICES} services, \
         {invocations} aggregator invocations of <= {RECORDS_PER_BATCH} records, default sampling)",
        TRACE_REQUESTS * TRACES_PER_REQUEST
    );
    println!(
        "  kept-trace events: {events} -> {:.0} per million spans ({:.0} bytes of item per event)",
        per_million(events as u64, spans),
        item_bytes as f64 / events.max(1) as f64
    );
    println!(
        "  live table: {items} PutItem, {write_units} WRU -> {:.0} items, {:.0} WRU per million spans",
        per_million(items as u64, spans),
        per_million(write_units as u64, spans)
    );
    println!(
        "  PostToConnection (one subscribed client): {} messages, {} bytes -> {:.0} per million spans",
        messages.len(),
        message_bytes,
        per_million(messages.len() as u64, spans)
    );
    stream.delete_if_present().await.expect("delete stream");
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete tables");
}
