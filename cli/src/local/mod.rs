//! `flowscope local`: the whole pipeline in one process, with no AWS and no external service.
//!
//! The same core as on AWS, wired to embedded adapters: the OTLP receiver writes to an on-disk stream
//! log, a local event-source mapper feeds shard batches to the aggregator (as Lambda would), buckets
//! live in a redb file, and a local API Gateway serves the query API, the WebSocket (with a real
//! `@connections` management endpoint) and the dashboard.
//!
//! With `--aws` the same runner uses the AWS adapters against `AWS_ENDPOINT_URL`: the mapper polls
//! Kinesis and hands the aggregator a real `KinesisEvent` (batch-item failures back), DynamoDB holds
//! buckets and connections, and fan-out posts through aws-sdk-apigatewaymanagement to this gateway's
//! `@connections` endpoint.

mod alerting;
mod args;
mod backend;
mod connections;
mod gateway;
mod mapper;
mod metrics;
mod otlp_server;
mod profile_pull;
mod profiles;
mod query_store;
mod registry;
mod scrape;
mod serve;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flowscope_core::embedded::Released;
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::live::{Fanout, HubConfig, LiveHub};
use flowscope_core::pipeline::{ProcessShard, ShardProcessor};
use flowscope_core::ports::{
    ConnectionPusher, ConnectionStore, MetricStore, StreamSink, TraceStore,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

use alerting::Alerting;
pub use args::LocalArgs;
use backend::Backend;
use connections::LocalConnections;
use stats::AggregatorStats;

/// How often buffered live updates go out: at most one message per second per client.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long stopping waits for the embedded files to close after every task has ended.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often expired buckets and state are purged from the embedded store.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// A running local mode; dropped or [`LocalHandle::shutdown`] stops it.
pub struct LocalHandle {
    pub otlp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
    /// The embedded files; stopping returns once all are closed.
    released: Vec<Released>,
}

impl LocalHandle {
    /// Stops the servers and background loops and waits until they have released the data dir.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            joined.context("local mode task panicked")??;
        }
        // Store calls of cancelled loops may still run on the blocking pool (and aborted scrape
        // loops are dropped on the runtime's next turn): the files stay locked until they end.
        let closed = futures::future::join_all(self.released.drain(..).map(Released::wait));
        tokio::time::timeout(RELEASE_TIMEOUT, closed)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the data directory's files were still in use {} s after stopping",
                    RELEASE_TIMEOUT.as_secs()
                )
            })?;
        Ok(())
    }

    /// Waits until any part stops by itself (it should not) and reports why.
    async fn wait_for_failure(&mut self) -> anyhow::Result<()> {
        match self.tasks.join_next().await {
            Some(joined) => joined.context("local mode task panicked")?,
            None => Ok(()),
        }
    }
}

/// Runs local mode until Ctrl-C.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let mut handle = start(args).await?;
    // The banner is for people; JSON logs carry the same addresses in "flowscope local is running".
    if !crate::logs::is_json() {
        eprintln!(
        "Flowscope local mode\n  OTLP/HTTP  http://{otlp}  (POST /v1/metrics, /v1/traces, /v1/logs; profiles: POST /ingest)\n  Dashboard  http://{http}\n  API        http://{http}/api/services\n  WebSocket  ws://{http}/ws\n  Stop with Ctrl-C.",
        otlp = handle.otlp_addr,
        http = handle.http_addr,
        );
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        result = handle.wait_for_failure() => result?,
    }
    tracing::info!("stopping");
    handle.shutdown().await
}

