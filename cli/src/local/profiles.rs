//! Continuous profiling in local mode (issue 14): the redb profile store in the data directory,
//! `POST /ingest` on the OTLP port, the `/api/profiles/*` routes (through the core's `ApiState`),
//! and after each merge a live `profile` event and the `flowscope.profile.<type>` series (through
//! the same `Ingest` as pushed OTLP).
//!
//! Pushes are merged into the store by the receiving request itself (not through the stream): each
//! push is applied exactly once per minute item, keyed by its hash, so a retried push changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use flowscope_core::ingest::Ingest;
use flowscope_core::live::Fanout;
use flowscope_core::ports::{ConnectionPusher, ConnectionStore, StreamSink};
use flowscope_core::profiles::push::PushLimits;
use flowscope_core::profiling::events;
use flowscope_core::profiling::service::{MergedMinute, ProfileListener, ProfileService};

use super::unix_now;

/// How often expired profile minutes are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// Flags of profile ingest and storage (README `## Limits`).
#[derive(clap::Args, Debug, Clone)]
pub struct ProfileArgs {
    /// Largest `POST /ingest` (profile push) body, in bytes as sent; larger is answered 413.
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_BYTES", default_value_t = PushLimits::default().max_body_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=256 * 1024 * 1024))]
    pub max_profile_bytes: usize,
    /// Largest decompressed size of a gzip profile (the gzip-bomb guard); larger is answered 413.
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_DECOMPRESSED_BYTES", default_value_t = PushLimits::default().max_decompressed_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1024 * 1024 * 1024))]
    pub max_profile_decompressed_bytes: usize,
    /// Labels a profile push may carry in `name={…}`; more is answered 400.
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_LABELS", default_value_t = PushLimits::default().max_labels,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=256))]
    pub max_profile_labels: usize,
    /// Distinct call paths (tree nodes) one pushed profile may have; samples needing more are
    /// refused (422 naming the flag; the rest is kept).
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_NODES", default_value_t = PushLimits::default().max_nodes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub max_profile_nodes: usize,
    /// Samples (pprof samples, folded lines) one push may have; those past it are refused (422).
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_SAMPLES", default_value_t = PushLimits::default().max_samples,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub max_profile_samples: usize,
    /// Frames one sample's stack may have; deeper samples are refused (422).
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_STACK_DEPTH", default_value_t = PushLimits::default().max_stack_depth,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub max_profile_stack_depth: usize,
    /// Bytes of one frame (function) name; samples through a longer one are refused (422).
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_FUNCTION_NAME_BYTES", default_value_t = PushLimits::default().max_function_name_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(16..=1_048_576))]
    pub max_profile_function_name_bytes: usize,
    /// Distinct call paths of one stored per-minute tree (service, type, label set, minute);
    /// samples needing more are refused (422).
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_MINUTE_NODES", default_value_t = PushLimits::default().max_minute_nodes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub max_profile_minute_nodes: usize,
    /// Distinct label sets per service, profile type and minute; a push of a further one is
    /// refused (422).
    #[arg(long, env = "FLOWSCOPE_MAX_PROFILE_LABEL_SETS", default_value_t = PushLimits::default().max_label_sets,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_profile_label_sets: usize,
    /// How often registry instances with a `pprof_url` in their metadata are pulled
    /// (`{pprof_url}/profile?seconds=N` and `{pprof_url}/heap`), e.g. 60s; 0s turns pulling off.
    #[arg(long, env = "FLOWSCOPE_PROFILE_PULL_INTERVAL", default_value = "60s")]
    pub profile_pull_interval: String,
    /// `seconds` of each pulled cpu profile (at most the pull interval).
    #[arg(long, env = "FLOWSCOPE_PROFILE_PULL_SECONDS", default_value_t = 10,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=3600))]
    pub profile_pull_seconds: u64,
    /// How long per-minute profile trees are kept (e.g. 7d, 12h).
    #[arg(long, env = "FLOWSCOPE_PROFILE_RETENTION", default_value = "7d")]
    pub profile_retention: String,
}

impl ProfileArgs {
    pub fn limits(&self) -> PushLimits {
        PushLimits {
            max_body_bytes: self.max_profile_bytes,
            max_decompressed_bytes: self.max_profile_decompressed_bytes,
            max_labels: self.max_profile_labels,
            max_nodes: self.max_profile_nodes,
            max_samples: self.max_profile_samples,
            max_stack_depth: self.max_profile_stack_depth,
            max_function_name_bytes: self.max_profile_function_name_bytes,
            max_minute_nodes: self.max_profile_minute_nodes,
            max_label_sets: self.max_profile_label_sets,
        }
    }
}

