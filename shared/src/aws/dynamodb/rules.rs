//! The [`RuleStore`] on DynamoDB: the alert rules written through the API, one item of the alerts
//! table (`pk = rules`, `sk = current`; `text`, `version`, `updated_at`; no TTL). A write is a PutItem
//! conditioned on the version it replaces (or on absence for the first), so of two writers one wins
//! and the other sees a conflict.

use async_trait::async_trait;

use super::alerts::DynamoAlertStore;
use super::item::{self, get_n, get_s, Item};
use crate::aws::errors;
use crate::ports::{RulePut, RuleStore, StoreError, StoredRules};

const PK: &str = "rules";
const SK: &str = "current";
const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

fn key() -> Item {
    Item::from([
        ("pk".to_string(), item::s(PK)),
        ("sk".to_string(), item::s(SK)),
    ])
}

fn decode(item: &Item) -> Result<StoredRules, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: format!("{PK}/{SK}"),
        reason,
    };
    Ok(StoredRules {
        version: get_n(item, "version").map_err(|e| corrupt(e.to_string()))?,
        text: get_s(item, "text")
            .map_err(|e| corrupt(e.to_string()))?
            .to_string(),
        updated_at: get_n(item, "updated_at").map_err(|e| corrupt(e.to_string()))?,
    })
}

#[async_trait]
impl RuleStore for DynamoAlertStore {
    async fn current(&self) -> Result<Option<StoredRules>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table()?)
            .set_key(Some(key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::store_error("GetItem (alert rules)", &e))?;
        output.item().map(decode).transpose()
    }

    async fn put(&self, expected: u64, text: &str, now: i64) -> Result<RulePut, StoreError> {
        let version = expected + 1;
        let mut item = key();
        item.insert("text".into(), item::s(text));
        item.insert("version".into(), item::n(version));
        item.insert("updated_at".into(), item::n(now));
        let request = self
            .client
            .put_item()
            .table_name(self.table()?)
            .set_item(Some(item));
        let request = if expected == 0 {
            request.condition_expression("attribute_not_exists(pk)")
        } else {
            request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", item::n(expected))
        };
        match request.send().await {
            Ok(_) => Ok(RulePut::Written { version }),
            Err(e) if errors::code(&e) == Some(CONDITION_FAILED) => Ok(RulePut::Conflict {
                current: self.current().await?.map_or(0, |r| r.version),
            }),
            Err(e) => Err(super::store_error("PutItem (alert rules)", &e)),
        }
    }
}
