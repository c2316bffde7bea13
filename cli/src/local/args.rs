//! Flags and environment of `flowscope local`.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use anyhow::Context;
use flowscope_core::auth::ApiKeys;
use flowscope_core::cardinality::SeriesLimits;
use flowscope_core::model::Retention;
use flowscope_core::tokens::{Authenticator, Scope, Scopes, TokenIssuer};

use super::serve::{ErrorStyle, ServeConfig};

/// Default of `--series-last-seen-step-seconds`: a series' `last_seen` is stored at most every 30 s
/// (health scores call telemetry stale after minutes; retention counts in days).
const DEFAULT_LAST_SEEN_STEP_S: u32 = 30;

#[derive(clap::Args, Debug, Clone)]
pub struct LocalArgs {
    /// Address of the OTLP/HTTP receiver.
    #[arg(long, env = "FLOWSCOPE_OTLP_ADDR", default_value = "127.0.0.1:4318")]
    pub otlp_addr: SocketAddr,
    /// Address of the dashboard, query API and WebSocket (the local API Gateway).
    #[arg(long, env = "FLOWSCOPE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Where the stream log and the store live; data survives restarts.
    #[arg(long, env = "FLOWSCOPE_DATA_DIR", default_value = ".flowscope")]
    pub data_dir: PathBuf,
    /// The built dashboard (`npm run build` in dashboard/).
    #[arg(
        long,
        env = "FLOWSCOPE_DASHBOARD_DIR",
        default_value = "dashboard/dist"
    )]
    pub dashboard_dir: PathBuf,
    /// Shards of the embedded stream (parallel aggregation lanes).
    #[arg(long, env = "FLOWSCOPE_SHARDS", default_value_t = 4)]
    pub shards: u32,
    /// Largest OTLP request body accepted, in bytes (compressed size).
    #[arg(long, env = "FLOWSCOPE_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Records one aggregator batch may hold per shard (Lambda's BatchSize).
    #[arg(long, env = "FLOWSCOPE_AGGREGATOR_BATCH_RECORDS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub aggregator_batch_records: u64,
    /// Bytes of stream records one aggregator batch may hold per shard; a batch is decoded whole,
    /// so this bounds the aggregator's memory when it falls behind.
    #[arg(long, env = "FLOWSCOPE_AGGREGATOR_BATCH_BYTES", default_value_t = super::mapper::DEFAULT_BATCH_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(64 * 1024..=64 * 1024 * 1024))]
    pub aggregator_batch_bytes: u64,
    /// Backpressure: while the aggregator is this far behind on a shard (its oldest unprocessed
    /// record waited this long), the OTLP receiver answers 503 with `Retry-After` for data of that
    /// shard instead of accepting what it cannot aggregate in time. `500ms`, `1s`, `5s`; `off`
    /// accepts whatever the stream log can hold.
    #[arg(long, env = "FLOWSCOPE_MAX_AGGREGATOR_LAG", default_value = "1s",
          value_parser = parse_max_lag)]
    pub max_aggregator_lag: MaxLag,
    /// Page cache of the metric store (redb), in bytes; colder pages are read from disk.
    #[arg(long, env = "FLOWSCOPE_STORE_CACHE_BYTES", default_value_t = flowscope_core::embedded::store::DEFAULT_CACHE_BYTES)]
    pub store_cache_bytes: usize,
    /// Every Nth commit of the aggregator's store writes is made durable (fsync), besides the sync
    /// before each stream checkpoint: bounds the pages redb holds between syncs. 0 = only at checkpoints.
    #[arg(long, env = "FLOWSCOPE_STORE_SYNC_EVERY_COMMITS", default_value_t = flowscope_core::embedded::store::DEFAULT_SYNC_EVERY_COMMITS)]
    pub store_sync_every_commits: u32,
    /// Seconds a series' stored `last_seen` may trail its newest point: a re-registration that
    /// moves only `last_seen`, by less than this, is not written (0 = every newer one is).
    #[arg(long, env = "FLOWSCOPE_SERIES_LAST_SEEN_STEP_SECONDS", default_value_t = DEFAULT_LAST_SEEN_STEP_S,
          value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub series_last_seen_step_seconds: u32,
    /// Limits of both HTTP servers (boxed: keeps the `local` command's arguments small).
    #[command(flatten)]
    pub server: Box<ServerLimits>,
    /// The service registry and its health probes (see `registry.rs`).
    #[command(flatten)]
    pub registry: Box<super::registry::RegistryArgs>,
    /// Profile ingest and storage (see `profiles.rs`).
    #[command(flatten)]
    pub profiles: Box<super::profiles::ProfileArgs>,
    /// Attributes one OTLP data point or span may carry; a point with more is refused in the
    /// partial success.
    #[arg(
        long,
        env = "FLOWSCOPE_MAX_ATTRIBUTES_PER_POINT",
        default_value_t = 128
    )]
    pub max_attributes_per_point: usize,
    /// Bytes of one attribute value; a point with a longer value is refused (not truncated).
    #[arg(
        long,
        env = "FLOWSCOPE_MAX_ATTRIBUTE_VALUE_BYTES",
        default_value_t = 4096
    )]
    pub max_attribute_value_bytes: usize,
    /// OTLP data points (or spans) one request may carry; those beyond are refused, the rest kept.
    #[arg(
        long,
        env = "FLOWSCOPE_MAX_POINTS_PER_REQUEST",
        default_value_t = 100_000
    )]
    pub max_points_per_request: usize,
    /// Data points + spans per second each ingest key may send (the credential in `x-api-key` /
    /// `Authorization: Bearer` on the OTLP port; requests without one share one key); over it: 429
    /// with `Retry-After`, nothing of the request kept. 0 = no limit.
    #[arg(
        long,
        env = "FLOWSCOPE_INGEST_KEY_POINTS_PER_SECOND",
        default_value_t = 1_000_000
    )]
    pub ingest_key_points_per_second: u32,
    /// OTLP requests per second each ingest key may send; over it: 429 with `Retry-After`. 0 = no limit.
    #[arg(
        long,
        env = "FLOWSCOPE_INGEST_KEY_REQUESTS_PER_SECOND",
        default_value_t = 10_000
    )]
    pub ingest_key_requests_per_second: u32,
    /// Ingest keys whose rate limits are tracked at once; new keys beyond share one bucket.
    #[arg(long, env = "FLOWSCOPE_INGEST_KEY_MAX_KEYS", default_value_t = 10_000)]
    pub ingest_key_max_keys: usize,
    /// Require this token on the query API (`Authorization: Bearer` or `x-api-key`), the WebSocket
    /// (`?token=`) and `@connections`; the dashboard asks for it. Without it, anyone who reaches the
    /// HTTP address may read (keep that on 127.0.0.1).
    #[arg(long, env = "FLOWSCOPE_TOKEN")]
    pub token: Option<String>,
    /// The key that may replace the alert rules (`PUT /api/alert-rules`); it is accepted wherever
    /// `--token` is. Without it, whoever holds `--token` may (anyone when there is no token).
    #[arg(long, env = "FLOWSCOPE_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// A key with the `ingest` scope only; when set, the OTLP port needs a credential with that
    /// scope (this key, `--token`, `--admin-token` or a token carrying `ingest`).
    #[arg(long, env = "FLOWSCOPE_INGEST_TOKEN")]
    pub ingest_token: Option<String>,
    /// Secret (≥ 32 bytes) that signs short-lived tokens: `POST /api/token` with a key answers one,
    /// accepted like the key (`Authorization: Bearer`, `?token=` on the WebSocket). Needs `--token`.
    #[arg(long, env = "FLOWSCOPE_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Lifetime of a token from `POST /api/token` (`15m`, `1h`, …).
    #[arg(long, env = "FLOWSCOPE_TOKEN_TTL", default_value = "15m")]
    pub token_ttl: String,
    /// Use the AWS adapters (Kinesis, DynamoDB, API Gateway management) against `AWS_ENDPOINT_URL`
    /// — emulators, LocalStack or a real account — instead of the embedded ones. Needs a build
    /// with `--features aws`.
    #[arg(long, env = "FLOWSCOPE_AWS")]
    pub aws: bool,
    /// With `--aws`: prefix of the stream and table names (`<prefix>-points`, `<prefix>-buckets`, …).
    #[arg(long, env = "FLOWSCOPE_AWS_PREFIX", default_value = "flowscope-local")]
    pub aws_prefix: String,
    /// Alert rules (YAML). Default: `infra/alert-rules.yaml` when it exists, else the built-in
    /// copy of the shipped defaults.
    #[arg(long, env = "FLOWSCOPE_ALERT_RULES")]
    pub alert_rules: Option<PathBuf>,
    /// Active series a service may have; points of further new series are refused (partial success).
    #[arg(long, env = "FLOWSCOPE_MAX_SERIES_PER_SERVICE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_series_per_service: u32,
    /// Active series one metric of a service may have.
    #[arg(long, env = "FLOWSCOPE_MAX_SERIES_PER_METRIC", default_value_t = 2_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_series_per_metric: u32,
    /// A series not seen for this long stops counting against the series limits (e.g. 1h, 30m).
    #[arg(long, env = "FLOWSCOPE_SERIES_ACTIVE_WINDOW", default_value = "1h")]
    pub series_active_window: String,
    /// Retention of 1-minute buckets (e.g. 7d, 12h).
    #[arg(long, env = "FLOWSCOPE_RETENTION_1M", default_value = "7d")]
    pub retention_1m: String,
    /// Retention of 5-minute buckets.
    #[arg(long, env = "FLOWSCOPE_RETENTION_5M", default_value = "30d")]
    pub retention_5m: String,
    /// Retention of 1-hour buckets.
    #[arg(long, env = "FLOWSCOPE_RETENTION_1H", default_value = "365d")]
    pub retention_1h: String,
    /// Retention of daily (1d, UTC) buckets.
    #[arg(long, env = "FLOWSCOPE_RETENTION_1D", default_value = "365d")]
    pub retention_1d: String,
    /// Largest WebSocket message a client may send, in bytes; larger closes it with 1009.
    #[arg(long, env = "FLOWSCOPE_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    pub ws_max_message_bytes: u64,
    /// Bytes of server messages queued for one WebSocket client; one further behind is closed with
    /// 1013 and resynchronises. At least one 128 KiB message.
    #[arg(long, env = "FLOWSCOPE_WS_SEND_QUEUE_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(128 * 1024..=1024 * 1024 * 1024))]
    pub ws_send_queue_bytes: u64,
    /// Bytes of recent flushes kept to replay to reconnecting WebSocket clients (also at most 300
    /// flushes); an older gap gets a snapshot.
    #[arg(long, env = "FLOWSCOPE_WS_REPLAY_BYTES", default_value_t = 8 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(0..=4 * 1024 * 1024 * 1024))]
    pub ws_replay_bytes: u64,
    /// Series whose newest buckets are kept in memory for WebSocket snapshots; beyond it the series
    /// updated least recently leave the snapshot (their history stays in the store and the query API).
    #[arg(long, env = "FLOWSCOPE_LIVE_SNAPSHOT_MAX_SERIES",
          default_value_t = flowscope_core::live::DEFAULT_SNAPSHOT_MAX_SERIES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=100_000_000))]
    pub live_snapshot_max_series: usize,
    /// Prometheus scraping (`--scrape-config` and its limits).
    #[command(flatten)]
    pub scrape: super::scrape::ScrapeArgs,
    /// Evaluation times one expression query may have (`/api/query`, `/api/v1/query_range`).
    #[arg(long, env = "FLOWSCOPE_QUERY_MAX_STEPS", default_value_t = 11_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub query_max_steps: usize,
    /// Series the selectors of one expression query may select together (and `/api/v1/series` list).
    #[arg(long, env = "FLOWSCOPE_QUERY_MAX_SERIES", default_value_t = 10_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub query_max_series: usize,
    /// The query routes' circuit breaker and stale answers.
    #[command(flatten)]
    pub query_store: super::query_store::QueryStoreArgs,
    /// Samples (loaded buckets and held points) one expression query may hold at once; beyond, 422.
    /// A sample that keeps its sketch (read by `quantile`, `quantile_over_time`,
    /// `histogram_quantile`) counts 30; every other sample is held without one and counts 1.
    #[arg(long, env = "FLOWSCOPE_QUERY_MAX_SAMPLES", default_value_t = flowscope_core::expr::DEFAULT_MAX_SAMPLES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000_000))]
    pub query_max_samples: usize,
}

