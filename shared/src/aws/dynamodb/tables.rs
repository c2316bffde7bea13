//! Creating the seven tables of `infra/dynamodb.md` (for tests and `--aws` mode against emulators; on
//! AWS, template.yaml creates them).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::series::BY_SERIES_ID_INDEX;
use super::{store_error, TableNames};
use crate::aws::errors;
use crate::ports::StoreError;

/// How long to wait for a new table to become ACTIVE (instant on DynamoDB Local).
const ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// Creates every named table that does not exist yet, with its keys, index, stream and TTL, and
/// waits until each is ACTIVE. Tables with an empty name are skipped.
pub async fn create_tables_if_missing(
    config: &SdkConfig,
    tables: &TableNames,
) -> Result<(), StoreError> {
    let client = Client::new(config);
    let definitions = [
        (&tables.buckets, buckets_table(&client)?),
        (&tables.series, series_table(&client)?),
        (&tables.state, state_table(&client)?),
        (&tables.connections, connections_table(&client)?),
        (&tables.traces, pk_sk_table(&client)?),
        (&tables.alerts, pk_sk_table(&client)?),
        (&tables.live, live_table(&client)?),
        (&tables.registry, pk_sk_table(&client)?),
    ];
    for (name, definition) in definitions {
        if name.is_empty() {
            continue;
        }
        create_one(&client, name, definition).await?;
    }
    Ok(())
}

/// Deletes every named table that exists (test clean-up against a long-lived emulator).
pub async fn delete_tables_if_present(
    config: &SdkConfig,
    tables: &TableNames,
) -> Result<(), StoreError> {
    let client = Client::new(config);
    for name in [
        &tables.buckets,
        &tables.series,
        &tables.state,
        &tables.connections,
        &tables.traces,
        &tables.alerts,
        &tables.live,
        &tables.registry,
    ] {
        if name.is_empty() {
            continue;
        }
        match client.delete_table().table_name(name).send().await {
            Ok(_) => {}
            Err(e) if errors::code(&e) == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(store_error("DeleteTable", &e)),
        }
    }
    Ok(())
}

async fn create_one(
    client: &Client,
    name: &str,
    definition: CreateTableFluentBuilder,
) -> Result<(), StoreError> {
    match definition.table_name(name).send().await {
        Ok(_) => {}
        Err(e) if errors::code(&e) == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(store_error("CreateTable", &e)),
    }
    wait_until_active(client, name).await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .map_err(invalid)?,
        )
        .send()
        .await
        .map_err(|e| store_error("UpdateTimeToLive", &e))?;
    Ok(())
}

async fn wait_until_active(client: &Client, name: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_WAIT;
    loop {
        let output = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| store_error("DescribeTable", &e))?;
        let status = output.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "table {name} is not ACTIVE after {ACTIVE_WAIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn invalid(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("invalid table definition: {error}"))
}

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(invalid)
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(invalid)
}

fn on_demand(client: &Client) -> CreateTableFluentBuilder {
    client
        .create_table()
        .billing_mode(BillingMode::PayPerRequest)
}

fn buckets_table(client: &Client) -> Result<CreateTableFluentBuilder, StoreError> {
    Ok(on_demand(client)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("start", ScalarAttributeType::N)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("start", KeyType::Range)?)
        // The fan-out reads each written bucket's new totals from the table's stream.
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(invalid)?,
        ))
}

/// Live events: `pk` only, read by nobody but the fan-out, through the stream.
fn live_table(client: &Client) -> Result<CreateTableFluentBuilder, StoreError> {
    Ok(on_demand(client)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(invalid)?,
        ))
}

fn series_table(client: &Client) -> Result<CreateTableFluentBuilder, StoreError> {
    Ok(on_demand(client)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("sk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("series_id", ScalarAttributeType::S)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_SERIES_ID_INDEX)
                .key_schema(key("series_id", KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(invalid)?,
        ))
}

fn state_table(client: &Client) -> Result<CreateTableFluentBuilder, StoreError> {
    Ok(on_demand(client)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
        .key_schema(key("pk", KeyType::Hash)?))
}

fn connections_table(client: &Client) -> Result<CreateTableFluentBuilder, StoreError> {
    Ok(on_demand(client)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("sk", ScalarAttributeType::S)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?))
}

/// A plain `pk`/`sk` table: traces and alerts keep several item kinds apart by key prefix.
fn pk_sk_table(client: &Client) -> Result<CreateTableFluentBuilder, StoreError> {
    Ok(on_demand(client)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("sk", ScalarAttributeType::S)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?))
}
