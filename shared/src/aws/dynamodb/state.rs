//! Aggregator state items: read with BatchGetItem (100 keys per call), written with BatchWriteItem
//! (25 items per call), retrying unprocessed keys/items with backoff.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{KeysAndAttributes, PutRequest, WriteRequest};
use bytes::Bytes;

use super::item::{self, get_opt_b, get_opt_n, get_s, Item, ItemError};
use super::{store_error, DynamoStore};
use crate::ports::StoreError;

const MAX_KEYS_PER_GET: usize = 100;
const MAX_ITEMS_PER_WRITE: usize = 25;

impl DynamoStore {
    pub(super) async fn batch_get_state(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Bytes)>, StoreError> {
        let table = self.state_table()?;
        // BatchGetItem refuses a request that names one key twice.
        let mut unique: Vec<&String> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let request_keys: Vec<Item> = unique
            .into_iter()
            .map(|key| Item::from([("pk".to_string(), item::s(key.as_str()))]))
            .collect();
        let items = batch_get(
            &self.client,
            &self.retry,
            table,
            request_keys,
            "BatchGetItem (state)",
        )
        .await?;
        let now = super::now_unix_s();
        let mut found = Vec::new();
        for item in &items {
            // TTL deletes lazily (up to days late): expired state reads as absent.
            if let Some(state) = decode_state(item, now)? {
                found.push(state);
            }
        }
        Ok(found)
    }

    pub(super) async fn batch_put_state(
        &self,
        items: &[(String, Bytes, i64)],
    ) -> Result<(), StoreError> {
        let table = self.state_table()?;
        // BatchWriteItem refuses two writes of one key in a request; the last one given wins.
        let latest: BTreeMap<&str, (&Bytes, i64)> = items
            .iter()
            .map(|(key, state, expires)| (key.as_str(), (state, *expires)))
            .collect();
        let requests = latest
            .into_iter()
            .map(|(key, (state, expires_at))| {
                let put = PutRequest::builder()
                    .item("pk", item::s(key))
                    .item("state", item::b(state.to_vec()))
                    .item("expires_at", item::n(expires_at))
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("BatchWriteItem request: {e}")))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for chunk in requests.chunks(MAX_ITEMS_PER_WRITE) {
            self.batch_write(table, chunk.to_vec(), "BatchWriteItem (state)")
                .await?;
        }
        Ok(())
    }

    /// One BatchWriteItem of at most 25 requests, retrying what DynamoDB leaves unprocessed.
    pub(super) async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
        operation: &str,
    ) -> Result<(), StoreError> {
        batch_write(&self.client, &self.retry, table, requests, operation).await
    }
}

/// BatchGetItem of `keys` (strongly consistent, at most 100 per call), retrying the keys DynamoDB
/// leaves unprocessed; shared by the store and the trace table. Keys must be distinct.
pub(super) async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    retry: &crate::aws::retry::RetryPolicy,
    table: &str,
    keys: Vec<Item>,
    operation: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::new();
    for chunk in keys.chunks(MAX_KEYS_PER_GET) {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("{operation} request: {e}")))?,
        );
        let mut attempts = retry.start();
        while let Some(request) = pending.take() {
            if !attempts.next().await {
                return Err(StoreError::Throttled(format!(
                    "{operation}: keys still unprocessed after {} attempts",
                    attempts.made()
                )));
            }
            let output = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| store_error(operation, &e))?;
            found.extend(
                output
                    .responses()
                    .and_then(|r| r.get(table))
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            pending = output
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
        }
    }
    Ok(found)
}

/// BatchWriteItem with retries of unprocessed items, shared by the store and the connections table.
pub(super) async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    retry: &crate::aws::retry::RetryPolicy,
    table: &str,
    requests: Vec<WriteRequest>,
    operation: &str,
) -> Result<(), StoreError> {
    let mut pending = requests;
    let mut attempts = retry.start();
    while !pending.is_empty() {
        if !attempts.next().await {
            return Err(StoreError::Throttled(format!(
                "{operation}: {} items still unprocessed after {} attempts",
                pending.len(),
                attempts.made()
            )));
        }
        let output = client
            .batch_write_item()
            .set_request_items(Some(HashMap::from([(table.to_string(), pending)])))
            .send()
            .await
            .map_err(|e| store_error(operation, &e))?;
        pending = output
            .unprocessed_items()
            .and_then(|u| u.get(table))
            .cloned()
            .unwrap_or_default();
    }
    Ok(())
}

/// The item's key and state, or `None` when it expired before `now` (it expires *after* that second).
fn decode_state(item: &Item, now: i64) -> Result<Option<(String, Bytes)>, StoreError> {
    let key = get_s(item, "pk").map_err(|e| StoreError::Corrupt {
        key: "state item".to_string(),
        reason: e.to_string(),
    })?;
    let corrupt = |e: ItemError| StoreError::Corrupt {
        key: format!("state {key}"),
        reason: e.to_string(),
    };
    let expires_at: Option<i64> = get_opt_n(item, "expires_at").map_err(corrupt)?;
    if expires_at.is_some_and(|expires_at| expires_at < now) {
        return Ok(None);
    }
    let state = get_opt_b(item, "state").map_err(corrupt)?;
    Ok(Some((
        key.to_string(),
        Bytes::copy_from_slice(state.unwrap_or_default()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_state_reads_as_absent_and_live_state_byte_for_byte() {
        let item = |expires_at: i64| {
            Item::from([
                ("pk".to_string(), item::s("cumulative/x")),
                ("state".to_string(), item::b(b"\x00s\xff".to_vec())),
                ("expires_at".to_string(), item::n(expires_at)),
            ])
        };
        assert_eq!(decode_state(&item(99), 100).unwrap(), None);
        assert_eq!(
            decode_state(&item(100), 100).unwrap(),
            Some(("cumulative/x".to_string(), Bytes::from_static(b"\x00s\xff"))),
            "an item expiring this second is still live"
        );
    }
}
