//! The series registry: one item per series under its service, one item per service under `services`,
//! and the `by_series_id` index for lookups by id. Only Queries, never a Scan.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use futures::stream::{self, TryStreamExt};

use super::item::{self, get_n, get_s, Item, ItemError};
use super::{query_all, store_error, DynamoStore};
use crate::model::{MetricKind, SeriesId, SeriesKey, SeriesMeta};
use crate::ports::StoreError;

/// Partition of the service list.
const SERVICES_PK: &str = "services";
/// Name of the index from series id to series item.
pub(crate) const BY_SERIES_ID_INDEX: &str = "by_series_id";
/// Registry writes in flight at once.
const CONCURRENT_WRITES: usize = 16;

fn service_pk(service: &str) -> String {
    format!("svc#{service}")
}

fn series_sk(meta: &SeriesMeta) -> String {
    format!("{}#{}", meta.key.metric, meta.id)
}

fn kind_text(kind: MetricKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(text)) => text,
        _ => format!("{kind:?}"),
    }
}

fn decode_series(item: &Item) -> Result<SeriesMeta, StoreError> {
    let decode = || -> Result<SeriesMeta, ItemError> {
        let invalid = |attribute: &str, reason: String| ItemError {
            attribute: attribute.to_string(),
            reason,
        };
        let id: SeriesId = get_s(item, "series_id")?
            .parse()
            .map_err(|e| invalid("series_id", e))?;
        let key: SeriesKey =
            serde_json::from_str(get_s(item, "key")?).map_err(|e| invalid("key", e.to_string()))?;
        let kind: MetricKind =
            serde_json::from_value(serde_json::Value::String(get_s(item, "kind")?.to_string()))
                .map_err(|e| invalid("kind", e.to_string()))?;
        Ok(SeriesMeta {
            id,
            key,
            kind,
            unit: get_s(item, "unit")?.to_string(),
            last_seen_unix_s: get_n(item, "last_seen")?,
        })
    };
    decode().map_err(|e| StoreError::Corrupt {
        key: format!(
            "series {}",
            item.get("series_id")
                .and_then(|v| v.as_s().ok())
                .map_or("?", String::as_str)
        ),
        reason: e.to_string(),
    })
}

impl DynamoStore {
    pub(super) async fn upsert_series_items(
        &self,
        series: &[SeriesMeta],
    ) -> Result<(), StoreError> {
        let table = self.series_table()?;
        // One write per series even when a batch names it many times: keep the newest sighting.
        let mut newest: BTreeMap<SeriesId, &SeriesMeta> = BTreeMap::new();
        for meta in series {
            let slot = newest.entry(meta.id).or_insert(meta);
            if meta.last_seen_unix_s > slot.last_seen_unix_s {
                *slot = meta;
            }
        }
        stream::iter(newest.into_values().map(Ok))
            .try_for_each_concurrent(CONCURRENT_WRITES, |meta| self.upsert_one(table, meta))
            .await?;

        let services: BTreeSet<&str> = series.iter().map(|m| m.key.service.as_str()).collect();
        let unknown: Vec<&str> = {
            let known = self.known_services();
            services
                .into_iter()
                .filter(|s| !known.contains(*s))
                .collect()
        };
        stream::iter(unknown.into_iter().map(Ok))
            .try_for_each_concurrent(CONCURRENT_WRITES, |service| async move {
                self.client
                    .put_item()
                    .table_name(table)
                    .item("pk", item::s(SERVICES_PK))
                    .item("sk", item::s(service))
                    .send()
                    .await
                    .map_err(|e| store_error("PutItem (service)", &e))?;
                self.known_services().insert(service.to_string());
                Ok(())
            })
            .await
    }