/// Starts every part of local mode and returns once both ports accept connections.
pub async fn start(args: LocalArgs) -> anyhow::Result<LocalHandle> {
    let retention = args.retention()?;
    let scrape_config = args.scrape.load()?;
    // Keys, scopes and tokens (`--token`, `--admin-token`, `--ingest-token`, `--token-secret`).
    let auth = Arc::new(args.authenticator()?);
    let backend = if args.aws {
        Backend::aws(&args).await?
    } else {
        Backend::embedded(&args, retention)?
    };
    let (store, connections) = (backend.store.clone(), backend.connections.clone());
    let rules_path = alerting::rules_path(args.alert_rules.as_deref());
    let alerting = Arc::new(
        Alerting::open(
            backend.alerts.clone(),
            backend.rules.clone(),
            alerting::load_rules(args.alert_rules.as_deref())?,
            rules_path.as_deref(),
        )
        .await?,
    );
    // `PUT /api/alert-rules`: the admin token is accepted wherever `--token` is.
    let rule_writers = args.rule_writers()?;
    let pusher = Arc::new(LocalConnections::new(args.ws_limits()));
    let hub = Arc::new(LiveHub::new(HubConfig {
        replay_bytes: args.ws_replay_bytes(),
        snapshot_max_series: args.live_snapshot_max_series,
        ..HubConfig::default()
    }));
    let admission = backend.series_admission(&args, args.series_limits()?);
    let (registry, registry_released) = registry::open(&args)?;
    let mut released = backend.released.clone();
    released.push(registry_released);
    let ingest: Arc<Ingest<dyn StreamSink>> = Arc::new(
        Ingest::new(
            backend.sink.clone(),
            IngestLimits {
                max_body_bytes: args.max_body_bytes,
                retention,
                max_attributes_per_point: args.max_attributes_per_point,
                max_attribute_value_bytes: args.max_attribute_value_bytes,
                max_points_per_request: args.max_points_per_request,
                ..IngestLimits::default()
            },
        )
        .with_series_admission(admission.clone())
        .with_registry(registry.clone())
        .with_key_limits(Arc::new(flowscope_core::key_limits::KeyLimiter::new(
            flowscope_core::key_limits::KeyLimits {
                items_per_second: args.ingest_key_points_per_second,
                requests_per_second: args.ingest_key_requests_per_second,
                max_keys: args.ingest_key_max_keys,
            },
            u32::try_from(args.max_points_per_request).unwrap_or(u32::MAX),
        ))),
    );
    let aggregator: Arc<dyn ProcessShard> = Arc::new(ShardProcessor::new(
        metrics::StoreTiming::wrap(store.clone()),
        backend.traces.clone(),
        retention,
    ));
    let aggregator_stats = Arc::new(AggregatorStats::default());

    let otlp_listener = tokio::net::TcpListener::bind(args.otlp_addr)
        .await
        .with_context(|| format!("binding OTLP/HTTP on {}", args.otlp_addr))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", args.http_addr))?;
    let otlp_addr = otlp_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    if args.token.is_none() && !http_addr.ip().is_loopback() {
        tracing::warn!(
            %http_addr,
            "the query API and WebSocket listen beyond this machine without a credential: set --token (FLOWSCOPE_TOKEN)"
        );
    }

    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    mapper::spawn_all(
        &backend.consumer,
        &aggregator,
        &hub,
        &aggregator_stats,
        &stopped,
        args.batch_limits(),
        &mut tasks,
    )
    .await?;
    // Fan-out reaches clients the way the `fanout` function does: in-process for the embedded
    // backend, through aws-sdk-apigatewaymanagement and this gateway's `@connections` with `--aws`.
    let fanout_pusher: Arc<dyn ConnectionPusher> =
        fanout_pusher(&backend, &pusher, http_addr, args.token.as_deref());
    tasks.spawn(until_stopped(
        stopped.clone(),
        flush_loop(hub.clone(), connections.clone(), fanout_pusher.clone()),
    ));
    tasks.spawn(until_stopped(
        stopped.clone(),
        alerting::evaluation_loop(
            alerting.clone(),
            store.clone(),
            connections.clone(),
            fanout_pusher.clone(),
            rules_path,
        ),
    ));
    tasks.spawn(until_stopped(
        stopped.clone(),
        purge_loop(store.clone(), backend.traces.clone()),
    ));
    let (profiles, profiles_released, profile_merges) = profiles::open(&args)?;
    released.push(profiles_released);
    tasks.spawn(until_stopped(
        stopped.clone(),
        profiles::purge_loop(profiles.clone()),
    ));
    tasks.spawn(until_stopped(
        stopped.clone(),
        profiles::announce_loop(
            profile_merges,
            profiles.clone(),
            ingest.clone(),
            connections.clone(),
            fanout_pusher.clone(),
        ),
    ));
    if let Some(settings) = profiles::pull_settings(&args.profiles)? {
        tasks.spawn(until_stopped(
            stopped.clone(),
            profile_pull::pull_loop(registry.clone(), profiles.clone(), settings),
        ));
    }
    registry::spawn_all(
        &registry,
        registry::Ports {
            ingest: ingest.clone(),
            metrics: store.clone(),
            alerts: alerting.store.clone(),
            connections: connections.clone(),
            pusher: fanout_pusher.clone(),
        },
        args.registry.probe_settings(),
        args.registry.health_score_interval,
        &stopped,
        &mut tasks,
    );

    // The scrape-config file's targets and the registry's instances with a `metrics_url`.
    let registry_targets = scrape::RegistryTargets {
        registry: registry.clone(),
        settings: flowscope_core::scrape::registry_source::RegistryScrape {
            interval: args.registry.registry_scrape_interval,
            limits: args.scrape.limits(),
            ..Default::default()
        },
    };
    tasks.spawn(until_stopped(
        stopped.clone(),
        scrape::run(
            args.scrape.clone(),
            scrape_config,
            Some(registry_targets),
            ingest.clone(),
        ),
    ));

    // Open WebSockets hold the gateway's state (and so the stores) until they end: close them on stop.
    let closing = pusher.clone();
    let mut closing_stopped = stopped.clone();
    tasks.spawn(async move {
        let _ = closing_stopped.wait_for(|s| *s).await;
        closing.close_all();
        Ok(())
    });
    let metrics = Arc::new(metrics::Endpoint::new(metrics::Sources {
        ingest: ingest.clone(),
        aggregator: aggregator_stats.clone(),
        connections: pusher.clone(),
        hub: hub.clone(),
        stream: metrics::embedded_stream(&backend.consumer),
    }));
    let gateway = gateway::router(gateway::GatewayState {
        connections,
        pusher,
        hub,
        ingest: ingest.clone(),
        api: flowscope_core::http::ApiState::new(
            store.clone(),
            alerting.store.clone(),
            alerting.rules(),
        )
        .with_rule_source(alerting.source.clone(), rule_writers)
        .with_authenticator(auth.clone())
        .with_traces(backend.traces.clone())
        .with_series_admission(admission)
        .with_registry(registry)
        .with_profiles(profiles.clone())
        .with_expr_limits(flowscope_core::expr::ExprLimits {
            max_steps: args.query_max_steps,
            max_series: args.query_max_series,
            max_samples: args.query_max_samples,
        })
        .with_store_breaker(
            args.query_store.breaker(),
            args.query_store.query_stale_entries,
            args.query_store.query_stale_bytes,
        ),
        aggregator_stats,
        metrics,
        auth: auth.clone(),
        dashboard_dir: args.dashboard_dir.clone(),
    });
    // The OTLP port takes no credential unless `--ingest-token` is set.
    let otlp_auth = args.ingest_token.is_some().then(|| auth.clone());
    let otlp = otlp_server::router(ingest, profiles, otlp_auth);
    let otlp_config = args.serve_config(serve::ErrorStyle::Otlp)?;
    let http_config = args.serve_config(serve::ErrorStyle::Api)?;
    // Above the API body limit so that the buffered body always passes axum's own check.
    let gateway = gateway.layer(axum::extract::DefaultBodyLimit::max(
        args.server.max_api_body_bytes.saturating_add(1),
    ));
    let otlp_stopped = stopped.clone();
    tasks.spawn(async move {
        serve::serve(otlp_listener, otlp, otlp_config, otlp_stopped)
            .await
            .context("OTLP server")
    });
    let http_stopped = stopped.clone();
    tasks.spawn(async move {
        serve::serve(http_listener, gateway, http_config, http_stopped)
            .await
            .context("HTTP server")
    });
    tracing::info!(%otlp_addr, %http_addr, data_dir = %args.data_dir.display(), "flowscope local is running");
    Ok(LocalHandle {
        otlp_addr,
        http_addr,
        stop,
        tasks,
        released,
    })
}

