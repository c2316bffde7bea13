//! The answer to a `subscribe` on AWS, read from DynamoDB (the functions are stateless: there is no
//! hub holding the latest buckets or a replay buffer as in local mode).
//!
//! - Without `last_seq` (or with one the store cannot answer for): a `snapshot` of the newest two
//!   1-minute buckets of each subscribed series seen within the horizon, as local mode's snapshot.
//! - With `last_seq` (on AWS a `seq` is the fan-out's clock in unix milliseconds) no older than
//!   [`SnapshotConfig::resume_window_ms`]: a `metrics_update` of the 1-minute buckets written since
//!   then (bucket items carry `updated_ms`), or nothing when none changed. A late point written into
//!   a bucket that started before `last_seq` is not in it (it is in the query API's history).

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::LambdaError;
use crate::aws::dynamodb::BucketImage;
use crate::aws::DynamoStore;
use crate::live::{LiveUpdate, ServerMessage};
use crate::model::{Resolution, SeriesId, SeriesMeta};
use crate::ports::{SeriesCatalog, StoreError, Subscription};

/// Default of [`SnapshotConfig::max_series`] (`SNAPSHOT_MAX_SERIES`).
pub const DEFAULT_SNAPSHOT_MAX_SERIES: usize = 1000;

/// Bucket queries in flight at once while building one snapshot.
const CONCURRENT_QUERIES: usize = 16;

/// Buckets per series a snapshot carries: the current one and the one before it (as local mode).
const SNAPSHOT_BUCKETS: usize = 2;

/// Slack for a resume: a bucket written this long before `last_seq` may not have reached the client
/// yet when it left (stream and fan-out latency), so it is sent again (clients replace by key).
const RESUME_SLACK_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// Series a snapshot reads at most, the most recently seen first (one DynamoDB Query each).
    pub max_series: usize,
    /// Series not seen for this long are left out (as local mode's snapshot horizon).
    pub horizon_seconds: i64,
    /// A `last_seq` older than this (or from the future) gets a snapshot instead of a catch-up.
    pub resume_window_ms: i64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            max_series: DEFAULT_SNAPSHOT_MAX_SERIES,
            horizon_seconds: 3600,
            resume_window_ms: 15 * 60 * 1000,
        }
    }
}

impl SnapshotConfig {
    /// The defaults, with `SNAPSHOT_MAX_SERIES` when set.
    pub fn from_env() -> Result<SnapshotConfig, LambdaError> {
        Self::with_max_series(std::env::var("SNAPSHOT_MAX_SERIES").ok().as_deref())
    }

    /// The defaults, with `max_series` from `SNAPSHOT_MAX_SERIES`'s text when it is set and not blank.
    pub fn with_max_series(text: Option<&str>) -> Result<SnapshotConfig, LambdaError> {
        let mut config = SnapshotConfig::default();
        if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
            config.max_series = text
                .parse()
                .map_err(|e| LambdaError::Config(format!("SNAPSHOT_MAX_SERIES={text:?}: {e}")))?;
        }
        Ok(config)
    }
}

/// What a subscribe reply reads: the series registry and each series' newest buckets.
#[async_trait]
pub trait LatestBuckets: Send + Sync {
    async fn list_services(&self) -> Result<Vec<String>, StoreError>;
    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError>;
    /// The newest `limit` buckets starting at or after `since_unix_s`, in any order.
    async fn latest_buckets(
        &self,
        series: SeriesId,
        resolution: Resolution,
        since_unix_s: i64,
        limit: usize,
    ) -> Result<Vec<BucketImage>, StoreError>;
}

#[async_trait]
impl LatestBuckets for DynamoStore {
    async fn list_services(&self) -> Result<Vec<String>, StoreError> {
        SeriesCatalog::list_services(self).await
    }

    async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
        SeriesCatalog::list_series(self, service).await
    }

    async fn latest_buckets(
        &self,
        series: SeriesId,
        resolution: Resolution,
        since_unix_s: i64,
        limit: usize,
    ) -> Result<Vec<BucketImage>, StoreError> {
        DynamoStore::latest_buckets(self, series, resolution, since_unix_s, limit).await
    }
}