    fn known_services(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        // A set of names: a panic elsewhere cannot leave it half-written.
        self.known_services
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the series item unless it already records a sighting at least as new.
    async fn upsert_one(&self, table: &str, meta: &SeriesMeta) -> Result<(), StoreError> {
        let key_json = serde_json::to_string(&meta.key).map_err(|e| StoreError::Corrupt {
            key: format!("series {}", meta.id),
            reason: format!("cannot encode the series key: {e}"),
        })?;
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key("pk", item::s(service_pk(&meta.key.service)))
            .key("sk", item::s(series_sk(meta)))
            .update_expression(
                "SET #series_id = :id, #key = :key, #kind = :kind, #unit = :unit, #last_seen = :last_seen",
            )
            .condition_expression("attribute_not_exists(#last_seen) OR #last_seen < :last_seen")
            .expression_attribute_names("#series_id", "series_id")
            .expression_attribute_names("#key", "key")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#unit", "unit")
            .expression_attribute_names("#last_seen", "last_seen")
            .expression_attribute_values(":id", item::s(meta.id.to_string()))
            .expression_attribute_values(":key", item::s(key_json))
            .expression_attribute_values(":kind", item::s(kind_text(meta.kind)))
            .expression_attribute_values(":unit", item::s(&meta.unit))
            .expression_attribute_values(":last_seen", item::n(meta.last_seen_unix_s))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already seen at this time or later: last_seen only moves forward.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("UpdateItem (series)", &e)),
        }
    }

    pub(super) async fn query_services(&self) -> Result<Vec<String>, StoreError> {
        let table = self.series_table()?;
        let request = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", item::s(SERVICES_PK));
        let items = query_all(request, "Query (services)").await?;
        let mut services = items
            .iter()
            .map(|item| {
                get_s(item, "sk")
                    .map(str::to_string)
                    .map_err(|e| StoreError::Corrupt {
                        key: "service list".to_string(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        services.sort();
        services.dedup();
        Ok(services)
    }

    pub(super) async fn query_series_of(
        &self,
        service: &str,
    ) -> Result<Vec<SeriesMeta>, StoreError> {
        let table = self.series_table()?;
        let request = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", item::s(service_pk(service)));
        let items = query_all(request, "Query (series)").await?;
        let mut series = items
            .iter()
            .map(decode_series)
            .collect::<Result<Vec<_>, _>>()?;
        // The sort key is `<metric>#<id>`, but a metric containing '#' would sort out of place.
        series.sort_by(|a, b| (&a.key.metric, a.id).cmp(&(&b.key.metric, b.id)));
        Ok(series)
    }

    pub(super) async fn query_series_by_id(
        &self,
        id: SeriesId,
    ) -> Result<Option<SeriesMeta>, StoreError> {
        let table = self.series_table()?;
        let output = self
            .client
            .query()
            .table_name(table)
            .index_name(BY_SERIES_ID_INDEX)
            .key_condition_expression("#series_id = :id")
            .expression_attribute_names("#series_id", "series_id")
            .expression_attribute_values(":id", item::s(id.to_string()))
            .send()
            .await
            .map_err(|e| store_error("Query (series by id)", &e))?;
        output.items().first().map(decode_series).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attributes;

    #[test]
    fn series_items_decode_back_to_the_registered_meta() {
        let mut attributes = Attributes::new();
        attributes.insert("route".into(), "/checkout".into());
        let key = SeriesKey {
            service: "api".into(),
            metric: "http.server.duration".into(),
            attributes,
        };
        let meta = SeriesMeta {
            id: key.id(),
            key: key.clone(),
            kind: MetricKind::ExponentialHistogram,
            unit: "ms".into(),
            last_seen_unix_s: 1_700_000_000,
        };
        let mut item = Item::new();
        item.insert("pk".into(), item::s(service_pk("api")));
        item.insert("sk".into(), item::s(series_sk(&meta)));
        item.insert("series_id".into(), item::s(meta.id.to_string()));
        item.insert("key".into(), item::s(serde_json::to_string(&key).unwrap()));
        item.insert("kind".into(), item::s(kind_text(meta.kind)));
        item.insert("unit".into(), item::s("ms"));
        item.insert("last_seen".into(), item::n(meta.last_seen_unix_s));
        assert_eq!(kind_text(meta.kind), "exponential_histogram");
        assert_eq!(decode_series(&item).unwrap(), meta);

        item.insert("kind".into(), item::s("sparkline"));
        assert!(matches!(
            decode_series(&item),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
