//! Live connections on DynamoDB: a `conn#<id>`/`meta` item per connection and a `topic#<service>`
//! (or `topic#*`) item per subscribed service, so `subscribers(service)` is two Queries, never a Scan.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::item::{self, get_s, get_string_list, Item};
use super::state::batch_write;
use super::{query_all, store_error};
use crate::aws::retry::RetryPolicy;
use crate::ports::{ConnectionStore, ConnectionStoreError, StoreError, Subscription};

const META_SK: &str = "meta";
/// Topic of the connections subscribed to every service.
const ALL_SERVICES_TOPIC: &str = "topic#*";
const MAX_ITEMS_PER_WRITE: usize = 25;

fn connection_pk(connection_id: &str) -> String {
    format!("conn#{connection_id}")
}

fn topic_pk(service: &str) -> String {
    format!("topic#{service}")
}

/// The topic items a subscription needs: one per service, or the wildcard topic for "everything".
fn topics_of(subscription: &Subscription) -> BTreeSet<String> {
    if subscription.services.is_empty() {
        BTreeSet::from([ALL_SERVICES_TOPIC.to_string()])
    } else {
        subscription.services.iter().map(|s| topic_pk(s)).collect()
    }
}

fn unavailable(error: impl std::fmt::Display) -> ConnectionStoreError {
    ConnectionStoreError::Unavailable(error.to_string())
}

fn from_store(error: StoreError) -> ConnectionStoreError {
    unavailable(error)
}

pub struct DynamoConnections {
    client: Client,
    table: String,
    retry: RetryPolicy,
}

impl DynamoConnections {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), table)
    }

    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        DynamoConnections {
            client,
            table: table.into(),
            retry: RetryPolicy::default(),
        }
    }

    /// The table named by `CONNECTIONS_TABLE`.
    pub fn from_env(config: &SdkConfig) -> Result<Self, ConnectionStoreError> {
        let table = std::env::var("CONNECTIONS_TABLE")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unavailable("CONNECTIONS_TABLE is not set"))?;
        Ok(Self::new(config, table))
    }

    async fn connection_item(
        &self,
        connection_id: &str,
    ) -> Result<Option<Item>, ConnectionStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", item::s(connection_pk(connection_id)))
            .key("sk", item::s(META_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_store(store_error("GetItem (connection)", &e)))?;
        Ok(output.item().cloned())
    }

    async fn topics_on_record(
        &self,
        connection_id: &str,
    ) -> Result<(bool, Vec<String>), ConnectionStoreError> {
        match self.connection_item(connection_id).await? {
            Some(found) => Ok((
                true,
                get_string_list(&found, "topics").map_err(unavailable)?,
            )),
            None => Ok((false, Vec::new())),
        }
    }

    async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), ConnectionStoreError> {
        for chunk in requests.chunks(MAX_ITEMS_PER_WRITE) {
            batch_write(
                &self.client,
                &self.retry,
                &self.table,
                chunk.to_vec(),
                "BatchWriteItem (connections)",
            )
            .await
            .map_err(from_store)?;
        }
        Ok(())
    }

    async fn query_topic(
        &self,
        topic: &str,
    ) -> Result<Vec<(String, Subscription)>, ConnectionStoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            // TTL deletes lazily (up to days late): an expired subscription is already gone.
            .filter_expression("#expires_at >= :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":pk", item::s(topic))
            .expression_attribute_values(":now", item::n(super::now_unix_s()));
        let items = query_all(request, "Query (subscribers)")
            .await
            .map_err(from_store)?;
        items
            .iter()
            .map(|found| {
                let connection = get_s(found, "sk").map_err(unavailable)?.to_string();
                let subscription: Subscription =
                    serde_json::from_str(get_s(found, "subscription").map_err(unavailable)?)
                        .map_err(|e| {
                            unavailable(format!("subscription of {connection} is corrupt: {e}"))
                        })?;
                Ok((connection, subscription))
            })
            .collect()
    }
}

fn key(pk: String, sk: &str) -> Item {
    Item::from([
        ("pk".to_string(), item::s(pk)),
        ("sk".to_string(), item::s(sk)),
    ])
}

