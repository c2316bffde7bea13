//! Shared by the `alerts_*` tests (and `cli/tests/local_alerts.rs`): synthetic series written straight
//! into a real (temporary) metric store, the embedded alert store, and a scriptable HTTP receiver on
//! 127.0.0.1.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flowscope_core::aggregate::BucketStats;
use flowscope_core::alerts::rules::{NotificationSettings, RetrySettings};
use flowscope_core::alerts::{AlertEngine, AlertTransition, RuleSet, TransitionKind};
use flowscope_core::embedded::{RedbAlertStore, RedbStore};
use flowscope_core::model::{Attributes, MetricKind, Resolution, SeriesKey, SeriesMeta};
use flowscope_core::ports::{BucketDelta, BucketKey, MetricStore, SequenceNumber};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// One HTTP request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 that answers the n-th request with `statuses[n]` (the last
/// status repeats) and records every request.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(statuses: Vec<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = serve(listener, statuses, |socket| async move { Some(socket) });
        Receiver { url, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Accepts connections on `listener`, opens each with `open` (plain TCP as is, or a TLS handshake;
/// `None` drops the connection), records its one request and answers the n-th with `statuses[n]`
/// (the last repeats). Returns the record of requests.
pub fn serve<S, Open, Opening>(
    listener: TcpListener,
    statuses: Vec<u16>,
    open: Open,
) -> Arc<Mutex<Vec<Received>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    Open: Fn(TcpStream) -> Opening + Send + 'static,
    Opening: Future<Output = Option<S>> + Send,
{
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let Some(mut stream) = open(socket).await else {
                continue;
            };
            let request = read_request(&mut stream).await;
            let status = {
                let mut log = log.lock().unwrap();
                log.push(request);
                *statuses
                    .get(log.len() - 1)
                    .or(statuses.last())
                    .unwrap_or(&200)
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 6\r\nconnection: close\r\n\r\nstatus"
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    received
}

async fn read_request(socket: &mut (impl AsyncRead + Unpin)) -> Received {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break buffer.len();
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let mut received = Received {
        head: String::from_utf8_lossy(&buffer[..head_end]).into_owned(),
        body: buffer[head_end..].to_vec(),
    };
    let length: usize = received
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while received.body.len() < length {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        received.body.extend_from_slice(&chunk[..n]);
    }
    received
}

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
