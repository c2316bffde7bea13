//! The port contracts run against the AWS adapters, on emulators (DynamoDB Local, kinesis-mock) or
//! LocalStack: `source "$(scripts/emulators.sh env)"` first. Each run creates its own uniquely named
//! stream and tables and deletes them afterwards.
//!
//! Built only with the `emulator-tests` feature (`scripts/aws-tests.sh`), so a plain `cargo test`
//! never lists them as passed without running them. Without `AWS_ENDPOINT_URL` (or
//! `AWS_ENDPOINT_URL_KINESIS` / `_DYNAMODB`) they fail, so they never touch a real AWS account.
#![cfg(feature = "aws")]

mod contract;

use std::time::Duration;

use aws_config::SdkConfig;
use flowscope_core::aws::{
    config, create_tables_if_missing, delete_tables_if_present, DynamoAlertStore,
    DynamoConnections, DynamoSeriesAdmission, DynamoStore, DynamoTraceStore, KinesisStream,
    TableNames,
};

/// The emulator configuration; fails the test when `service`'s endpoint is not overridden.
async fn emulator(service: &str, test: &str) -> Option<SdkConfig> {
    assert!(
        config::endpoint_configured(service),
        "{test} needs the emulators: set AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_{} \
         (scripts/aws-tests.sh starts them)",
        service.to_ascii_uppercase()
    );
    Some(config::load_for_emulators().await)
}

#[tokio::test]
async fn kinesis_stream_passes_the_stream_contract() {
    let Some(config) = emulator("kinesis", "kinesis_stream_passes_the_stream_contract").await
    else {
        return;
    };
    let stream = KinesisStream::new(&config, contract::unique("flowscope-contract"));
    stream
        .create_if_missing(2, Duration::from_secs(60))
        .await
        .expect("create the stream");
    contract::stream_contract(&stream).await;
    stream.delete_if_present().await.expect("delete the stream");
}

