//! Live connections in memory, keyed like the DynamoDB table (infra/dynamodb.md): a connection item
//! per connection and an item per (topic, connection), where the topic is a service or `*` for
//! subscribers to everything. `subscribers` reads two topics, never every connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::unix_now_ms;
use crate::ports::{ConnectionStore, ConnectionStoreError, Subscription};

/// The topic of subscribers to every service.
const WILDCARD_TOPIC: &str = "*";

/// In-memory [`ConnectionStore`] for local mode. Expired items are invisible to reads and are
/// dropped when a read comes across them.
#[derive(Default)]
pub struct MemoryConnections {
    tables: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    /// `conn#<id>` items.
    connections: HashMap<String, ConnectionItem>,
    /// `topic#<topic>` partitions: connection id → its subscription item.
    topics: HashMap<String, BTreeMap<String, TopicItem>>,
}

struct ConnectionItem {
    principal: String,
    expires_at_unix_s: i64,
    /// Where this connection's topic items are, so they can be removed without a scan.
    topics: Vec<String>,
}

#[derive(Clone)]
struct TopicItem {
    subscription: Subscription,
    expires_at_unix_s: i64,
}

fn topics_of(subscription: &Subscription) -> Vec<String> {
    if subscription.services.is_empty() {
        return vec![WILDCARD_TOPIC.to_string()];
    }
    let mut topics = subscription.services.clone();
    topics.sort();
    topics.dedup();
    topics
}

impl MemoryConnections {
    pub fn new() -> Self {
        Self::default()
    }

    /// The principal a live connection authenticated as, if it is known and not expired.
    pub fn principal(&self, connection_id: &str) -> Option<String> {
        let now = unix_now_ms() / 1000;
        self.lock()
            .connections
            .get(connection_id)
            .filter(|c| c.expires_at_unix_s > now)
            .map(|c| c.principal.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Every mutation below leaves the maps consistent between statements, so a panic elsewhere
        // while holding the lock cannot have broken them.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tables {
    fn remove_topic_items(&mut self, connection_id: &str, topics: &[String]) {
        for topic in topics {
            if let Some(items) = self.topics.get_mut(topic) {
                items.remove(connection_id);
                if items.is_empty() {
                    self.topics.remove(topic);
                }
            }
        }
    }

    /// Live items of one topic; expired ones are removed on the way, as TTL would.
    fn read_topic(&mut self, topic: &str, now: i64, out: &mut Vec<(String, Subscription)>) {
        let Some(items) = self.topics.get_mut(topic) else {
            return;
        };
        items.retain(|_, item| item.expires_at_unix_s > now);
        out.extend(
            items
                .iter()
                .map(|(id, item)| (id.clone(), item.subscription.clone())),
        );
        if items.is_empty() {
            self.topics.remove(topic);
        }
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnections {
    async fn put_connection(
        &self,
        connection_id: &str,
        principal: &str,
        expires_at_unix_s: i64,
    ) -> Result<(), ConnectionStoreError> {
        let mut tables = self.lock();
        let topics = tables
            .connections
            .remove(connection_id)
            .map(|old| old.topics)
            .unwrap_or_default();
        tables.connections.insert(
            connection_id.to_string(),
            ConnectionItem {
                principal: principal.to_string(),
                expires_at_unix_s,
                topics,
            },
        );
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), ConnectionStoreError> {
        let mut tables = self.lock();
        if let Some(item) = tables.connections.remove(connection_id) {
            tables.remove_topic_items(connection_id, &item.topics);
        }
        Ok(())
    }

    async fn set_subscription(
        &self,
        connection_id: &str,
        subscription: &Subscription,
        expires_at_unix_s: i64,
    ) -> Result<(), ConnectionStoreError> {
        let mut tables = self.lock();
        let new_topics = topics_of(subscription);
        let old_topics = tables
            .connections
            .get(connection_id)
            .map(|c| c.topics.clone())
            .unwrap_or_default();
        tables.remove_topic_items(connection_id, &old_topics);
        for topic in &new_topics {
            tables.topics.entry(topic.clone()).or_default().insert(
                connection_id.to_string(),
                TopicItem {
                    subscription: subscription.clone(),
                    expires_at_unix_s,
                },
            );
        }
        // Like an UpdateItem on DynamoDB, subscribing an unknown connection creates its item, so a
        // later delete still finds and removes the topic items.
        let connection = tables
            .connections
            .entry(connection_id.to_string())
            .or_insert_with(|| ConnectionItem {
                principal: String::new(),
                expires_at_unix_s,
                topics: Vec::new(),
            });
        connection.topics = new_topics;
        Ok(())
    }

    async fn subscribers(
        &self,
        service: &str,
    ) -> Result<Vec<(String, Subscription)>, ConnectionStoreError> {
        let now = unix_now_ms() / 1000;
        let mut tables = self.lock();
        let mut found = Vec::new();
        tables.read_topic(service, now, &mut found);
        if service != WILDCARD_TOPIC {
            tables.read_topic(WILDCARD_TOPIC, now, &mut found);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resubscribing_moves_the_connection_between_topic_partitions() {
        let store = MemoryConnections::new();
        let far = unix_now_ms() / 1000 + 3600;
        store.put_connection("c1", "alice", far).await.unwrap();
        let api = Subscription {
            services: vec!["api".into()],
            metrics: vec![],
        };
        store.set_subscription("c1", &api, far).await.unwrap();
        store
            .set_subscription("c1", &Subscription::default(), far)
            .await
            .unwrap();
        let tables = store.lock();
        // The old topic partition is gone entirely, not left with a stale item.
        assert!(!tables.topics.contains_key("api"));
        assert_eq!(tables.topics[WILDCARD_TOPIC].len(), 1);
        assert_eq!(tables.connections["c1"].topics, vec!["*".to_string()]);
        drop(tables);
        assert_eq!(store.principal("c1").as_deref(), Some("alice"));
    }
}
