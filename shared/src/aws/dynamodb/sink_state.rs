//! The [`SinkStateStore`] on DynamoDB: what stateful notification sinks remember per group (the Jira
//! sink's issue per service), items of the alerts table: `pk = sink#<sink>`, `sk = <group>`,
//! `value` = the sink's JSON, no TTL (a resolved group's item is deleted by the sink).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::alerts::DynamoAlertStore;
use super::item::{self, get_s, Item};
use crate::ports::{SinkStateStore, StoreError};

fn key(sink: &str, group: &str) -> Item {
    Item::from([
        ("pk".to_string(), item::s(format!("sink#{sink}"))),
        ("sk".to_string(), item::s(group)),
    ])
}

#[async_trait]
impl SinkStateStore for DynamoAlertStore {
    async fn get_sink_state(&self, sink: &str, group: &str) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table()?)
            .set_key(Some(key(sink, group)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::store_error("GetItem (sink state)", &e))?;
        output
            .item()
            .map(|item| {
                get_s(item, "value")
                    .map(str::to_string)
                    .map_err(|e| StoreError::Corrupt {
                        key: format!("sink#{sink}/{group}"),
                        reason: e.to_string(),
                    })
            })
            .transpose()
    }

    async fn put_sink_state(&self, sink: &str, group: &str, value: &str) -> Result<(), StoreError> {
        let mut item = key(sink, group);
        item.insert("value".into(), item::s(value));
        self.client
            .put_item()
            .table_name(self.table()?)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| super::store_error("PutItem (sink state)", &e))?;
        Ok(())
    }

    async fn delete_sink_state(&self, sink: &str, group: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(self.table()?)
            .set_key(Some(key(sink, group)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| super::store_error("DeleteItem (sink state)", &e))?;
        Ok(output.attributes().is_some_and(|old| !old.is_empty()))
    }
}