fn delete(pk: String, sk: &str) -> Result<WriteRequest, ConnectionStoreError> {
    let request = DeleteRequest::builder()
        .set_key(Some(key(pk, sk)))
        .build()
        .map_err(unavailable)?;
    Ok(WriteRequest::builder().delete_request(request).build())
}

fn put(item: Item) -> Result<WriteRequest, ConnectionStoreError> {
    let request = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(unavailable)?;
    Ok(WriteRequest::builder().put_request(request).build())
}

#[async_trait]
impl ConnectionStore for DynamoConnections {
    async fn put_connection(
        &self,
        connection_id: &str,
        principal: &str,
        expires_at_unix_s: i64,
    ) -> Result<(), ConnectionStoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", item::s(connection_pk(connection_id)))
            .item("sk", item::s(META_SK))
            .item("principal", item::s(principal))
            .item("topics", AttributeValue::L(Vec::new()))
            .item("expires_at", item::n(expires_at_unix_s))
            .send()
            .await
            .map_err(|e| from_store(store_error("PutItem (connection)", &e)))?;
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), ConnectionStoreError> {
        let (exists, topics) = self.topics_on_record(connection_id).await?;
        if !exists {
            return Ok(());
        }
        let mut requests = topics
            .into_iter()
            .map(|topic| delete(topic, connection_id))
            .collect::<Result<Vec<_>, _>>()?;
        requests.push(delete(connection_pk(connection_id), META_SK)?);
        self.write(requests).await
    }

    async fn set_subscription(
        &self,
        connection_id: &str,
        subscription: &Subscription,
        expires_at_unix_s: i64,
    ) -> Result<(), ConnectionStoreError> {
        let subscription_json = serde_json::to_string(subscription).map_err(unavailable)?;
        let (_, old_topics) = self.topics_on_record(connection_id).await?;
        let new_topics = topics_of(subscription);

        let mut requests = old_topics
            .iter()
            .filter(|topic| !new_topics.contains(*topic))
            .map(|topic| delete(topic.clone(), connection_id))
            .collect::<Result<Vec<_>, _>>()?;
        for topic in &new_topics {
            let mut topic_item = key(topic.clone(), connection_id);
            topic_item.insert("subscription".into(), item::s(&subscription_json));
            topic_item.insert("expires_at".into(), item::n(expires_at_unix_s));
            requests.push(put(topic_item)?);
        }
        self.write(requests).await?;

        // The connection item lists its topics so that the next change or the disconnect can remove
        // them without a Scan.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", item::s(connection_pk(connection_id)))
            .key("sk", item::s(META_SK))
            .update_expression(
                "SET #subscription = :subscription, #topics = :topics, #expires_at = :expires_at",
            )
            .expression_attribute_names("#subscription", "subscription")
            .expression_attribute_names("#topics", "topics")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":subscription", item::s(subscription_json))
            .expression_attribute_values(
                ":topics",
                AttributeValue::L(new_topics.into_iter().map(item::s).collect()),
            )
            .expression_attribute_values(":expires_at", item::n(expires_at_unix_s))
            .send()
            .await
            .map_err(|e| from_store(store_error("UpdateItem (connection)", &e)))?;
        Ok(())
    }

    async fn subscribers(
        &self,
        service: &str,
    ) -> Result<Vec<(String, Subscription)>, ConnectionStoreError> {
        let mut found: BTreeMap<String, Subscription> = BTreeMap::new();
        for topic in [topic_pk(service), ALL_SERVICES_TOPIC.to_string()] {
            found.extend(self.query_topic(&topic).await?);
        }
        Ok(found.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribing_to_nothing_in_particular_means_the_wildcard_topic() {
        assert_eq!(
            topics_of(&Subscription::default()),
            BTreeSet::from(["topic#*".to_string()])
        );
        let some = Subscription {
            services: vec!["api".into(), "db".into(), "api".into()],
            metrics: vec!["latency".into()],
        };
        assert_eq!(
            topics_of(&some),
            BTreeSet::from(["topic#api".to_string(), "topic#db".to_string()])
        );
    }
}
