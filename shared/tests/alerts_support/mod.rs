//! Shared by the `alerts_*` tests: synthetic series written straight
//! into a real (temporary) metric store, the embedded alert store, and the scriptable HTTP receiver on
//! 127.0.0.1 (`flowscope_core::testing::http_receiver`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flowscope_core::aggregate::BucketStats;
use flowscope_core::alerts::rules::{NotificationSettings, RetrySettings};
use flowscope_core::alerts::state::{fingerprint, Labels, Severity};
use flowscope_core::alerts::{AlertEngine, AlertStatus, AlertTransition, RuleSet, TransitionKind};
use flowscope_core::embedded::{RedbAlertStore, RedbStore};
use flowscope_core::model::{Attributes, MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{BucketDelta, BucketKey, BucketStore, SequenceNumber, SeriesCatalog};

/// An hour boundary: every synthetic minute is counted from here.
pub const T0: i64 = 1_699_999_200;

/// Start of minute `m` after [`T0`].
pub fn minute(m: i64) -> i64 {
    T0 + 60 * m
}

pub type Engine = AlertEngine<RedbStore, RedbAlertStore>;

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub metrics: Arc<RedbStore>,
    pub alerts: Arc<RedbAlertStore>,
    sequence: AtomicU64,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(RedbStore::open(&dir.path().join("metrics.redb")).unwrap());
        let alerts = Arc::new(RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap());
        Fixture {
            _dir: dir,
            metrics,
            alerts,
            sequence: AtomicU64::new(0),
        }
    }

    pub fn engine(&self, rules_yaml: &str) -> Engine {
        let rules = RuleSet::parse(rules_yaml, "test-rules.yaml").unwrap();
        AlertEngine::new(self.metrics.clone(), self.alerts.clone(), Arc::new(rules))
    }

    /// Writes `values` as observations into the 1m bucket of minute `m` of one series, and registers
    /// the series as last seen at the end of that minute (as the aggregator does).
    pub async fn record(
        &self,
        service: &str,
        metric: &str,
        attributes: &[(&str, &str)],
        kind: MetricKind,
        m: i64,
        values: &[f64],
    ) {
        let key = series_key(service, metric, attributes);
        let mut stats = BucketStats::new();
        for v in values {
            stats.observe(*v);
        }
        let seq = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let delta = BucketDelta {
            key: BucketKey {
                series: key.id(),
                resolution: Resolution::OneMinute,
                start_unix_s: minute(m),
            },
            shard_id: "shard-0".into(),
            first_seq: SequenceNumber::from_u128(u128::from(seq)),
            last_seq: SequenceNumber::from_u128(u128::from(seq)),
            stats,
            expires_at_unix_s: T0 + 365 * 86_400,
        };
        self.metrics.apply_bucket(&delta).await.unwrap();
        self.metrics
            .upsert_series(&[SeriesMeta {
                id: key.id(),
                key,
                kind,
                unit: String::new(),
                last_seen_unix_s: minute(m) + 59,
            }])
            .await
            .unwrap();
    }
}

pub fn series_key(service: &str, metric: &str, attributes: &[(&str, &str)]) -> SeriesKey {
    let attributes: Attributes = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    SeriesKey {
        service: service.into(),
        metric: metric.into(),
        attributes,
    }
}

/// (time, kind, severity) of each transition, for compact assertions.
pub fn brief(transitions: &[AlertTransition]) -> Vec<(i64, TransitionKind, Option<&'static str>)> {
    transitions
        .iter()
        .map(|t| (t.at, t.kind, t.severity.map(|s| s.as_str())))
        .collect()
}

#[allow(unused_imports)]
pub use flowscope_core::testing::http_receiver::{serve, Received, Receiver};

/// Notification settings with `attempts` deliveries and short backoffs, and no sinks.
pub fn notification_settings(attempts: u32) -> NotificationSettings {
    NotificationSettings {
        group_wait_s: 30,
        retry: RetrySettings {
            attempts,
            initial_backoff_ms: 20,
            max_backoff_ms: 100,
        },
        sinks: Vec::new(),
    }
}

/// A `kind` transition (firing or resolved, critical, value 1234) of `rule` for `service` at `at`:
/// what the notification tests dispatch.
pub fn transition(service: &str, rule: &str, kind: TransitionKind, at: i64) -> AlertTransition {
    let mut labels = Labels::new();
    labels.insert("service".into(), service.into());
    let resolved = kind == TransitionKind::Resolved;
    AlertTransition {
        fingerprint: fingerprint(rule, &labels),
        rule: rule.into(),
        labels,
        kind,
        status: if resolved {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        },
        previous_status: if resolved {
            AlertStatus::Firing
        } else {
            AlertStatus::Pending
        },
        severity: Some(Severity::Critical),
        previous_severity: Some(Severity::Critical),
        value: Some(1234.0),
        reason: None,
        at,
        summary: format!("{rule} summary"),
        by: None,
    }
}