/// Timeouts and size limits of both local HTTP servers (see `serve.rs`).
#[derive(clap::Args, Debug, Clone)]
pub struct ServerLimits {
    /// A request head (request line and headers) must arrive whole within this time (e.g. 10s); an
    /// idle keep-alive connection is closed after it too. Both ports.
    #[arg(long, env = "FLOWSCOPE_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: String,
    /// Longest pause inside a request: between chunks of a request body, or while a response waits
    /// for a client that does not read. Both ports.
    #[arg(long, env = "FLOWSCOPE_IDLE_TIMEOUT", default_value = "60s")]
    pub idle_timeout: String,
    /// Open connections per port (WebSockets included); at the limit new connections wait in the
    /// listen backlog until one closes.
    #[arg(long, env = "FLOWSCOPE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Longest request URI (path and query) accepted, in bytes; longer → 414. Both ports.
    #[arg(long, env = "FLOWSCOPE_MAX_URI_BYTES", default_value_t = 8 * 1024)]
    pub max_uri_bytes: usize,
    /// Largest request header section accepted, in bytes (names + values); larger → 431. Both ports.
    #[arg(long, env = "FLOWSCOPE_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Largest request body on the dashboard/API port (alert routes, `@connections`); larger → 413.
    #[arg(long, env = "FLOWSCOPE_MAX_API_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_api_body_bytes: usize,
}

