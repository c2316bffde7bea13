//! Series admission on DynamoDB, shared by every ingest instance (items in the state table, under
//! the `adm#` key prefix; no table of its own).
//!
//! Time is cut into tumbling windows of `active_window_seconds`; window `w = now / window`. Items:
//! - `adm#m#<service hash>#<metric hash>#<w>`: `ids`, a binary set of the 8-byte ids of the series
//!   of that metric seen in window `w`. Adding to a set is idempotent, so two instances admitting
//!   the same series count it once per metric.
//! - `adm#s#<service hash>#<w>`: `n`, how many series the service registered in window `w`.
//! - `adm#r#<service hash><metric hash>`: refusal counts (only written when something is refused),
//!   listed in `adm#r#index` (at most [`MAX_REFUSED_METRICS`]; beyond, only its `other` total).
//!
//! A series seen in window `w` or `w − 1` is active, so a series stops counting 1–2 windows after it
//! was last seen. A series of `w − 1` always passes in `w` (it is carried over, even beyond the
//! limit); a new series needs room in both `w` items, where the series of `w − 1` not yet carried
//! over still take room (per metric exactly, from the two id sets; per service by the count of
//! `w − 1` not yet matched in `w`). The two updates go in one conditional
//! TransactWriteItems (`size(ids) <= limit − new` and `n <= limit − new`); on a lost race the items
//! are read again and the room recomputed (3 rounds, then the new series are refused).
//!
//! Cost: a request whose series this instance already saw in `w` makes no call (per-instance cache
//! of admitted ids, bounded). Otherwise one BatchGetItem (3 keys per metric with unknown series;
//! a metric item is at most `limit × ~8 B`, 16 KB at 2,000) and, when something is new or carried
//! over, one TransactWriteItems of 2 updates per such metric. Per new series: its 8 bytes in a set
//! and a share of that transaction, not a write of its own. Refused series cost no write; each
//! refused metric costs one UpdateItem of its counter (+1 on the index the first time).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use super::item::{self, Item};
use super::state::batch_get;
use super::store_error;
use crate::aws::errors;
use crate::aws::retry::RetryPolicy;
use crate::cardinality::{
    LimitKind, MetricRefusals, MetricSeries, RefusalReport, RefusedSeries, SeriesLimits,
    SeriesRefusal, MAX_REFUSED_METRICS,
};
use crate::model::{stable_hash, Attributes, SeriesId};
use crate::ports::admission::{AdmissionError, SeriesAdmission};
use crate::ports::StoreError;

/// Admitted ids remembered per instance; the cache is cleared when it reaches this many.
const CACHE_CAPACITY: usize = 200_000;
/// Rounds of read → conditional write when other instances admit at the same time.
const ROUNDS: usize = 3;
const INDEX_KEY: &str = "adm#r#index";
/// Items outlive their window by this much after the window they are still read in (`w + 1`).
const EXPIRY_SLACK_S: i64 = 3_600;

