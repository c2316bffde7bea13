//! Bucket items: the watermark-guarded read-merge-write of one batch's contribution, range queries, and
//! decoding an item (also a DynamoDB Streams image, for the fan-out).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::item::{self, get_n, get_opt_b, get_opt_n, get_s, get_string_map, Item, ItemError};
use super::{query_all, query_up_to, store_error, DynamoStore};
use crate::domain::stats::BucketStats;
use crate::model::{Resolution, SeriesId};
use crate::ports::{ApplyOutcome, BucketDelta, BucketKey, SequenceNumber, StoreError};
use crate::sketch::Sketch;

/// `<series_id>#<resolution>`.
pub(crate) fn bucket_pk(series: SeriesId, resolution: Resolution) -> String {
    format!("{series}#{resolution}")
}

fn parse_bucket_pk(pk: &str) -> Result<(SeriesId, Resolution), ItemError> {
    let invalid = |reason: String| ItemError {
        attribute: "pk".to_string(),
        reason,
    };
    let (series, resolution) = pk
        .split_once('#')
        .ok_or_else(|| invalid(format!("{pk:?} is not <series_id>#<resolution>")))?;
    Ok((
        series.parse().map_err(invalid)?,
        resolution.parse().map_err(invalid)?,
    ))
}

/// A decoded bucket item.
#[derive(Debug, Clone)]
pub struct BucketImage {
    pub key: BucketKey,
    pub stats: BucketStats,
    pub expires_at_unix_s: i64,
    /// When it was last written (unix ms); `None` for items written before the attribute existed.
    pub updated_unix_ms: Option<i64>,
}

/// Unix milliseconds now.
fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Decodes a bucket item, e.g. the `NewImage` of a DynamoDB Streams record of the buckets table.
pub fn decode_bucket_image(
    item: &HashMap<String, AttributeValue>,
) -> Result<BucketImage, StoreError> {
    decode_image(item).map_err(|e| corrupt(item, e))
}

fn decode_image(item: &Item) -> Result<BucketImage, ItemError> {
    let (series, resolution) = parse_bucket_pk(get_s(item, "pk")?)?;
    Ok(BucketImage {
        key: BucketKey {
            series,
            resolution,
            start_unix_s: get_n(item, "start")?,
        },
        stats: decode_stats(item)?,
        expires_at_unix_s: get_opt_n(item, "expires_at")?.unwrap_or(i64::MAX),
        updated_unix_ms: get_opt_n(item, "updated_ms")?,
    })
}

fn decode_stats(item: &Item) -> Result<BucketStats, ItemError> {
    let sketch = match get_opt_b(item, "sketch")? {
        Some(bytes) => Sketch::from_bytes(bytes).map_err(|e| ItemError {
            attribute: "sketch".to_string(),
            reason: e.to_string(),
        })?,
        None => Sketch::new(),
    };
    Ok(BucketStats {
        count: get_opt_n(item, "count")?.unwrap_or(0),
        sum: get_opt_n(item, "sum")?.unwrap_or(0.0),
        min: get_opt_n(item, "min")?,
        max: get_opt_n(item, "max")?,
        sketch,
    })
}

fn corrupt(item: &Item, error: ItemError) -> StoreError {
    let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned();
    let start = item.get("start").and_then(|v| v.as_n().ok()).cloned();
    StoreError::Corrupt {
        key: format!(
            "bucket {}/{}",
            pk.unwrap_or_default(),
            start.unwrap_or_default()
        ),
        reason: error.to_string(),
    }
}

/// What the read half of the read-merge-write found.
struct StoredBucket {
    stats: BucketStats,
    /// Shard id → zero-padded sequence number of the highest record applied.
    watermarks: HashMap<String, String>,
    version: u64,
    expires_at_unix_s: i64,
}

impl StoredBucket {
    fn decode(item: &Item) -> Result<StoredBucket, StoreError> {
        let decode = || -> Result<StoredBucket, ItemError> {
            Ok(StoredBucket {
                stats: decode_stats(item)?,
                watermarks: get_string_map(item, "wm")?,
                version: get_opt_n(item, "version")?.unwrap_or(0),
                expires_at_unix_s: get_opt_n(item, "expires_at")?.unwrap_or(0),
            })
        };
        decode().map_err(|e| corrupt(item, e))
    }