impl LocalArgs {
    pub fn retention(&self) -> anyhow::Result<Retention> {
        Ok(Retention {
            one_minute_seconds: parse_duration_seconds(&self.retention_1m)
                .context("--retention-1m")?,
            five_minutes_seconds: parse_duration_seconds(&self.retention_5m)
                .context("--retention-5m")?,
            one_hour_seconds: parse_duration_seconds(&self.retention_1h)
                .context("--retention-1h")?,
            one_day_seconds: parse_duration_seconds(&self.retention_1d)
                .context("--retention-1d")?,
        })
    }

    /// The hardened server's limits for one port.
    pub fn serve_config(&self, errors: ErrorStyle) -> anyhow::Result<ServeConfig> {
        let limits = &self.server;
        anyhow::ensure!(
            limits.max_connections > 0,
            "--max-connections must be at least 1"
        );
        let seconds = |text: &str, flag: &str| -> anyhow::Result<Duration> {
            let s = parse_duration_seconds(text).with_context(|| flag.to_string())?;
            Ok(Duration::from_secs(
                u64::try_from(s).context(flag.to_string())?,
            ))
        };
        Ok(ServeConfig {
            header_read_timeout: seconds(&limits.header_read_timeout, "--header-read-timeout")?,
            idle_timeout: seconds(&limits.idle_timeout, "--idle-timeout")?,
            max_connections: limits.max_connections,
            max_uri_bytes: limits.max_uri_bytes,
            max_header_bytes: limits.max_header_bytes,
            max_body_bytes: match errors {
                ErrorStyle::Api => Some(limits.max_api_body_bytes),
                ErrorStyle::Otlp => None,
            },
            errors,
        })
    }