pub struct DynamoSeriesAdmission {
    client: Client,
    table: String,
    limits: SeriesLimits,
    retry: RetryPolicy,
    /// Series id → the window this instance last saw it admitted in.
    admitted: Mutex<HashMap<u64, i64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn admission_error(error: StoreError) -> AdmissionError {
    match error {
        StoreError::Throttled(m) => AdmissionError::Throttled(m),
        other => AdmissionError::Unavailable(other.to_string()),
    }
}

fn metric_key(service: u64, metric: u64, window: i64) -> String {
    format!("adm#m#{service:016x}#{metric:016x}#{window}")
}

fn service_key(service: u64, window: i64) -> String {
    format!("adm#s#{service:016x}#{window}")
}

fn refusal_key(service: &str, metric: &str) -> String {
    format!(
        "adm#r#{:016x}{:016x}",
        stable_hash(&[service]),
        stable_hash(&[metric])
    )
}

fn ids_of(item: Option<&Item>) -> HashSet<u64> {
    match item.and_then(|i| i.get("ids")) {
        Some(AttributeValue::Bs(blobs)) => blobs
            .iter()
            .filter_map(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .collect(),
        _ => HashSet::new(),
    }
}

fn count_of(item: Option<&Item>) -> u64 {
    item.and_then(|i| item::get_opt_n::<u64>(i, "n").ok().flatten())
        .unwrap_or(0)
}

/// One metric of a request, being decided.
struct Pending<'a> {
    index: usize,
    service: u64,
    metric: u64,
    ids: Vec<&'a SeriesId>,
}

impl DynamoSeriesAdmission {
    /// `state_table`: the aggregator's state table (`STATE_TABLE`), shared under the `adm#` prefix.
    pub fn new(config: &SdkConfig, state_table: impl Into<String>, limits: SeriesLimits) -> Self {
        DynamoSeriesAdmission {
            client: Client::new(config),
            table: state_table.into(),
            limits,
            retry: RetryPolicy::default(),
            admitted: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self, now: i64) -> i64 {
        now.div_euclid(self.limits.active_window_seconds.max(1))
    }

    fn expires_at(&self, window: i64) -> i64 {
        (window + 2)
            .saturating_mul(self.limits.active_window_seconds)
            .saturating_add(EXPIRY_SLACK_S)
    }

    async fn get_items(&self, keys: Vec<String>) -> Result<HashMap<String, Item>, AdmissionError> {
        let mut unique = keys;
        unique.sort();
        unique.dedup();
        let request: Vec<Item> = unique
            .into_iter()
            .map(|k| Item::from([("pk".to_string(), item::s(k))]))
            .collect();
        let items = batch_get(
            &self.client,
            &self.retry,
            &self.table,
            request,
            "BatchGetItem (series admission)",
        )
        .await
        .map_err(admission_error)?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i.get("pk") {
                Some(AttributeValue::S(pk)) => Some((pk.clone(), i)),
                _ => None,
            })
            .collect())
    }

    /// Decides one metric's unknown series in window `w`; returns the refused ones and why.
    async fn decide(
        &self,
        w: i64,
        pending: &Pending<'_>,
    ) -> Result<(Vec<SeriesId>, Option<LimitKind>), AdmissionError> {
        let max_metric = u64::from(self.limits.max_series_per_metric);
        let max_service = u64::from(self.limits.max_series_per_service);
        let (mkey, prev_key, skey, prev_skey) = (
            metric_key(pending.service, pending.metric, w),
            metric_key(pending.service, pending.metric, w - 1),
            service_key(pending.service, w),
            service_key(pending.service, w - 1),
        );
        for _ in 0..ROUNDS {
            let items = self
                .get_items(vec![
                    mkey.clone(),
                    prev_key.clone(),
                    skey.clone(),
                    prev_skey.clone(),
                ])
                .await?;
            let current = ids_of(items.get(&mkey));
            let previous = ids_of(items.get(&prev_key));
            // Series of `w − 1` not yet seen in `w` are still active: they take room too, or a new
            // window would open with the whole limit free again.
            let not_carried = previous.difference(&current).count() as u64;
            let service_count = count_of(items.get(&skey));
            // Per service only counts are kept; the previous window's count not yet matched in
            // this one is the (lower-bound) share of its series still active.
            let service_not_carried = count_of(items.get(&prev_skey)).saturating_sub(service_count);
            let metric_room = max_metric.saturating_sub(current.len() as u64 + not_carried);
            let service_room = max_service.saturating_sub(service_count + service_not_carried);
            let mut carried = Vec::new();
            let mut fresh = Vec::new();
            let mut refused = Vec::new();
            let mut limit = None;
            for id in &pending.ids {
                if current.contains(&id.0) {
                    continue;
                }
                if previous.contains(&id.0) {
                    carried.push(id.0);
                } else if (fresh.len() as u64) < metric_room.min(service_room) {
                    fresh.push(id.0);
                } else {
                    limit.get_or_insert(if metric_room <= service_room {
                        LimitKind::PerMetric
                    } else {
                        LimitKind::PerService
                    });
                    refused.push(**id);
                }
            }
            if carried.is_empty() && fresh.is_empty() {
                return Ok((refused, limit));
            }
            match self
                .register(
                    w,
                    &mkey,
                    &skey,
                    &carried,
                    &fresh,
                    max_metric.saturating_sub(not_carried),
                    max_service.saturating_sub(service_not_carried),
                )
                .await?
            {
                true => return Ok((refused, limit)),
                false => continue,
            }
        }
        // Lost every round to other instances: refuse what is new rather than exceed the limits.
        let (mut refused, mut limit) = (Vec::new(), None);
        let items = self.get_items(vec![mkey.clone(), prev_key.clone()]).await?;
        let known: HashSet<u64> = ids_of(items.get(&mkey))
            .union(&ids_of(items.get(&prev_key)))
            .copied()
            .collect();
        for id in &pending.ids {
            if !known.contains(&id.0) {
                limit.get_or_insert(LimitKind::PerMetric);
                refused.push(**id);
            }
        }
        Ok((refused, limit))
    }

