//! Alert persistence on DynamoDB (`ALERTS_TABLE`, see `infra/dynamodb.md`): the [`AlertStore`] of
//! the AWS deployment.
//!
//! Items, all in one `pk`/`sk` table with TTL on `expires_at`; every read is a GetItem or a Query:
//! - state: `pk = state`, `sk = <fingerprint>`, `state` = JSON, `version` = the write condition;
//! - history: `pk = history`, `sk = <at, order-preserving 20 digits>#<writer ms>#<random>#<index>`;
//! - silence: `pk = silence`, `sk = <id>`, TTL at its end;
//! - dead letter: `pk = dead_letter`, `sk = <failed_at, order-preserving>#<id>`.
//!
//! Each kind is one partition: alerts are few (rules × services) and transitions rare, far below a
//! partition's 1,000 writes/s, and one partition makes "history between two times" and "newest dead
//! letters" a single Query whatever the range.
//!
//! `put_state` is one TransactWriteItems: the state Put conditioned on `version` (or on absence) and a
//! Put per history entry, so two evaluators never both win and a loser leaves no history behind.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::item::{self, get_n, get_s, Item};
use super::{query_all, query_up_to, CONFLICT_RETRY};
use crate::alerts::notify::DeadLetter;
use crate::alerts::silence::Silence;
use crate::alerts::state::{AlertState, AlertTransition};
use crate::aws::errors;
use crate::aws::retry::RetryPolicy;
use crate::ports::{AlertStore, AlertStoreError, PutOutcome};

const STATE_PK: &str = "state";
const HISTORY_PK: &str = "history";
const SILENCE_PK: &str = "silence";
const DEAD_LETTER_PK: &str = "dead_letter";
/// TransactWriteItems takes at most 100 actions: the state Put and up to 99 history entries.
const MAX_HISTORY_PER_PUT: usize = 99;

/// The alert store on DynamoDB.
pub struct DynamoAlertStore {
    pub(super) client: Client,
    pub(super) table: String,
    retry: RetryPolicy,
}

impl DynamoAlertStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), table)
    }

    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        DynamoAlertStore {
            client,
            table: table.into(),
            retry: CONFLICT_RETRY,
        }
    }

    /// Replaces the retry policy for transactions that collide with another in flight.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub(super) fn table(&self) -> Result<&str, AlertStoreError> {
        super::table(&self.table, "ALERTS_TABLE")
    }
}

// ---- errors ----

/// Throttling → [`AlertStoreError::Throttled`] (the caller backs off), anything else → `Unavailable`.
fn alert_error<E, R>(operation: &str, error: &SdkError<E, R>) -> AlertStoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    AlertStoreError::from(super::store_error(operation, error))
}

fn corrupt(pk: &str, sk: &str, reason: impl std::fmt::Display) -> AlertStoreError {
    AlertStoreError::Corrupt {
        key: format!("{pk}/{sk}"),
        reason: reason.to_string(),
    }
}

// ---- keys and items ----

/// Big-endian-like with the sign bit flipped, as 20 decimal digits: string order is numeric order,
/// negatives included.
fn ordered_i64(value: i64) -> String {
    format!("{:020}", (value as u64) ^ (1 << 63))
}

fn key(pk: &str, sk: impl Into<String>) -> Item {
    Item::from([
        ("pk".to_string(), item::s(pk)),
        ("sk".to_string(), item::s(sk)),
    ])
}

/// An item holding `value` as JSON in `attribute`.
fn json_item<T: Serialize>(
    pk: &str,
    sk: String,
    attribute: &str,
    value: &T,
) -> Result<Item, AlertStoreError> {
    let json = serde_json::to_string(value)
        .map_err(|e| corrupt(pk, &sk, format!("cannot encode: {e}")))?;
    let mut out = key(pk, sk);
    out.insert(attribute.to_string(), item::s(json));
    Ok(out)
}

fn from_json<T: DeserializeOwned>(item: &Item, attribute: &str) -> Result<T, AlertStoreError> {
    let pk = get_s(item, "pk").unwrap_or("?");
    let sk = get_s(item, "sk").unwrap_or("?");
    let json = get_s(item, attribute).map_err(|e| corrupt(pk, sk, e))?;
    serde_json::from_str(json).map_err(|e| corrupt(pk, sk, e))
}