/// Opens the profile store (`profiles.redb` in the data directory, also with `--aws`: there is no
/// AWS adapter yet) and builds the service. Merges are announced through a channel to
/// [`announce_loop`] (spawn it with the returned receiver): the service is held by WebSocket
/// connections (through the API state), so it must not hold the connections' pusher itself.
pub fn open(
    args: &super::LocalArgs,
) -> anyhow::Result<(
    Arc<ProfileService>,
    flowscope_core::embedded::Released,
    mpsc::Receiver<Vec<MergedMinute>>,
)> {
    let path = args.data_dir.join("profiles.redb");
    let store = flowscope_core::embedded::RedbProfileStore::open(&path)
        .with_context(|| format!("opening the profile store {}", path.display()))?;
    let released = store.released();
    let retention = super::args::parse_duration_seconds(&args.profiles.profile_retention)
        .context("--profile-retention")?;
    let (sender, receiver) = mpsc::channel(ANNOUNCE_QUEUE);
    let service = ProfileService::new(Arc::new(store), args.profiles.limits(), retention)
        .with_listener(Arc::new(Announce(sender)));
    Ok((Arc::new(service), released, receiver))
}

/// The pull settings, `None` when pulling is off (`--profile-pull-interval 0s`).
pub fn pull_settings(
    args: &ProfileArgs,
) -> anyhow::Result<Option<super::profile_pull::PullSettings>> {
    if matches!(args.profile_pull_interval.trim(), "0" | "0s" | "off") {
        return Ok(None);
    }
    let interval = super::args::parse_duration_seconds(&args.profile_pull_interval)
        .context("--profile-pull-interval")?;
    let interval = u64::try_from(interval).unwrap_or(u64::MAX);
    Ok(Some(super::profile_pull::PullSettings {
        interval: Duration::from_secs(interval),
        cpu_seconds: args.profile_pull_seconds.min(interval),
    }))
}

/// Merges waiting to be announced; a push waits while it is full.
const ANNOUNCE_QUEUE: usize = 1024;

struct Announce(mpsc::Sender<Vec<MergedMinute>>);

#[async_trait]
impl ProfileListener for Announce {
    async fn merged(&self, merged: &[MergedMinute]) {
        // Fails only once local mode is stopping.
        let _ = self.0.send(merged.to_vec()).await;
    }
}

/// Pushes the live `profile` events and writes the `flowscope.profile.<type>` series of every merge.
pub async fn announce_loop(
    mut merges: mpsc::Receiver<Vec<MergedMinute>>,
    service: Arc<ProfileService>,
    ingest: Arc<Ingest<dyn StreamSink>>,
    connections: Arc<dyn ConnectionStore>,
    pusher: Arc<dyn ConnectionPusher>,
) {
    while let Some(merged) = merges.recv().await {
        // Each minute's total over all its label sets, as stored now.
        let mut totals = BTreeMap::new();
        for m in &merged {
            let key = (m.service.clone(), m.profile_type, m.minute);
            if totals.contains_key(&key) {
                continue;
            }
            match service
                .store()
                .minutes(&m.service, m.profile_type, m.minute, m.minute + 60, false)
                .await
            {
                Ok(minutes) => {
                    totals.insert(key, minutes.iter().map(|s| s.total).sum::<u64>());
                }
                Err(e) => tracing::warn!(error = %e, "reading a profile minute's total failed"),
            }
        }
        let fanout = Fanout::new(connections.as_ref(), pusher.as_ref());
        for event in events::events(&merged, &totals) {
            if let Err(e) = fanout
                .deliver_event(Some(&event.service), Bytes::from(event.to_json()))
                .await
            {
                tracing::warn!(error = %e, "pushing a profile event failed");
            }
        }
        let response = ingest
            .handle_metrics(&events::series_request(&merged))
            .await;
        if response.status != 200 {
            tracing::warn!(
                status = response.status,
                "the receiver refused profile totals"
            );
        }
    }
}

/// Deletes expired profile minutes every [`PURGE_INTERVAL`].
pub async fn purge_loop(service: Arc<ProfileService>) {
    let mut ticker = tokio::time::interval(PURGE_INTERVAL);
    loop {
        ticker.tick().await;
        match service.store().purge_expired(unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired profile minutes"),
            Err(e) => tracing::warn!(error = %e, "profile purge failed"),
        }
    }
}