    /// One conditional transaction adding `carried` and `fresh` to window `w`; `false` when another
    /// instance took the room first.
    #[allow(clippy::too_many_arguments)]
    async fn register(
        &self,
        w: i64,
        mkey: &str,
        skey: &str,
        carried: &[u64],
        fresh: &[u64],
        max_metric: u64,
        max_service: u64,
    ) -> Result<bool, AdmissionError> {
        let blobs: Vec<Blob> = carried
            .iter()
            .chain(fresh)
            .map(|id| Blob::new(id.to_be_bytes().to_vec()))
            .collect();
        let total = blobs.len() as u64;
        let new = fresh.len() as u64;
        let build = |e: aws_sdk_dynamodb::error::BuildError| {
            AdmissionError::Unavailable(format!("TransactWriteItems request: {e}"))
        };
        let mut metric_update = Update::builder()
            .table_name(&self.table)
            .key("pk", item::s(mkey))
            .update_expression("ADD #ids :ids SET #exp = :exp")
            .expression_attribute_names("#ids", "ids")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":ids", AttributeValue::Bs(blobs))
            .expression_attribute_values(":exp", item::n(self.expires_at(w)));
        let mut service_update = Update::builder()
            .table_name(&self.table)
            .key("pk", item::s(skey))
            .update_expression("ADD #n :total SET #exp = :exp")
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":total", item::n(total))
            .expression_attribute_values(":exp", item::n(self.expires_at(w)));
        if new > 0 {
            metric_update = metric_update
                .condition_expression("attribute_not_exists(#ids) OR size(#ids) <= :room")
                .expression_attribute_values(":room", item::n(max_metric.saturating_sub(new)));
            service_update = service_update
                .condition_expression("attribute_not_exists(#n) OR #n <= :room")
                .expression_attribute_values(":room", item::n(max_service.saturating_sub(new)));
        }
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(metric_update.build().map_err(build)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(service_update.build().map_err(build)?)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if lost_race(&error) => Ok(false),
            Err(error) => Err(admission_error(store_error(
                "TransactWriteItems (series admission)",
                &error,
            ))),
        }
    }
}

/// A failed condition or a concurrent transaction on the same items: read again and retry.
fn lost_race<R: std::fmt::Debug>(error: &SdkError<TransactWriteItemsError, R>) -> bool {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    {
        return cancelled
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .all(|c| c == "None" || c == "ConditionalCheckFailed" || c == "TransactionConflict");
    }
    errors::code(error) == Some("TransactionInProgressException")
}

#[async_trait]
impl SeriesAdmission for DynamoSeriesAdmission {
    fn limits(&self) -> SeriesLimits {
        self.limits
    }

    async fn admit(
        &self,
        now_unix_s: i64,
        groups: &[MetricSeries],
    ) -> Result<Vec<RefusedSeries>, AdmissionError> {
        let w = self.window(now_unix_s);
        let mut verdicts = vec![RefusedSeries::default(); groups.len()];
        let pending: Vec<Pending> = {
            let cache = lock(&self.admitted);
            groups
                .iter()
                .enumerate()
                .map(|(index, group)| Pending {
                    index,
                    service: stable_hash(&[&group.service]),
                    metric: stable_hash(&[&group.metric]),
                    ids: group
                        .ids
                        .iter()
                        .filter(|id| cache.get(&id.0) != Some(&w))
                        .collect(),
                })
                .filter(|p| !p.ids.is_empty())
                .collect()
        };
        for group in &pending {
            let (refused, limit) = self.decide(w, group).await?;
            let refused_set: HashSet<SeriesId> = refused.iter().copied().collect();
            {
                let mut cache = lock(&self.admitted);
                if cache.len() + group.ids.len() > CACHE_CAPACITY {
                    cache.clear();
                }
                for id in &group.ids {
                    if !refused_set.contains(id) {
                        cache.insert(id.0, w);
                    }
                }
            }
            verdicts[group.index] = RefusedSeries {
                ids: refused,
                limit,
            };
        }
        Ok(verdicts)
    }