fn decode_state(item: &Item) -> Result<AlertState, AlertStoreError> {
    let mut state: AlertState = from_json(item, "state")?;
    // The attribute is what writes are conditioned on, so it is the version.
    state.version = get_n(item, "version").map_err(|e| corrupt(STATE_PK, &state.fingerprint, e))?;
    Ok(state)
}

/// History keys: time first, then the writer's clock and a random part so that entries of the same
/// second from different writers never collide, then the entry's place within its write.
fn history_sk(at: i64, writer: &str, index: usize) -> String {
    format!("{}#{writer}#{index:04}", ordered_i64(at))
}

fn writer_tag() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{millis:013}#{:016x}", rand::random::<u64>())
}

fn transact_put(table: &str, item: Item) -> Result<Put, AlertStoreError> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| AlertStoreError::Unavailable(format!("Put: {e}")))
}

/// How a TransactWriteItems failed.
enum TransactFailure {
    /// The state's condition failed: someone else wrote first.
    Conflict,
    /// Another transaction on the same item was in flight; neither may have won yet.
    Retry,
    Failed(AlertStoreError),
}

fn classify<R: std::fmt::Debug>(error: &SdkError<TransactWriteItemsError, R>) -> TransactFailure {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    {
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .collect();
        // The state Put is the first action.
        if codes.first() == Some(&"ConditionalCheckFailed") {
            return TransactFailure::Conflict;
        }
        if codes
            .iter()
            .any(|c| *c == "TransactionConflict" || errors::is_throttling_code(c))
        {
            return TransactFailure::Retry;
        }
    }
    if errors::code(error) == Some("TransactionInProgressException") {
        return TransactFailure::Retry;
    }
    TransactFailure::Failed(alert_error("TransactWriteItems (alert state)", error))
}

impl DynamoAlertStore {
    async fn query_partition(&self, pk: &str) -> Result<Vec<Item>, AlertStoreError> {
        let request = self
            .client
            .query()
            .table_name(self.table()?)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", item::s(pk))
            .consistent_read(true);
        query_all(request, &format!("Query ({pk})")).await
    }

    async fn put_item(&self, item: Item, operation: &str) -> Result<(), AlertStoreError> {
        self.client
            .put_item()
            .table_name(self.table()?)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| alert_error(operation, &e))?;
        Ok(())
    }
}