/// Runs a background loop until local mode stops.
pub(crate) async fn until_stopped(
    mut stopped: watch::Receiver<bool>,
    work: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::select! {
        _ = stopped.wait_for(|s| *s) => {}
        _ = work => {}
    }
    Ok(())
}

#[cfg(feature = "aws")]
fn fanout_pusher(
    backend: &Backend,
    local: &Arc<LocalConnections>,
    http_addr: SocketAddr,
    token: Option<&str>,
) -> Arc<dyn ConnectionPusher> {
    match &backend.aws {
        // This gateway's `@connections` requires the `--token` credential like the query API.
        Some(sdk) => Arc::new(flowscope_core::aws::ApiGatewayPusher::with_api_key(
            sdk,
            &format!("http://{http_addr}"),
            token,
        )),
        None => local.clone(),
    }
}

#[cfg(not(feature = "aws"))]
fn fanout_pusher(
    _backend: &Backend,
    local: &Arc<LocalConnections>,
    _http_addr: SocketAddr,
    _token: Option<&str>,
) -> Arc<dyn ConnectionPusher> {
    local.clone()
}

async fn flush_loop(
    hub: Arc<LiveHub>,
    connections: Arc<dyn ConnectionStore>,
    pusher: Arc<dyn ConnectionPusher>,
) {
    let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(batch) = hub.take_batch() else {
            continue;
        };
        metrics::events().flushes.inc();
        match Fanout::new(connections.as_ref(), pusher.as_ref())
            .deliver_batch(&batch)
            .await
        {
            Ok(report) => tracing::debug!(
                seq = batch.seq,
                updates = batch.updates.len(),
                traces = batch.traces.len(),
                ?report,
                "flushed"
            ),
            Err(e) => tracing::warn!(seq = batch.seq, error = %e, "fan-out failed"),
        }
    }
}

async fn purge_loop(store: Arc<dyn MetricStore>, traces: Arc<dyn TraceStore>) {
    let mut ticker = tokio::time::interval(PURGE_INTERVAL);
    loop {
        ticker.tick().await;
        match store.purge_expired(unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired buckets and state"),
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
        match traces.purge_expired(unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired traces"),
            Err(e) => tracing::warn!(error = %e, "trace purge failed"),
        }
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
