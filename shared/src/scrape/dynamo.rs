//! The scraper function's slot ledger in the state table (`scr#…` items, `expires_at` TTL): one
//! GetItem before a target's slot is scraped, one conditional PutItem after its points are in
//! Kinesis (see [`super::scheduled`] for why that order).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::scheduled::SlotLedger;

pub struct DynamoSlotLedger {
    client: Client,
    table: String,
}

impl DynamoSlotLedger {
    pub fn new(config: &SdkConfig, state_table: impl Into<String>) -> Self {
        DynamoSlotLedger {
            client: Client::new(config),
            table: state_table.into(),
        }
    }
}

#[async_trait]
impl SlotLedger for DynamoSlotLedger {
    async fn is_done(&self, key: &str) -> Result<bool, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetItem {key}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(item.item.is_some())
    }

    async fn mark_done(&self, key: &str, expires_at: i64) -> Result<(), String> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.to_string()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another invocation of the same slot finished first: the slot is recorded either way.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(format!(
                "PutItem {key}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )),
        }
    }
}
