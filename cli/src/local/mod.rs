//! `flowscope local`: the whole pipeline in one process, with no AWS and no external service.
//!
//! The same core as on AWS, wired to embedded adapters: the OTLP receiver writes to an on-disk stream
//! log, a local event-source mapper feeds shard batches to the aggregator (as Lambda would), buckets
//! live in a redb file, and a local API Gateway serves the query API, the WebSocket (with a real
//! `@connections` management endpoint) and the dashboard.

mod args;
mod connections;
mod gateway;
mod mapper;
mod otlp_server;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::embedded::{EmbeddedStream, MemoryConnections, RedbStore};
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::live::{Fanout, LiveHub};
use flowscope_core::ports::MetricStore;

pub use args::LocalArgs;
use connections::LocalConnections;

/// How often buffered live updates go out: at most one message per second per client.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often expired buckets and state are purged from the embedded store.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let retention = args.retention()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let stream = Arc::new(
        EmbeddedStream::open(&args.data_dir.join("stream"), args.shards)
            .with_context(|| format!("opening stream log in {}", args.data_dir.display()))?,
    );
    let store = Arc::new(
        RedbStore::open(&args.data_dir.join("flowscope.redb"))
            .with_context(|| format!("opening store in {}", args.data_dir.display()))?,
    );
    let connections = Arc::new(MemoryConnections::default());
    let pusher = Arc::new(LocalConnections::default());
    let hub = Arc::new(LiveHub::default());
    let ingest = Arc::new(Ingest::new(
        stream.clone(),
        IngestLimits {
            max_body_bytes: args.max_body_bytes,
            ..IngestLimits::default()
        },
    ));
    let aggregator = Arc::new(Aggregator::new(store.clone(), retention));

    let otlp_listener = tokio::net::TcpListener::bind(args.otlp_addr)
        .await
        .with_context(|| format!("binding OTLP/HTTP on {}", args.otlp_addr))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", args.http_addr))?;

    for shard in stream.shard_names() {
        tokio::spawn(mapper::run_shard(
            stream.clone(),
            shard,
            aggregator.clone(),
            hub.clone(),
        ));
    }
    tokio::spawn(flush_loop(hub.clone(), connections.clone(), pusher.clone()));
    tokio::spawn(purge_loop(store.clone()));

    let gateway = gateway::router(gateway::GatewayState {
        store: store.clone(),
        connections,
        pusher,
        hub,
        keys: args.ws_keys()?,
        token: args.token.clone(),
        dashboard_dir: args.dashboard_dir.clone(),
    });
    let otlp = otlp_server::router(ingest);

    tracing::info!(
        otlp = %format!("http://{}", otlp_listener.local_addr()?),
        dashboard = %format!("http://{}", http_listener.local_addr()?),
        data_dir = %args.data_dir.display(),
        "flowscope local is running"
    );
    eprintln!(
        "Flowscope local mode\n  OTLP/HTTP  http://{}  (POST /v1/metrics, /v1/traces, /v1/logs)\n  Dashboard  http://{}\n  API        http://{}/api/services\n  WebSocket  ws://{}/ws\n  Data       {}",
        otlp_listener.local_addr()?,
        http_listener.local_addr()?,
        http_listener.local_addr()?,
        http_listener.local_addr()?,
        args.data_dir.display()
    );

    let otlp_server = axum::serve(otlp_listener, otlp).with_graceful_shutdown(shutdown_signal());
    let http_server = axum::serve(
        http_listener,
        gateway.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal());
    tokio::try_join!(
        async { otlp_server.await.context("OTLP server") },
        async { http_server.await.context("HTTP server") },
    )?;
    tracing::info!("stopped");
    Ok(())
}

async fn flush_loop(
    hub: Arc<LiveHub>,
    connections: Arc<MemoryConnections>,
    pusher: Arc<LocalConnections>,
) {
    let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some((seq, batch)) = hub.take_batch() else {
            continue;
        };
        match Fanout::new(connections.as_ref(), pusher.as_ref())
            .deliver(seq, &batch)
            .await
        {
            Ok(report) => tracing::debug!(seq, updates = batch.len(), ?report, "flushed"),
            Err(e) => tracing::warn!(seq, error = %e, "fan-out failed"),
        }
    }
}

async fn purge_loop(store: Arc<RedbStore>) {
    let mut ticker = tokio::time::interval(PURGE_INTERVAL);
    loop {
        ticker.tick().await;
        match store.purge_expired(unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired items"),
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