    fn watermark(&self, shard_id: &str) -> Result<Option<SequenceNumber>, StoreError> {
        self.watermarks
            .get(shard_id)
            .map(|text| {
                SequenceNumber::from_padded(text).map_err(|e| StoreError::Corrupt {
                    key: format!("watermark of shard {shard_id}"),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }
}

fn encode_item(
    pk: &str,
    start: i64,
    stats: &BucketStats,
    watermarks: &HashMap<String, String>,
    version: u64,
    expires_at_unix_s: i64,
    updated_unix_ms: i64,
) -> Result<Item, ItemError> {
    let mut item = Item::new();
    item.insert("pk".into(), item::s(pk));
    item.insert("start".into(), item::n(start));
    item.insert("count".into(), item::n(stats.count));
    item.insert("sum".into(), item::n_f64("sum", stats.sum)?);
    if let Some(min) = stats.min {
        item.insert("min".into(), item::n_f64("min", min)?);
    }
    if let Some(max) = stats.max {
        item.insert("max".into(), item::n_f64("max", max)?);
    }
    item.insert("sketch".into(), item::b(stats.sketch.to_bytes()));
    item.insert(
        "wm".into(),
        AttributeValue::M(
            watermarks
                .iter()
                .map(|(shard, seq)| (shard.clone(), item::s(seq)))
                .collect(),
        ),
    );
    item.insert("version".into(), item::n(version));
    item.insert("expires_at".into(), item::n(expires_at_unix_s));
    // When the bucket last changed: a resubscribing WebSocket client is sent what changed since
    // its `last_seq` (see `aws::lambda::snapshot`).
    item.insert("updated_ms".into(), item::n(updated_unix_ms));
    Ok(item)
}

/// How a conditional write ended.
enum WriteResult {
    Written,
    /// The condition failed; carries the item as it is now when DynamoDB returned it.
    ConditionFailed(Option<Item>),
}

impl DynamoStore {
    pub(super) async fn apply_bucket_delta(
        &self,
        delta: &BucketDelta,
    ) -> Result<ApplyOutcome, StoreError> {
        let table = self.buckets_table()?;
        let pk = bucket_pk(delta.key.series, delta.key.resolution);
        let start = delta.key.start_unix_s;
        let mut attempts = self.retry.start();
        // The item as a failed write saw it, which saves re-reading it.
        let mut seen: Option<Item> = None;
        while attempts.next().await {
            let current = match seen.take() {
                Some(item) => Some(item),
                None => self.read_bucket(table, &pk, start).await?,
            };
            let stored = current.as_ref().map(StoredBucket::decode).transpose()?;
            if let Some(stored) = &stored {
                if let Some(watermark) = stored.watermark(&delta.shard_id)? {
                    if watermark >= delta.first_seq {
                        return Ok(ApplyOutcome::AlreadyApplied { watermark });
                    }
                }
            }
            let (mut stats, mut watermarks, version, expires_at) = match stored {
                Some(s) => (s.stats, s.watermarks, Some(s.version), s.expires_at_unix_s),
                None => (BucketStats::new(), HashMap::new(), None, 0),
            };
            stats.merge(&delta.stats);
            watermarks.insert(delta.shard_id.clone(), delta.last_seq.padded());
            let item = encode_item(
                &pk,
                start,
                &stats,
                &watermarks,
                version.map_or(1, |v| v + 1),
                expires_at.max(delta.expires_at_unix_s),
                now_unix_ms(),
            )
            .map_err(|e| corrupt(&Item::from([("pk".to_string(), item::s(&pk))]), e))?;
            match self
                .write_bucket(table, item, version, &delta.shard_id, &delta.first_seq)
                .await?
            {
                WriteResult::Written => return Ok(ApplyOutcome::Applied(stats)),
                // Either another writer bumped the version (retry on its result) or the watermark
                // moved past this contribution (the next round reports AlreadyApplied).
                WriteResult::ConditionFailed(now) => seen = now,
            }
        }
        Err(StoreError::Throttled(format!(
            "bucket {pk}/{start}: concurrent writers kept winning after {} attempts",
            attempts.made()
        )))
    }

    async fn read_bucket(
        &self,
        table: &str,
        pk: &str,
        start: i64,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key("pk", item::s(pk))
            .key("start", item::n(start))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem (bucket)", &e))?;
        Ok(output.item().cloned())
    }

    /// Writes the merged item if nobody wrote the bucket since it was read (`version`) and the shard's
    /// watermark is still below this contribution.
    async fn write_bucket(
        &self,
        table: &str,
        item: Item,
        read_version: Option<u64>,
        shard_id: &str,
        first_seq: &SequenceNumber,
    ) -> Result<WriteResult, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = match read_version {
            None => request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk"),
            Some(version) => request
                .condition_expression(
                    "#version = :version AND (attribute_not_exists(#wm.#shard) OR #wm.#shard < :first_seq)",
                )
                .expression_attribute_names("#version", "version")
                .expression_attribute_names("#wm", "wm")
                .expression_attribute_names("#shard", shard_id)
                .expression_attribute_values(":version", item::n(version))
                .expression_attribute_values(":first_seq", item::s(first_seq.padded())),
        };
        match request.send().await {
            Ok(_) => Ok(WriteResult::Written),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(WriteResult::ConditionFailed(failed.item().cloned()))
                }
                _ => Err(store_error("PutItem (bucket)", &error)),
            },
        }
    }

    pub(super) async fn query_bucket_range(
        &self,
        series: SeriesId,
        resolution: Resolution,
        from_unix_s: i64,
        to_unix_s: i64,
    ) -> Result<Vec<(i64, BucketStats)>, StoreError> {
        let table = self.buckets_table()?;
        // The store's range is half-open; BETWEEN is inclusive and starts are whole seconds.
        let last = to_unix_s.saturating_sub(1);
        if from_unix_s > last {
            return Ok(Vec::new());
        }
        let request = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk AND #start BETWEEN :from AND :last")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#start", "start")
            .expression_attribute_values(":pk", item::s(bucket_pk(series, resolution)))
            .expression_attribute_values(":from", item::n(from_unix_s))
            .expression_attribute_values(":last", item::n(last))
            .consistent_read(true);
        let items = query_all(request, "Query (buckets)").await?;
        let mut buckets = items
            .iter()
            .map(|item| {
                decode_bucket_image(item).map(|image| (image.key.start_unix_s, image.stats))
            })
            .collect::<Result<Vec<_>, _>>()?;
        buckets.sort_by_key(|(start, _)| *start);
        Ok(buckets)
    }
}

impl DynamoStore {
    /// The newest `limit` buckets of a series at `resolution` starting at or after `since_unix_s`,
    /// newest first: one Query reading only those items (`ScanIndexForward=false`, `Limit`), so a
    /// WebSocket snapshot costs about one read unit per series, not the series' whole hour.
    pub async fn latest_buckets(
        &self,
        series: SeriesId,
        resolution: Resolution,
        since_unix_s: i64,
        limit: usize,
    ) -> Result<Vec<BucketImage>, StoreError> {
        let table = self.buckets_table()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let request = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk AND #start >= :since")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#start", "start")
            .expression_attribute_values(":pk", item::s(bucket_pk(series, resolution)))
            .expression_attribute_values(":since", item::n(since_unix_s))
            .scan_index_forward(false);
        let items = query_up_to(request, limit, "Query (latest buckets)").await?;
        items.iter().map(decode_bucket_image).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_items_round_trip_with_exact_statistics() {
        let mut stats = BucketStats::new();
        for v in [0.5, 12.25, 3.0, 1e-3] {
            stats.observe(v);
        }
        let series = SeriesId(0x0123_4567_89ab_cdef);
        let pk = bucket_pk(series, Resolution::FiveMinutes);
        assert_eq!(pk, "0123456789abcdef#5m");
        let mut wm = HashMap::new();
        wm.insert(
            "shardId-000000000000".to_string(),
            SequenceNumber::from_u128(42).padded(),
        );
        let item = encode_item(&pk, 300, &stats, &wm, 3, 9_999, 1_700_000_000_123).unwrap();
        let image = decode_bucket_image(&item).unwrap();
        assert_eq!(image.updated_unix_ms, Some(1_700_000_000_123));
        assert_eq!(image.key.series, series);
        assert_eq!(image.key.resolution, Resolution::FiveMinutes);
        assert_eq!(image.key.start_unix_s, 300);
        assert_eq!(image.expires_at_unix_s, 9_999);
        assert_eq!(image.stats.count, 4);
        assert_eq!(image.stats.sum, stats.sum);
        assert_eq!(image.stats.min, Some(1e-3));
        assert_eq!(image.stats.max, Some(12.25));
        assert_eq!(image.stats.quantile(0.5), stats.quantile(0.5));
        let stored = StoredBucket::decode(&item).unwrap();
        assert_eq!(stored.version, 3);
        assert_eq!(
            stored.watermark("shardId-000000000000").unwrap(),
            Some(SequenceNumber::from_u128(42))
        );
        assert_eq!(stored.watermark("shardId-000000000001").unwrap(), None);
    }

    #[test]
    fn an_empty_bucket_has_no_extremes() {
        let item = encode_item(
            "0000000000000001#1m",
            60,
            &BucketStats::new(),
            &HashMap::new(),
            1,
            0,
            0,
        )
        .unwrap();
        assert!(!item.contains_key("min") && !item.contains_key("max"));
        let image = decode_bucket_image(&item).unwrap();
        assert_eq!((image.stats.count, image.stats.min), (0, None));
    }

    #[test]
    fn corrupt_items_are_errors_naming_the_bucket() {
        let mut item = Item::new();
        item.insert("pk".into(), item::s("not-a-key"));
        item.insert("start".into(), item::n(60));
        match decode_bucket_image(&item) {
            Err(StoreError::Corrupt { key, .. }) => assert!(key.contains("not-a-key"), "{key}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let mut item = Item::new();
        item.insert("pk".into(), item::s("0000000000000001#1m"));
        item.insert("start".into(), item::n(60));
        item.insert("sketch".into(), item::b(vec![0xff, 0x13, 0x00]));
        assert!(matches!(
            decode_bucket_image(&item),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
