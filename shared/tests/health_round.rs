//! The core health round (issue 13, health score on both deployments): `probing::health_round` and
//! the scheduled probe function's `probe_and_score_rounds` with in-memory ports — the registry in a
//! temporary redb file, the metric store in memory fed by the real aggregator, a recording stream
//! sink behind `Ingest`, and a recording live-event sink.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flowscope_core::aggregate::Aggregator;
use flowscope_core::embedded::{RedbAlertStore, RedbRegistryStore};
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::model::{PointData, Retention};
use flowscope_core::ports::{
    LiveEvent, LiveEventSink, SeriesCatalog, ShardBatch, StoreError, StreamRecord,
};
use flowscope_core::probing::{health_round, probe_and_score_rounds, HealthPorts, Prober};
use flowscope_core::registry::probe::{probe_request, ProbeResult, ProbeSettings, ProbeTarget};
use flowscope_core::registry::score::{ScoreSettings, SCORE_METRIC};
use flowscope_core::registry::{Registration, Registry, RegistryLimits};
use flowscope_core::testing::memory_store::MemoryStore;
use flowscope_core::testing::otlp::{RecordingSink, SinkBehaviour};
use flowscope_core::testing::points::seq;
use serde_json::Value;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Keeps what it was given; fails every publish when `fail` is set.
#[derive(Default)]
struct RecordingLive {
    events: Mutex<Vec<LiveEvent>>,
    fail: bool,
}

impl RecordingLive {
    fn frames(&self) -> Vec<(String, Value)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.service.clone(), serde_json::from_str(&e.json).unwrap()))
            .collect()
    }
}