#[tokio::test]
async fn dynamo_store_passes_the_store_contract() {
    let Some(config) = emulator("dynamodb", "dynamo_store_passes_the_store_contract").await else {
        return;
    };
    let tables = TableNames {
        connections: String::new(),
        traces: String::new(),
        alerts: String::new(),
        ..TableNames::with_prefix(&contract::unique("flowscope-contract"))
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the tables");
    let store = DynamoStore::new(&config, tables.clone());
    contract::store_contract(&store).await;
    // The suites must not assume an empty store: a second run over the same tables passes too.
    contract::store_contract(&store).await;
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the tables");
}

#[tokio::test]
async fn dynamo_connections_pass_the_connections_contract() {
    let Some(config) = emulator(
        "dynamodb",
        "dynamo_connections_pass_the_connections_contract",
    )
    .await
    else {
        return;
    };
    let prefix = contract::unique("flowscope-contract");
    let tables = TableNames {
        connections: format!("{prefix}-connections"),
        ..TableNames::default()
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the table");
    let connections = DynamoConnections::new(&config, &tables.connections);
    contract::connections_contract(&connections).await;
    contract::connections_contract(&connections).await;
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the table");
}

#[tokio::test]
async fn dynamo_trace_store_passes_the_trace_store_contract() {
    let Some(config) = emulator(
        "dynamodb",
        "dynamo_trace_store_passes_the_trace_store_contract",
    )
    .await
    else {
        return;
    };
    let tables = TableNames {
        traces: format!("{}-traces", contract::unique("flowscope-contract")),
        ..TableNames::default()
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the table");
    let store = DynamoTraceStore::new(&config, &tables.traces);
    contract::traces::trace_store_contract(&store).await;
    contract::traces::trace_store_contract(&store).await;
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_alert_store_passes_the_alert_store_contract() {
    let Some(config) = emulator(
        "dynamodb",
        "dynamo_alert_store_passes_the_alert_store_contract",
    )
    .await
    else {
        return;
    };
    let tables = TableNames {
        alerts: format!("{}-alerts", contract::unique("flowscope-contract")),
        ..TableNames::default()
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the table");
    let store = DynamoAlertStore::new(&config, &tables.alerts);
    contract::alerts::alert_store_contract(&store).await;
    contract::alerts::alert_store_contract(&store).await;
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_alerts_table_passes_the_rule_store_contract() {
    let Some(config) = emulator(
        "dynamodb",
        "dynamo_alerts_table_passes_the_rule_store_contract",
    )
    .await
    else {
        return;
    };
    let tables = TableNames {
        alerts: format!("{}-alerts", contract::unique("flowscope-contract")),
        ..TableNames::default()
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the table");
    let store = DynamoAlertStore::new(&config, &tables.alerts);
    contract::rules::rule_store_first_write(&store).await;
    contract::rules::rule_store_contract(&store).await;
    contract::rules::rule_store_contract(&store).await;
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the table");
}

#[tokio::test]
async fn dynamo_series_admission_passes_the_admission_contract() {
    let Some(config) = emulator(
        "dynamodb",
        "dynamo_series_admission_passes_the_admission_contract",
    )
    .await
    else {
        return;
    };
    let tables = TableNames {
        buckets: String::new(),
        series: String::new(),
        connections: String::new(),
        traces: String::new(),
        alerts: String::new(),
        ..TableNames::with_prefix(&contract::unique("flowscope-contract"))
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the tables");
    let admission = DynamoSeriesAdmission::new(
        &config,
        tables.state.clone(),
        contract::admission::CONTRACT_LIMITS,
    );
    contract::admission::admission_contract(&admission).await;
    // Another instance (a cold start: empty cache) sees the same limits.
    let other = DynamoSeriesAdmission::new(
        &config,
        tables.state.clone(),
        contract::admission::CONTRACT_LIMITS,
    );
    contract::admission::shared_limits_contract(&admission, &other).await;
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the tables");
}

/// Daily buckets on DynamoDB: the day is the sum of its hours (see `contract::daily`), and every
/// bucket item carries the table's TTL attribute `expires_at` for its own resolution: 1m items
/// `start + 60 s + 7 d`, 1d items `start + 1 d + 365 d` (DynamoDB deletes expired items itself).
#[tokio::test]
async fn dynamo_daily_buckets_are_the_sum_of_their_hours_and_carry_their_ttl() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use flowscope_core::model::{Resolution, Retention};

    let Some(config) = emulator(
        "dynamodb",
        "dynamo_daily_buckets_are_the_sum_of_their_hours_and_carry_their_ttl",
    )
    .await
    else {
        return;
    };
    let tables = TableNames {
        connections: String::new(),
        traces: String::new(),
        alerts: String::new(),
        ..TableNames::with_prefix(&contract::unique("flowscope-daily"))
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the tables");
    let store = std::sync::Arc::new(DynamoStore::new(&config, tables.clone()));
    let retention = Retention::default();
    let run = contract::daily::daily_buckets_are_the_sum_of_their_hours(store, retention).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    for (resolution, start) in [
        (Resolution::OneMinute, run.first_minute),
        (Resolution::OneDay, run.day),
    ] {
        let item = client
            .get_item()
            .table_name(&tables.buckets)
            .key(
                "pk",
                AttributeValue::S(format!("{}#{resolution}", run.series)),
            )
            .key("start", AttributeValue::N(start.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("get the bucket item")
            .item
            .unwrap_or_else(|| panic!("the {resolution} bucket item exists"));
        let expected = start + resolution.seconds() + retention.seconds(resolution);
        assert_eq!(
            item.get("expires_at"),
            Some(&AttributeValue::N(expected.to_string())),
            "{resolution} item's TTL attribute"
        );
    }
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the tables");
}

#[tokio::test]
async fn dynamo_registry_store_passes_the_registry_contract() {
    let Some(config) = emulator(
        "dynamodb",
        "dynamo_registry_store_passes_the_registry_contract",
    )
    .await
    else {
        return;
    };
    let tables = TableNames {
        registry: format!("{}-registry", contract::unique("flowscope-contract")),
        ..TableNames::default()
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the table");
    let store = flowscope_core::aws::DynamoRegistryStore::new(&config, &tables.registry);
    contract::registry::registry_store_contract(&store).await;
    contract::registry::registry_store_contract(&store).await;
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the table");
}
