//! Which adapters local mode runs on: the embedded ones (default), or the AWS ones against
//! `AWS_ENDPOINT_URL` (`--aws`: Kinesis + DynamoDB, e.g. emulators or LocalStack).

use std::sync::Arc;

use anyhow::Context;
use flowscope_core::cardinality::SeriesLimits;
use flowscope_core::embedded::{
    EmbeddedStream, MemoryConnections, MemorySeriesAdmission, RedbAlertStore, RedbStore,
    RedbTraceStore, Released,
};
use flowscope_core::model::Retention;
use flowscope_core::ports::{
    AlertStore, ConnectionStore, MetricStore, SeriesAdmission, StreamSink, TraceStore,
};

use super::LocalArgs;

/// Where the aggregator's shard batches come from.
pub enum Consumer {
    /// The stream log, and the metric store whose deferred writes the mapper makes durable before
    /// each stream checkpoint.
    Embedded(Arc<EmbeddedStream>, Arc<RedbStore>),
    #[cfg(feature = "aws")]
    Kinesis {
        stream: Arc<flowscope_core::aws::KinesisStream>,
        arn: String,
    },
}

pub struct Backend {
    pub sink: Arc<dyn StreamSink>,
    pub store: Arc<dyn MetricStore>,
    pub connections: Arc<dyn ConnectionStore>,
    /// Kept traces (a redb file beside the store, or DynamoDB with `--aws`).
    pub traces: Arc<dyn TraceStore>,
    /// Alert states, history, silences and dead letters (a redb file, or DynamoDB with `--aws`).
    pub alerts: Arc<dyn AlertStore>,
    /// The alert rules put through `PUT /api/alert-rules` (in the alert store's file or table).
    pub rules: Arc<dyn flowscope_core::ports::RuleStore>,
    pub consumer: Consumer,
    /// Resolve once each embedded file is closed (empty with `--aws`): stopping waits for them so
    /// that the data directory can be opened again at once.
    pub released: Vec<Released>,
    /// The SDK configuration, for the `@connections` client (AWS mode only).
    #[cfg(feature = "aws")]
    pub aws: Option<aws_config::SdkConfig>,
}

fn open_trace_store(args: &LocalArgs) -> anyhow::Result<RedbTraceStore> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    RedbTraceStore::open(&args.data_dir)
        .with_context(|| format!("opening the trace store in {}", args.data_dir.display()))
}

impl Backend {
    pub fn embedded(args: &LocalArgs, retention: Retention) -> anyhow::Result<Backend> {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
        // The store first: redb locks its file, so a second `flowscope local` on the same data dir
        // stops here, before it could touch the stream log.
        let store = Arc::new(
            RedbStore::open_with_cache(
                &args.data_dir.join("flowscope.redb"),
                retention,
                args.store_cache_bytes,
            )
            .with_context(|| format!("opening store in {}", args.data_dir.display()))?
            // The stream log replays whatever a crash takes back: see `mapper::CHECKPOINT_INTERVAL`.
            .with_deferred_durability()
            .with_sync_every(args.store_sync_every_commits)
            .with_last_seen_step(args.series_last_seen_step_seconds),
        );
        let stream = Arc::new(
            EmbeddedStream::open(&args.data_dir.join("stream"), args.shards)
                .with_context(|| format!("opening stream log in {}", args.data_dir.display()))?,
        );
        stream.set_max_consumer_lag(args.max_aggregator_lag());
        let traces = open_trace_store(args)?;
        let alerts = RedbAlertStore::open(&args.data_dir.join("alerts.redb"))
            .with_context(|| format!("opening the alert store in {}", args.data_dir.display()))?;
        let released = vec![
            store.released(),
            stream.released(),
            traces.released(),
            alerts.released(),
        ];
        Ok(Backend {
            sink: stream.clone(),
            store: store.clone(),
            connections: Arc::new(MemoryConnections::default()),
            traces: Arc::new(traces),
            rules: Arc::new(alerts.clone()),
            alerts: Arc::new(alerts),
            consumer: Consumer::Embedded(stream, store),
            released,
            #[cfg(feature = "aws")]
            aws: None,
        })
    }

    /// Kinesis + DynamoDB through the AWS SDK (endpoint from `AWS_ENDPOINT_URL`), creating the
    /// stream and tables when missing.
    #[cfg(feature = "aws")]
    pub async fn aws(args: &LocalArgs) -> anyhow::Result<Backend> {
        use flowscope_core::aws::{
            config, create_tables_if_missing, DynamoAlertStore, DynamoConnections, DynamoStore,
            DynamoTraceStore, KinesisStream, TableNames,
        };
        let sdk = config::load_for_emulators().await;
        let tables = TableNames::with_prefix(&args.aws_prefix);
        create_tables_if_missing(&sdk, &tables)
            .await
            .context("creating the DynamoDB tables (is AWS_ENDPOINT_URL reachable?)")?;
        let stream_name = format!("{}-points", args.aws_prefix);
        let stream = Arc::new(KinesisStream::new(&sdk, stream_name.clone()));
        stream
            .create_if_missing(args.shards as i32, std::time::Duration::from_secs(30))
            .await
            .context("creating the Kinesis stream")?;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        Ok(Backend {
            sink: stream.clone(),
            store: Arc::new(DynamoStore::new(&sdk, tables.clone())),
            connections: Arc::new(DynamoConnections::new(&sdk, tables.connections.clone())),
            traces: Arc::new(DynamoTraceStore::new(&sdk, tables.traces.clone())),
            alerts: Arc::new(DynamoAlertStore::new(&sdk, tables.alerts.clone())),
            rules: Arc::new(DynamoAlertStore::new(&sdk, tables.alerts.clone())),
            consumer: Consumer::Kinesis {
                stream,
                arn: format!("arn:aws:kinesis:{region}:000000000000:stream/{stream_name}"),
            },
            released: Vec::new(),
            aws: Some(sdk),
        })
    }

    /// The active-series limits: in memory, seeded from the store's series registry; with `--aws`
    /// the DynamoDB adapter on the state table, as the ingest function runs it.
    pub fn series_admission(
        &self,
        args: &LocalArgs,
        limits: SeriesLimits,
    ) -> Arc<dyn SeriesAdmission> {
        #[cfg(feature = "aws")]
        if let Some(sdk) = &self.aws {
            let tables = flowscope_core::aws::TableNames::with_prefix(&args.aws_prefix);
            return Arc::new(flowscope_core::aws::DynamoSeriesAdmission::new(
                sdk,
                tables.state,
                limits,
            ));
        }
        let _ = args;
        Arc::new(MemorySeriesAdmission::new(limits).with_seed(self.store.clone()))
    }

    #[cfg(not(feature = "aws"))]
    pub async fn aws(_args: &LocalArgs) -> anyhow::Result<Backend> {
        anyhow::bail!(
            "this flowscope was built without AWS adapters; rebuild with `cargo build -p flowscope-cli --features aws`"
        )
    }
}