#[async_trait]
impl AlertStore for DynamoAlertStore {
    async fn get_state(&self, fingerprint: &str) -> Result<Option<AlertState>, AlertStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table()?)
            .set_key(Some(key(STATE_PK, fingerprint)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| alert_error("GetItem (alert state)", &e))?;
        output.item().map(decode_state).transpose()
    }

    async fn list_states(&self) -> Result<Vec<AlertState>, AlertStoreError> {
        self.query_partition(STATE_PK)
            .await?
            .iter()
            .map(decode_state)
            .collect()
    }

    async fn put_state(
        &self,
        state: &AlertState,
        expected_version: u64,
        history: &[AlertTransition],
        history_expires_at: i64,
    ) -> Result<PutOutcome, AlertStoreError> {
        if history.len() > MAX_HISTORY_PER_PUT {
            return Err(AlertStoreError::Unavailable(format!(
                "{} history entries do not fit one transaction (at most {MAX_HISTORY_PER_PUT})",
                history.len()
            )));
        }
        let table = self.table()?;
        let mut state = state.clone();
        state.version = expected_version + 1;
        let mut state_item = json_item(STATE_PK, state.fingerprint.clone(), "state", &state)?;
        state_item.insert("version".into(), item::n(state.version));
        let mut state_put = Put::builder().table_name(table).set_item(Some(state_item));
        state_put = if expected_version == 0 {
            state_put.condition_expression("attribute_not_exists(pk)")
        } else {
            state_put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", item::n(expected_version))
        };
        let state_put = state_put
            .build()
            .map_err(|e| AlertStoreError::Unavailable(format!("Put: {e}")))?;
        let mut actions = vec![TransactWriteItem::builder().put(state_put).build()];
        let writer = writer_tag();
        for (index, entry) in history.iter().enumerate() {
            let sk = history_sk(entry.at, &writer, index);
            let mut entry_item = json_item(HISTORY_PK, sk, "entry", entry)?;
            entry_item.insert("expires_at".into(), item::n(history_expires_at));
            let put = transact_put(table, entry_item)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }

        let mut attempts = self.retry.start();
        loop {
            if !attempts.next().await {
                return Err(AlertStoreError::Throttled(format!(
                    "alert {}: transaction still colliding after {} attempts",
                    state.fingerprint,
                    attempts.made()
                )));
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            match result {
                Ok(_) => {
                    return Ok(PutOutcome::Written {
                        version: state.version,
                    })
                }
                Err(e) => match classify(&e) {
                    TransactFailure::Conflict => {
                        let current = self.get_state(&state.fingerprint).await?;
                        return Ok(PutOutcome::Conflict {
                            current: current.map(Box::new),
                        });
                    }
                    TransactFailure::Retry => continue,
                    TransactFailure::Failed(error) => return Err(error),
                },
            }
        }
    }

    async fn history(
        &self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, AlertStoreError> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        // Every key of a second `at` starts with its 20 digits, then `#`; `~` sorts after `#`.
        let lower = ordered_i64(from);
        let upper = format!("{}~", ordered_i64(to - 1));
        let request = self
            .client
            .query()
            .table_name(self.table()?)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lower AND :upper")
            .expression_attribute_values(":pk", item::s(HISTORY_PK))
            .expression_attribute_values(":lower", item::s(lower.as_str()))
            .expression_attribute_values(":upper", item::s(upper.as_str()))
            .consistent_read(true)
            // Newest first: with a limit, the latest transitions are the ones that matter.
            .scan_index_forward(false);
        query_up_to(request, limit, "Query (alert history)")
            .await?
            .iter()
            .map(|entry| from_json(entry, "entry"))
            .collect()
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), AlertStoreError> {
        let mut silence_item = json_item(SILENCE_PK, silence.id.clone(), "silence", silence)?;
        // TTL removes a silence once it has ended, as the embedded store's purge does.
        silence_item.insert("expires_at".into(), item::n(silence.ends_at));
        self.put_item(silence_item, "PutItem (silence)").await
    }

    async fn list_silences(&self) -> Result<Vec<Silence>, AlertStoreError> {
        self.query_partition(SILENCE_PK)
            .await?
            .iter()
            .map(|silence| from_json(silence, "silence"))
            .collect()
    }

    async fn delete_silence(&self, id: &str) -> Result<bool, AlertStoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(self.table()?)
            .set_key(Some(key(SILENCE_PK, id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| alert_error("DeleteItem (silence)", &e))?;
        Ok(output.attributes().is_some_and(|old| !old.is_empty()))
    }

    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), AlertStoreError> {
        let sk = format!("{}#{}", ordered_i64(letter.failed_at), letter.id);
        let mut letter_item = json_item(DEAD_LETTER_PK, sk, "letter", letter)?;
        letter_item.insert("expires_at".into(), item::n(letter.expires_at));
        self.put_item(letter_item, "PutItem (dead letter)").await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, AlertStoreError> {
        let request = self
            .client
            .query()
            .table_name(self.table()?)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", item::s(DEAD_LETTER_PK))
            .scan_index_forward(false)
            .consistent_read(true);
        query_up_to(request, limit, "Query (dead letters)")
            .await?
            .iter()
            .map(|letter| from_json(letter, "letter"))
            .collect()
    }

    /// DynamoDB's TTL deletes history, dead letters and ended silences by itself.
    async fn purge_expired(&self, _now_unix_s: i64) -> Result<u64, AlertStoreError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_as_numbers_negatives_included() {
        let times = [
            i64::MIN,
            -86_400,
            -1,
            0,
            1,
            999,
            1000,
            1_700_000_000,
            i64::MAX,
        ];
        let keys: Vec<String> = times.iter().map(|t| ordered_i64(*t)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(keys.iter().all(|k| k.len() == 20));
    }

    #[test]
    fn history_keys_of_one_second_stay_between_the_range_bounds() {
        let sk = history_sk(300, &writer_tag(), 3);
        assert!(sk.as_str() >= ordered_i64(300).as_str());
        assert!(sk < format!("{}~", ordered_i64(300)));
        assert!(sk.as_str() < ordered_i64(301).as_str());
        assert!(
            history_sk(300, "a", 2) < history_sk(300, "a", 10),
            "entries keep their order"
        );
    }
}