    async fn record_refusals(
        &self,
        now_unix_s: i64,
        refusals: &[SeriesRefusal],
    ) -> Result<(), AdmissionError> {
        for refusal in refusals {
            let key = refusal_key(&refusal.service, &refusal.metric);
            // Listed in the index while it has room; beyond, only the `other` total grows.
            let listed = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", item::s(INDEX_KEY))
                .update_expression("ADD #keys :key")
                .condition_expression(
                    "attribute_not_exists(#keys) OR contains(#keys, :one) OR size(#keys) < :max",
                )
                .expression_attribute_names("#keys", "keys")
                .expression_attribute_values(":key", AttributeValue::Ss(vec![key.clone()]))
                .expression_attribute_values(":one", item::s(key.as_str()))
                .expression_attribute_values(":max", item::n(MAX_REFUSED_METRICS))
                .send()
                .await;
            let counted_alone = match listed {
                Ok(_) => true,
                Err(error) if errors::code(&error) == Some("ConditionalCheckFailedException") => {
                    false
                }
                Err(error) => {
                    return Err(admission_error(store_error(
                        "UpdateItem (refusals)",
                        &error,
                    )))
                }
            };
            let request = if counted_alone {
                let examples = serde_json::to_string(&refusal.examples)
                    .map_err(|e| AdmissionError::Unavailable(e.to_string()))?;
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", item::s(key))
                    .update_expression(
                        "ADD #points :points SET #service = :service, #metric = :metric, \
                         #limit = :limit, #last = :now, #examples = if_not_exists(#examples, :examples)",
                    )
                    .expression_attribute_names("#points", "points")
                    .expression_attribute_names("#service", "service")
                    .expression_attribute_names("#metric", "metric")
                    .expression_attribute_names("#limit", "limit")
                    .expression_attribute_names("#last", "last_refused")
                    .expression_attribute_names("#examples", "examples")
                    .expression_attribute_values(":points", item::n(refusal.points))
                    .expression_attribute_values(":service", item::s(refusal.service.as_str()))
                    .expression_attribute_values(":metric", item::s(refusal.metric.as_str()))
                    .expression_attribute_values(":limit", item::s(limit_name(refusal.limit)))
                    .expression_attribute_values(":now", item::n(now_unix_s))
                    .expression_attribute_values(":examples", item::s(examples))
            } else {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", item::s(INDEX_KEY))
                    .update_expression("ADD #other :points")
                    .expression_attribute_names("#other", "other")
                    .expression_attribute_values(":points", item::n(refusal.points))
            };
            request
                .send()
                .await
                .map_err(|e| admission_error(store_error("UpdateItem (refusals)", &e)))?;
        }
        Ok(())
    }

    async fn refusals(&self) -> Result<RefusalReport, AdmissionError> {
        let index = self.get_items(vec![INDEX_KEY.to_string()]).await?;
        let index = index.get(INDEX_KEY);
        let keys: Vec<String> = match index.and_then(|i| i.get("keys")) {
            Some(AttributeValue::Ss(keys)) => keys.clone(),
            _ => Vec::new(),
        };
        let other = index
            .and_then(|i| item::get_opt_n::<u64>(i, "other").ok().flatten())
            .unwrap_or(0);
        let items = if keys.is_empty() {
            HashMap::new()
        } else {
            self.get_items(keys).await?
        };
        let mut refusals: Vec<MetricRefusals> = items
            .values()
            .filter_map(|i| {
                let examples: Vec<Attributes> = item::get_s(i, "examples")
                    .ok()
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or_default();
                Some(MetricRefusals {
                    service: item::get_s(i, "service").ok()?.to_string(),
                    metric: item::get_s(i, "metric").ok()?.to_string(),
                    limit: match item::get_s(i, "limit").ok()? {
                        "per_service" => LimitKind::PerService,
                        _ => LimitKind::PerMetric,
                    },
                    refused_points: item::get_opt_n(i, "points").ok().flatten().unwrap_or(0),
                    last_refused_unix_s: item::get_opt_n(i, "last_refused")
                        .ok()
                        .flatten()
                        .unwrap_or(0),
                    examples,
                })
            })
            .collect();
        refusals.sort_by(|a, b| (&a.service, &a.metric).cmp(&(&b.service, &b.metric)));
        Ok(RefusalReport {
            limits: self.limits,
            refusals,
            other_refused_points: other,
        })
    }
}

fn limit_name(limit: LimitKind) -> &'static str {
    match limit {
        LimitKind::PerMetric => "per_metric",
        LimitKind::PerService => "per_service",
    }
}