    pub fn ws_limits(&self) -> super::connections::WsLimits {
        super::connections::WsLimits {
            max_inbound_bytes: usize::try_from(self.ws_max_message_bytes).unwrap_or(usize::MAX),
            send_queue_bytes: usize::try_from(self.ws_send_queue_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The backpressure bound, `None` when it is off.
    pub fn max_aggregator_lag(&self) -> Option<Duration> {
        self.max_aggregator_lag.0
    }

    pub fn batch_limits(&self) -> super::mapper::BatchLimits {
        super::mapper::BatchLimits {
            records: usize::try_from(self.aggregator_batch_records).unwrap_or(usize::MAX),
            bytes: usize::try_from(self.aggregator_batch_bytes).unwrap_or(usize::MAX),
        }
    }

    pub fn ws_replay_bytes(&self) -> usize {
        usize::try_from(self.ws_replay_bytes).unwrap_or(usize::MAX)
    }

    pub fn series_limits(&self) -> anyhow::Result<SeriesLimits> {
        Ok(SeriesLimits {
            max_series_per_service: self.max_series_per_service,
            max_series_per_metric: self.max_series_per_metric,
            active_window_seconds: parse_duration_seconds(&self.series_active_window)
                .context("--series-active-window")?,
        })
    }

    pub fn ws_keys(&self) -> anyhow::Result<ApiKeys> {
        Ok(match &self.token {
            // An empty token would silently mean "no credential": refuse it.
            Some(token) if token.trim().is_empty() => {
                anyhow::bail!("--token (FLOWSCOPE_TOKEN) is empty: give a token or leave it out")
            }
            Some(token) => ApiKeys::from_clear_keys([token.trim()]),
            None => ApiKeys::default(),
        })
    }

    /// Keys and their scopes: `--token` reads and ingests (and is admin without `--admin-token`),
    /// `--admin-token` may do everything, `--ingest-token` only ingest; tokens with `--token-secret`.
    /// No key: open (local mode's zero-config default).
    pub fn authenticator(&self) -> anyhow::Result<Authenticator> {
        let mut reader = vec![Scope::Read, Scope::Ingest];
        if self.admin_token.is_none() {
            reader.push(Scope::Admin);
        }
        let clear = |flag: &str, value: &Option<String>| -> anyhow::Result<ApiKeys> {
            Ok(match value {
                Some(key) if key.trim().is_empty() => {
                    anyhow::bail!("{flag} is empty: give a token or leave it out")
                }
                Some(key) => ApiKeys::from_clear_keys([key.trim()]),
                None => ApiKeys::default(),
            })
        };
        let auth = Authenticator::new()
            .with_keys(self.ws_keys()?, Scopes::of(&reader))
            .with_keys(
                clear("--admin-token (FLOWSCOPE_ADMIN_TOKEN)", &self.admin_token)?,
                Scopes::ALL,
            )
            .with_keys(
                clear(
                    "--ingest-token (FLOWSCOPE_INGEST_TOKEN)",
                    &self.ingest_token,
                )?,
                Scopes::of(&[Scope::Ingest]),
            );
        let Some(secret) = &self.token_secret else {
            return Ok(auth);
        };
        anyhow::ensure!(
            self.token.is_some(),
            "--token-secret needs --token: tokens are issued for a key"
        );
        let ttl = parse_duration_seconds(&self.token_ttl).context("--token-ttl")?;
        let issuer = TokenIssuer::new(secret.as_bytes(), ttl)
            .map_err(|e| anyhow::anyhow!("--token-secret (FLOWSCOPE_TOKEN_SECRET): {e}"))?;
        Ok(auth.with_tokens(issuer))
    }

    /// Who may replace the alert rules: `--admin-token`, else whoever holds `--token`, else anyone.
    pub fn rule_writers(&self) -> anyhow::Result<flowscope_core::http::rules::RuleWriters> {
        use flowscope_core::http::rules::RuleWriters;
        Ok(match &self.admin_token {
            Some(token) if token.trim().is_empty() => anyhow::bail!(
                "--admin-token (FLOWSCOPE_ADMIN_TOKEN) is empty: give a token or leave it out"
            ),
            Some(token) => RuleWriters::Keys(ApiKeys::from_clear_keys([token.trim()])),
            None if self.token.is_some() => RuleWriters::Keys(self.ws_keys()?),
            None => RuleWriters::Anyone,
        })
    }
}

/// `--max-aggregator-lag`: a duration, `None` for `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxLag(pub Option<Duration>);

/// `off`, whole milliseconds (`250ms`, for sub-second bounds) or a duration as the other flags take
/// it (`1s`, `1m`); at least 1 ms.
fn parse_max_lag(text: &str) -> anyhow::Result<MaxLag> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(MaxLag(None));
    }
    let lag = match text.strip_suffix("ms").map(str::trim) {
        Some(ms) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
            Duration::from_millis(ms.parse().context("milliseconds out of range")?)
        }
        _ => Duration::from_secs(u64::try_from(parse_duration_seconds(text)?)?),
    };
    anyhow::ensure!(
        !lag.is_zero(),
        "the aggregator lag bound must be at least 1ms (or `off`)"
    );
    Ok(MaxLag(Some(lag)))
}