/// The reply to a subscribe (see the module documentation); `None` when a resume missed nothing.
pub async fn subscribe_reply<B: LatestBuckets + ?Sized>(
    store: &B,
    config: &SnapshotConfig,
    subscription: &Subscription,
    last_seq: Option<u64>,
    now_unix_ms: i64,
) -> Result<Option<ServerMessage>, StoreError> {
    let now_s = now_unix_ms.div_euclid(1000);
    let series = wanted_series(store, config, subscription, now_s).await?;
    let seq = u64::try_from(now_unix_ms).unwrap_or(0);
    let resume_from = last_seq
        .and_then(|last| i64::try_from(last).ok())
        .filter(|&last| {
            last <= now_unix_ms + RESUME_SLACK_MS
                && now_unix_ms.saturating_sub(last) <= config.resume_window_ms
        });
    let (since_unix_s, limit, changed_since_ms) = match resume_from {
        Some(last) => {
            let since =
                Resolution::OneMinute.bucket_start((last - RESUME_SLACK_MS).div_euclid(1000));
            // Every 1-minute bucket from `since` to now, and one of spare.
            let limit = usize::try_from((now_s - since).div_euclid(60) + 2).unwrap_or(2);
            (since, limit, Some(last - RESUME_SLACK_MS))
        }
        None => (now_s - config.horizon_seconds, SNAPSHOT_BUCKETS, None),
    };
    let per_series: Vec<Vec<LiveUpdate>> = stream::iter(series)
        .map(|meta| async move {
            let images = store
                .latest_buckets(meta.id, Resolution::OneMinute, since_unix_s, limit)
                .await?;
            Ok::<_, StoreError>(
                images
                    .into_iter()
                    .filter(|image| match changed_since_ms {
                        // Items written before `updated_ms` existed count as changed.
                        Some(since) => image.updated_unix_ms.is_none_or(|u| u >= since),
                        None => true,
                    })
                    .map(|image| {
                        LiveUpdate::from_bucket(
                            &meta,
                            image.key.resolution,
                            image.key.start_unix_s,
                            &image.stats,
                        )
                    })
                    .collect(),
            )
        })
        .buffered(CONCURRENT_QUERIES)
        .try_collect()
        .await?;
    let mut updates: Vec<LiveUpdate> = per_series.into_iter().flatten().collect();
    updates.sort_by(|a, b| {
        (&a.series.series_id, a.resolution, a.bucket.start).cmp(&(
            &b.series.series_id,
            b.resolution,
            b.bucket.start,
        ))
    });
    Ok(match changed_since_ms {
        Some(_) if updates.is_empty() => None,
        Some(_) => Some(ServerMessage::MetricsUpdate {
            seq,
            part: 1,
            parts: 1,
            updates,
        }),
        None => Some(ServerMessage::Snapshot {
            seq,
            part: 1,
            parts: 1,
            updates,
        }),
    })
}

