//! The service registry on DynamoDB (`REGISTRY_TABLE`, see `infra/dynamodb.md`): the
//! [`RegistryStore`] of the AWS deployment.
//!
//! One `pk`/`sk` table with TTL on `expires_at`; every record is in one partition
//! (`pk = instance`, `sk = <service>\x1f<instance>\x1f<source>`): the registry is small (bounded by
//! the instance limit) and written rarely (registrations, heartbeats, OTLP sightings at most once a
//! minute per instance and process), far below a partition's 1,000 writes/s, and one partition makes
//! "list everything" a single Query. Attributes: `record` (JSON), `first_seen`, `last_seen`,
//! `expires_at` (also the TTL: DynamoDB deletes lapsed records by itself, lazily, so reads skip them)
//! and `lease_ttl` (registered records), so a heartbeat is one UpdateItem
//! (`expires_at = lease_ttl + :now`) that never rewrites the JSON.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::item::{self, get_n, get_opt_n, get_s, Item};
use super::query_all;
use crate::aws::errors;
use crate::ports::registry::{InstanceRecord, InstanceSource, PutKind, RegistryStore};
use crate::ports::StoreError;

const PK: &str = "instance";
const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

/// The registry store on DynamoDB.
pub struct DynamoRegistryStore {
    client: Client,
    table: String,
}

impl DynamoRegistryStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        DynamoRegistryStore {
            client: Client::new(config),
            table: table.into(),
        }
    }

    fn table(&self) -> Result<&str, StoreError> {
        super::table(&self.table, "REGISTRY_TABLE")
    }
}

fn failed<E, R>(operation: &str, error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    super::store_error(operation, error)
}

fn sort_key(service: &str, instance: &str, source: InstanceSource) -> String {
    format!("{service}\u{1f}{instance}\u{1f}{}", source.as_str())
}

fn key(sk: String) -> Item {
    Item::from([
        ("pk".to_string(), item::s(PK)),
        ("sk".to_string(), item::s(sk)),
    ])
}

fn to_item(record: &InstanceRecord) -> Result<Item, StoreError> {
    let sk = sort_key(&record.service, &record.instance, record.source);
    let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt {
        key: sk.clone(),
        reason: format!("cannot encode: {e}"),
    })?;
    let mut out = key(sk);
    out.insert("record".into(), item::s(json));
    out.insert("first_seen".into(), item::n(record.first_seen));
    out.insert("last_seen".into(), item::n(record.last_seen));
    out.insert("expires_at".into(), item::n(record.expires_at));
    if let Some(ttl) = record.lease_ttl_s {
        out.insert("lease_ttl".into(), item::n(ttl));
    }
    Ok(out)
}

/// The record, with the attributes that heartbeats and updates change taking precedence over the JSON.
fn from_item(item: &Item) -> Result<InstanceRecord, StoreError> {
    let sk = get_s(item, "sk").unwrap_or_default().to_string();
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("{PK}/{sk}"),
        reason,
    };
    let json = get_s(item, "record").map_err(|e| corrupt(e.to_string()))?;
    let mut record: InstanceRecord =
        serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
    record.first_seen = get_n(item, "first_seen").map_err(|e| corrupt(e.to_string()))?;
    record.last_seen = get_n(item, "last_seen").map_err(|e| corrupt(e.to_string()))?;
    record.expires_at = get_n(item, "expires_at").map_err(|e| corrupt(e.to_string()))?;
    record.lease_ttl_s = get_opt_n(item, "lease_ttl").map_err(|e| corrupt(e.to_string()))?;
    Ok(record)
}

#[async_trait]
impl RegistryStore for DynamoRegistryStore {
    /// An UpdateItem conditioned on a live record (keeps `first_seen`), else a PutItem (created).
    /// Two first writes racing both report `Created`; the record is the later one.
    async fn put(&self, record: &InstanceRecord) -> Result<PutKind, StoreError> {
        let table = self.table()?;
        let sk = sort_key(&record.service, &record.instance, record.source);
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt {
            key: sk.clone(),
            reason: format!("cannot encode: {e}"),
        })?;
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key(sk)))
            .condition_expression("attribute_exists(pk) AND expires_at > :now")
            .expression_attribute_values(":now", item::n(record.last_seen))
            .expression_attribute_values(":record", item::s(json))
            .expression_attribute_values(":last_seen", item::n(record.last_seen))
            .expression_attribute_values(":expires_at", item::n(record.expires_at));
        update = match record.lease_ttl_s {
            Some(ttl) => update
                .update_expression(
                    "SET #record = :record, last_seen = :last_seen, expires_at = :expires_at, lease_ttl = :lease_ttl",
                )
                .expression_attribute_values(":lease_ttl", item::n(ttl)),
            None => update.update_expression(
                "SET #record = :record, last_seen = :last_seen, expires_at = :expires_at REMOVE lease_ttl",
            ),
        };
        match update
            .expression_attribute_names("#record", "record")
            .send()
            .await
        {
            Ok(_) => return Ok(PutKind::Updated),
            Err(e) if errors::code(&e) == Some(CONDITION_FAILED) => {}
            Err(e) => return Err(failed("UpdateItem", &e)),
        }
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(to_item(record)?))
            .send()
            .await
            .map_err(|e| failed("PutItem", &e))?;
        Ok(PutKind::Created)
    }

    async fn renew(
        &self,
        service: &str,
        instance: &str,
        source: InstanceSource,
        now: i64,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table()?)
            .set_key(Some(key(sort_key(service, instance, source))))
            .update_expression("SET last_seen = :now, expires_at = lease_ttl + :now")
            .condition_expression("attribute_exists(lease_ttl) AND expires_at > :now")
            .expression_attribute_values(":now", item::n(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => output.attributes().map(from_item).transpose(),
            Err(e) if errors::code(&e) == Some(CONDITION_FAILED) => Ok(None),
            Err(e) => Err(failed("UpdateItem", &e)),
        }
    }

    async fn remove(
        &self,
        service: &str,
        instance: &str,
        source: InstanceSource,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(self.table()?)
            .set_key(Some(key(sort_key(service, instance, source))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| failed("DeleteItem", &e))?;
        output.attributes().map(from_item).transpose()
    }

    async fn list(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(self.table()?)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", item::s(PK));
        let items = query_all(request, "Query").await?;
        items.iter().map(from_item).collect()
    }

    /// Deletes each lapsed record with a DeleteItem conditioned on the expiry read, so a heartbeat
    /// that lands in between wins.
    async fn remove_expired(&self, now: i64) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut removed = Vec::new();
        for record in self.list().await?.into_iter().filter(|r| !r.is_live(now)) {
            let result = self
                .client
                .delete_item()
                .table_name(self.table()?)
                .set_key(Some(key(sort_key(
                    &record.service,
                    &record.instance,
                    record.source,
                ))))
                .condition_expression("expires_at = :read")
                .expression_attribute_values(
                    ":read",
                    AttributeValue::N(record.expires_at.to_string()),
                )
                .send()
                .await;
            match result {
                Ok(_) => removed.push(record),
                Err(e) if errors::code(&e) == Some(CONDITION_FAILED) => {}
                Err(e) => return Err(failed("DeleteItem", &e)),
            }
        }
        Ok(removed)
    }
}