#[async_trait]
impl LiveEventSink for RecordingLive {
    async fn publish(&self, events: &[LiveEvent]) -> Result<(), StoreError> {
        if self.fail {
            return Err(StoreError::Unavailable("live table down".into()));
        }
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

struct World {
    _dir: tempfile::TempDir,
    registry: Registry,
    metrics: Arc<MemoryStore>,
    alerts: RedbAlertStore,
    sink: Arc<RecordingSink>,
    ingest: Ingest<RecordingSink>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbRegistryStore::open(&dir.path().join("registry.redb")).unwrap();
    let alerts = RedbAlertStore::open(&dir.path().join("alerts.redb")).unwrap();
    let sink = RecordingSink::new(SinkBehaviour::Accept);
    World {
        registry: Registry::new(Arc::new(store), RegistryLimits::default()),
        metrics: MemoryStore::new(),
        alerts,
        ingest: Ingest::new(sink.clone(), IngestLimits::default()),
        sink,
        _dir: dir,
    }
}

impl World {
    fn ports<'a>(&'a self, live: &'a dyn LiveEventSink) -> HealthPorts<'a, RecordingSink> {
        HealthPorts {
            registry: &self.registry,
            metrics: self.metrics.as_ref(),
            alerts: &self.alerts,
            ingest: &self.ingest,
            live,
        }
    }

    async fn register(&self, service: &str, instance: &str, lease_seconds: i64, now: i64) {
        let registration = Registration {
            service: service.into(),
            instance: instance.into(),
            version: None,
            host: None,
            metadata: Default::default(),
            health_url: Some("http://127.0.0.1:9/healthz".into()),
            metrics_url: None,
            lease_seconds: Some(lease_seconds),
        };
        self.registry.register(&registration, now).await.unwrap();
    }

    /// Probe results of `service` (one per `up` value) aggregated into the metric store through
    /// the receiver and the real aggregator, as the probe series reach it in both deployments.
    async fn probed(&self, service: &str, ups: &[bool], now: i64) {
        let results: Vec<ProbeResult> = ups
            .iter()
            .enumerate()
            .map(|(i, up)| ProbeResult {
                target: ProbeTarget {
                    service: service.into(),
                    instance: format!("i-{i}"),
                    url: "http://127.0.0.1:9/healthz".into(),
                },
                up: *up,
                duration: Duration::from_millis(20),
                status: up.then_some(200),
                error: None,
                at_unix_nano: u64::try_from(now).unwrap() * 1_000_000_000,
            })
            .collect();
        let feed = RecordingSink::new(SinkBehaviour::Accept);
        let ingest = Ingest::new(feed.clone(), IngestLimits::default());
        assert_eq!(
            ingest.handle_metrics(&probe_request(&results)).await.status,
            200
        );
        let records: Vec<StreamRecord> = feed
            .entries()
            .into_iter()
            .enumerate()
            .map(|(n, entry)| StreamRecord {
                shard_id: "shard-0".into(),
                sequence_number: seq(n as u128 + 1),
                partition_key: entry.partition_key,
                data: entry.data,
                arrival_unix_ms: now * 1000,
            })
            .collect();
        let aggregator =
            Aggregator::new(self.metrics.clone(), Retention::default()).with_clock(move || now);
        aggregator
            .process(&ShardBatch {
                shard_id: "shard-0".into(),
                records,
            })
            .await;
        assert!(!self.metrics.list_series(service).await.unwrap().is_empty());
    }

    /// The `flowscope.health.score` points the round wrote, per service.
    fn score_points(&self) -> Vec<(String, f64)> {
        self.sink
            .points()
            .into_iter()
            .filter(|p| p.series.key().metric == SCORE_METRIC)
            .map(|p| {
                let PointData::Gauge(v) = p.data else {
                    panic!("the score is a gauge")
                };
                (p.series.key().service.clone(), v)
            })
            .collect()
    }
}

#[tokio::test]
async fn a_round_scores_each_service_pushes_health_events_and_writes_the_score_series() {
    let world = world();
    let now = now_s();
    world.register("checkout", "i-0", 600, now).await;
    world.probed("checkout", &[true, true], now).await;
    let live = RecordingLive::default();

    let report = health_round(
        &world.ports(&live),
        &ScoreSettings::default(),
        now,
        u64::try_from(now).unwrap() * 1_000_000_000,
    )
    .await
    .expect("a round");

    assert_eq!((report.services, report.scored, report.events), (1, 1, 1));
    assert_eq!(report.ingest_status, 200);
    let frames = world_frames(&live, "health");
    assert_eq!(frames.len(), 1);
    let (service, frame) = &frames[0];
    assert_eq!(service, "checkout");
    assert_eq!(frame["service"], "checkout");
    assert_eq!(frame["at"], now);
    let score = frame["score"].as_f64().expect("a known score");
    assert_eq!(frame["inputs"]["probe_availability"], 1.0, "{frame}");
    // The same score is stored as a series and kept for `GET /api/services`.
    assert_eq!(world.score_points(), vec![("checkout".to_string(), score)]);
    assert_eq!(
        world.registry.health_of("checkout").and_then(|h| h.score),
        Some(score)
    );
}

#[tokio::test]
async fn a_service_whose_probes_fail_scores_lower_than_a_healthy_one() {
    let world = world();
    let now = now_s();
    world.probed("healthy", &[true, true], now).await;
    world.probed("failing", &[false, false], now).await;
    let live = RecordingLive::default();
    health_round(
        &world.ports(&live),
        &ScoreSettings::default(),
        now,
        nanos(now),
    )
    .await
    .expect("a round");
    let scores: std::collections::BTreeMap<String, f64> =
        world.score_points().into_iter().collect();
    assert!(
        scores["failing"] < scores["healthy"],
        "failing {} healthy {}",
        scores["failing"],
        scores["healthy"]
    );
    let failing = world_frames(&live, "health")
        .into_iter()
        .find(|(s, _)| s == "failing")
        .expect("an event for the failing service")
        .1;
    assert_eq!(failing["inputs"]["probe_availability"], 0.0, "{failing}");
}

#[tokio::test]
async fn a_registered_service_with_no_data_is_unknown_pushed_but_not_written_as_a_score() {
    let world = world();
    let now = now_s();
    world.register("silent", "i-0", 600, now).await;
    let live = RecordingLive::default();
    let report = health_round(
        &world.ports(&live),
        &ScoreSettings::default(),
        now,
        nanos(now),
    )
    .await
    .expect("a round");
    assert_eq!((report.services, report.scored, report.events), (1, 0, 1));
    assert_eq!(report.ingest_status, 0, "nothing to write");
    let frames = world_frames(&live, "health");
    assert_eq!(frames[0].1["score"], Value::Null, "{}", frames[0].1);
    assert_eq!(frames[0].1["status"], "unknown", "{}", frames[0].1);
    assert!(world.score_points().is_empty(), "a gap, not a zero");
}

#[tokio::test]
async fn a_failing_live_sink_does_not_stop_the_score_series() {
    let world = world();
    let now = now_s();
    world.probed("checkout", &[true], now).await;
    let live = RecordingLive {
        fail: true,
        ..RecordingLive::default()
    };
    let report = health_round(
        &world.ports(&live),
        &ScoreSettings::default(),
        now,
        nanos(now),
    )
    .await
    .expect("a round");
    assert_eq!(report.events, 0);
    assert_eq!(report.ingest_status, 200);
    assert_eq!(world.score_points().len(), 1);
}

#[tokio::test]
async fn registry_changes_go_to_the_registrys_live_sink_as_registry_events() {
    let world = world();
    let live = Arc::new(RecordingLive::default());
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(
        Arc::new(RedbRegistryStore::open(&dir.path().join("r.redb")).unwrap()),
        RegistryLimits::default(),
    )
    .with_live_events(live.clone());
    let now = now_s();
    let registration = Registration {
        service: "api".into(),
        instance: "i-1".into(),
        version: Some("1.2".into()),
        host: None,
        metadata: Default::default(),
        health_url: None,
        metrics_url: Some("http://127.0.0.1:9/metrics".into()),
        lease_seconds: Some(60),
    };
    registry.register(&registration, now).await.unwrap();
    registry
        .scraped("api", "i-1", "http://127.0.0.1:9/metrics", 90, now)
        .await
        .unwrap();
    registry.deregister("api", "i-1", now + 1).await.unwrap();
    let actions: Vec<(String, String, String)> = world_frames(&live, "registry")
        .into_iter()
        .map(|(service, f)| {
            (
                service,
                f["action"].as_str().unwrap().to_string(),
                f["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("api".into(), "registered".into(), "registered".into()),
            ("api".into(), "discovered".into(), "scraped".into()),
            ("api".into(), "deregistered".into(), "registered".into()),
        ]
    );
    drop(world);
}

#[tokio::test]
async fn the_scheduled_rounds_expire_lapsed_leases_probe_and_score() {
    let dir = tempfile::tempdir().unwrap();
    let live = Arc::new(RecordingLive::default());
    let mut world = world();
    world.registry = Registry::new(
        Arc::new(RedbRegistryStore::open(&dir.path().join("r.redb")).unwrap()),
        RegistryLimits::default(),
    )
    .with_live_events(live.clone());
    let start = now_s();
    world.register("short", "i-0", 5, start - 100).await;
    world.register("long", "i-0", 600, start).await;
    let prober = Prober::new(ProbeSettings {
        timeout: Duration::from_millis(500),
        ..ProbeSettings::default()
    })
    .unwrap();
    let rounds = probe_and_score_rounds(
        &world.ports(live.as_ref()),
        &prober,
        &ScoreSettings::default(),
        2,
        Duration::from_millis(10),
        now_s,
    )
    .await;
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[0].expired.as_ref().ok(), Some(&1), "{:?}", rounds[0]);
    assert_eq!(rounds[1].expired.as_ref().ok(), Some(&0), "{:?}", rounds[1]);
    for round in &rounds {
        let probe = round.probe.as_ref().expect("probed");
        assert_eq!(
            (probe.probed, probe.up),
            (1, 0),
            "only the live lease, down"
        );
        assert!(round.health.is_ok(), "{round:?}");
    }
    let expired: Vec<Value> = world_frames(&live, "registry")
        .into_iter()
        .map(|(_, f)| f)
        .filter(|f| f["action"] == "expired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["service"], "short");
    let health = world_frames(&live, "health");
    assert!(
        health.iter().any(|(s, _)| s == "long"),
        "each round pushes the registered service's health: {health:?}"
    );
}

fn world_frames(live: &RecordingLive, kind: &str) -> Vec<(String, Value)> {
    live.frames()
        .into_iter()
        .filter(|(_, f)| f["type"] == kind)
        .collect()
}

fn nanos(unix_s: i64) -> u64 {
    u64::try_from(unix_s).unwrap() * 1_000_000_000
}