/// The subscribed series seen within the horizon, the most recently seen first, at most
/// `max_series` of them.
async fn wanted_series<B: LatestBuckets + ?Sized>(
    store: &B,
    config: &SnapshotConfig,
    subscription: &Subscription,
    now_s: i64,
) -> Result<Vec<SeriesMeta>, StoreError> {
    let services = if subscription.services.is_empty() {
        store.list_services().await?
    } else {
        subscription.services.clone()
    };
    let oldest = now_s - config.horizon_seconds;
    let mut series = Vec::new();
    for service in &services {
        series.extend(
            store
                .list_series(service)
                .await?
                .into_iter()
                .filter(|meta| {
                    meta.last_seen_unix_s >= oldest
                        && subscription.wants(&meta.key.service, &meta.key.metric)
                }),
        );
    }
    series.sort_by(|a, b| {
        b.last_seen_unix_s
            .cmp(&a.last_seen_unix_s)
            .then(a.id.cmp(&b.id))
    });
    if series.len() > config.max_series {
        tracing::info!(
            series = series.len(),
            max_series = config.max_series,
            "snapshot limited to the most recently seen series (SNAPSHOT_MAX_SERIES)"
        );
        series.truncate(config.max_series);
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::domain::stats::BucketStats;
    use crate::model::{Attributes, MetricKind, SeriesKey};
    use crate::ports::BucketKey;

    /// Series and their buckets as (start, updated_ms, value); counts the queries made.
    #[derive(Default)]
    struct Fake {
        series: Vec<SeriesMeta>,
        buckets: BTreeMap<SeriesId, Vec<(i64, i64, f64)>>,
        queries: Mutex<u64>,
    }

    fn meta(id: u64, service: &str, metric: &str, last_seen: i64) -> SeriesMeta {
        SeriesMeta {
            id: SeriesId(id),
            key: SeriesKey {
                service: service.into(),
                metric: metric.into(),
                attributes: Attributes::new(),
            },
            kind: MetricKind::Gauge,
            unit: String::new(),
            last_seen_unix_s: last_seen,
        }
    }

    #[async_trait]
    impl LatestBuckets for Fake {
        async fn list_services(&self) -> Result<Vec<String>, StoreError> {
            let mut services: Vec<String> =
                self.series.iter().map(|m| m.key.service.clone()).collect();
            services.dedup();
            Ok(services)
        }
        async fn list_series(&self, service: &str) -> Result<Vec<SeriesMeta>, StoreError> {
            Ok(self
                .series
                .iter()
                .filter(|m| m.key.service == service)
                .cloned()
                .collect())
        }
        async fn latest_buckets(
            &self,
            series: SeriesId,
            resolution: Resolution,
            since: i64,
            limit: usize,
        ) -> Result<Vec<BucketImage>, StoreError> {
            *self.queries.lock().unwrap() += 1;
            let mut found: Vec<_> = self
                .buckets
                .get(&series)
                .into_iter()
                .flatten()
                .filter(|(start, _, _)| *start >= since)
                .collect();
            found.sort_by_key(|(start, _, _)| -start);
            Ok(found
                .into_iter()
                .take(limit)
                .map(|&(start, updated, value)| {
                    let mut stats = BucketStats::new();
                    stats.observe(value);
                    BucketImage {
                        key: BucketKey {
                            series,
                            resolution,
                            start_unix_s: start,
                        },
                        stats,
                        expires_at_unix_s: i64::MAX,
                        updated_unix_ms: Some(updated),
                    }
                })
                .collect())
        }
    }

    const NOW_S: i64 = 1_700_000_070; // 30 s into the minute starting at 1_700_000_040.
    const NOW_MS: i64 = NOW_S * 1000;

    fn store() -> Fake {
        let minute = Resolution::OneMinute.bucket_start(NOW_S);
        let mut fake = Fake {
            series: vec![
                meta(1, "api", "cpu", NOW_S - 5),
                meta(2, "api", "mem", NOW_S - 30),
                meta(3, "db", "cpu", NOW_S - 10),
                meta(4, "api", "old", NOW_S - 7200),
            ],
            ..Fake::default()
        };
        let ms = |s: i64| s * 1000;
        fake.buckets.insert(
            SeriesId(1),
            vec![
                (minute - 120, ms(minute - 60), 1.0),
                (minute - 60, ms(minute), 2.0),
                (minute, ms(NOW_S - 5), 3.0),
            ],
        );
        fake.buckets
            .insert(SeriesId(2), vec![(minute - 60, ms(minute - 10), 4.0)]);
        fake.buckets
            .insert(SeriesId(3), vec![(minute, ms(NOW_S - 10), 5.0)]);
        fake.buckets
            .insert(SeriesId(4), vec![(NOW_S - 7200, ms(NOW_S - 7200), 6.0)]);
        fake
    }

    fn subscription(services: &[&str], metrics: &[&str]) -> Subscription {
        Subscription {
            services: services.iter().map(|s| s.to_string()).collect(),
            metrics: metrics.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn keys(message: &ServerMessage) -> Vec<(String, i64)> {
        let updates = match message {
            ServerMessage::Snapshot { updates, .. }
            | ServerMessage::MetricsUpdate { updates, .. } => updates,
            other => panic!("unexpected {other:?}"),
        };
        updates
            .iter()
            .map(|u| (u.series.metric.clone(), u.bucket.start))
            .collect()
    }

    #[test]
    fn snapshot_max_series_defaults_to_1000_and_refuses_a_non_number() {
        assert_eq!(
            SnapshotConfig::with_max_series(None).unwrap().max_series,
            1000
        );
        assert_eq!(
            SnapshotConfig::with_max_series(Some(" "))
                .unwrap()
                .max_series,
            1000
        );
        assert_eq!(
            SnapshotConfig::with_max_series(Some("25"))
                .unwrap()
                .max_series,
            25
        );
        assert!(matches!(
            SnapshotConfig::with_max_series(Some("lots")),
            Err(LambdaError::Config(_))
        ));
    }

    #[tokio::test]
    async fn a_subscribe_gets_the_newest_two_buckets_of_its_services_recent_series() {
        let fake = store();
        let minute = Resolution::OneMinute.bucket_start(NOW_S);
        let reply = subscribe_reply(
            &fake,
            &SnapshotConfig::default(),
            &subscription(&["api"], &[]),
            None,
            NOW_MS,
        )
        .await
        .unwrap()
        .unwrap();
        assert!(matches!(reply, ServerMessage::Snapshot { seq, .. } if seq == NOW_MS as u64));
        assert_eq!(
            keys(&reply),
            vec![
                ("cpu".to_string(), minute - 60),
                ("cpu".to_string(), minute),
                ("mem".to_string(), minute - 60),
            ],
            "db is not subscribed; `old` was not seen within the horizon and is not even queried"
        );
        assert_eq!(*fake.queries.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn the_snapshot_reads_at_most_max_series_the_most_recently_seen_first() {
        let fake = store();
        let config = SnapshotConfig {
            max_series: 1,
            ..SnapshotConfig::default()
        };
        let reply = subscribe_reply(&fake, &config, &subscription(&[], &["cpu"]), None, NOW_MS)
            .await
            .unwrap()
            .unwrap();
        let services: Vec<String> = match &reply {
            ServerMessage::Snapshot { updates, .. } => {
                updates.iter().map(|u| u.series.service.clone()).collect()
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            services,
            vec!["api", "api"],
            "db's cpu was seen less recently"
        );
        assert_eq!(*fake.queries.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_resume_gets_what_changed_since_last_seq_or_a_snapshot_when_too_old() {
        let fake = store();
        let minute = Resolution::OneMinute.bucket_start(NOW_S);
        let config = SnapshotConfig::default();
        let api = subscription(&["api"], &[]);
        // Left 3 s ago: the slack re-sends what was written in the minute before.
        let recent = subscribe_reply(&fake, &config, &api, Some((NOW_MS - 3000) as u64), NOW_MS)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(recent, ServerMessage::MetricsUpdate { .. }));
        assert_eq!(
            keys(&recent),
            vec![
                ("cpu".to_string(), minute - 60),
                ("cpu".to_string(), minute),
                ("mem".to_string(), minute - 60),
            ]
        );
        // A local-mode sequence number or one from long ago: a snapshot.
        for last in [
            42_u64,
            (NOW_MS - 3_600_000) as u64,
            (NOW_MS + 3_600_000) as u64,
        ] {
            let reply = subscribe_reply(&fake, &config, &api, Some(last), NOW_MS)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(reply, ServerMessage::Snapshot { .. }),
                "{last}: {reply:?}"
            );
        }
        // Nothing of db changed in the last 2 minutes + slack: nothing to send.
        let mut idle = store();
        idle.buckets
            .insert(SeriesId(3), vec![(minute - 600, (NOW_S - 600) * 1000, 5.0)]);
        let nothing = subscribe_reply(
            &idle,
            &config,
            &subscription(&["db"], &[]),
            Some((NOW_MS - 1000) as u64),
            NOW_MS,
        )
        .await
        .unwrap();
        assert_eq!(nothing, None);
    }
}