/// `45s`, `90m`, `12h`, `7d`, `1h 30m` → seconds (humantime, by `flowscope_core::duration`).
pub fn parse_duration_seconds(text: &str) -> anyhow::Result<i64> {
    let seconds =
        flowscope_core::duration::parse_seconds(text, false).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(seconds > 0, "duration {text:?} must be positive");
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<LocalArgs, clap::Error> {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            local: LocalArgs,
        }
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        Wrapper::try_parse_from(argv).map(|w| w.local)
    }

    #[test]
    fn aggregator_batch_and_store_cache_have_defaults_flags_and_bounds() {
        let defaults = parse(&[]).unwrap();
        let batch = defaults.batch_limits();
        assert_eq!((batch.records, batch.bytes), (1000, 2 * 1024 * 1024));
        assert_eq!(defaults.store_cache_bytes, 32 * 1024 * 1024);

        let set = parse(&[
            "--aggregator-batch-records",
            "200",
            "--aggregator-batch-bytes",
            "65536",
            "--store-cache-bytes",
            "1048576",
        ])
        .unwrap();
        let batch = set.batch_limits();
        assert_eq!((batch.records, batch.bytes), (200, 65536));
        assert_eq!(set.store_cache_bytes, 1024 * 1024);
        assert_eq!(defaults.store_sync_every_commits, 8);
        assert_eq!(
            parse(&["--store-sync-every-commits", "0"])
                .unwrap()
                .store_sync_every_commits,
            0
        );
        assert!(parse(&["--store-sync-every-commits", "-1"]).is_err());
        assert_eq!(defaults.series_last_seen_step_seconds, 30);
        assert_eq!(
            parse(&["--series-last-seen-step-seconds", "0"])
                .unwrap()
                .series_last_seen_step_seconds,
            0
        );
        assert!(parse(&["--series-last-seen-step-seconds", "3601"]).is_err());

        assert_eq!(defaults.max_aggregator_lag(), Some(Duration::from_secs(1)));
        assert_eq!(
            parse(&["--max-aggregator-lag", "250ms"])
                .unwrap()
                .max_aggregator_lag(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse(&["--max-aggregator-lag", "2s"])
                .unwrap()
                .max_aggregator_lag(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse(&["--max-aggregator-lag", "off"])
                .unwrap()
                .max_aggregator_lag(),
            None
        );
        assert!(parse(&["--max-aggregator-lag", "0ms"]).is_err());
        assert!(parse(&["--max-aggregator-lag", "soon"]).is_err());

        // At least one record and 64 KiB per batch: nonsense is refused at start-up, not clamped.
        assert!(parse(&["--aggregator-batch-records", "0"]).is_err());
        assert!(parse(&["--aggregator-batch-bytes", "1024"]).is_err());
    }

    #[test]
    fn durations_parse_with_units_and_reject_nonsense() {
        assert_eq!(parse_duration_seconds("45s").unwrap(), 45);
        assert_eq!(parse_duration_seconds("7d").unwrap(), 7 * 86_400);
        assert_eq!(
            parse_duration_seconds("1y").unwrap(),
            31_557_600,
            "humantime's year: 365.25 d"
        );
        assert_eq!(parse_duration_seconds("1h 30m").unwrap(), 5400);
        assert!(parse_duration_seconds("7").is_err());
        assert!(parse_duration_seconds("d").is_err());
        assert!(parse_duration_seconds("0h").is_err());
        assert_eq!(
            parse_duration_seconds("3w").unwrap(),
            21 * 86_400,
            "humantime's weeks"
        );
        assert!(
            parse_duration_seconds("1500ms").is_err(),
            "whole seconds only"
        );
    }
}
