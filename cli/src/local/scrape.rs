//! `flowscope local --scrape-config prometheus.yml`: Prometheus pull collection into the receiver.
//!
//! One manager task owns the configuration: it re-reads the file when its modification time or
//! size changes (a cheap poll every `--scrape-reload-interval`; no `notify` watcher, which misses
//! editors' rename-over-writes and atomic `ConfigMap` swaps unless handled specially), asks each
//! target source (static, file SD, HTTP SD) again at its refresh interval, and keeps one scrape loop
//! per target: new targets get a loop, vanished ones lose theirs (their series stop; nothing is
//! carried forward), unchanged ones keep theirs. A file that does not parse is refused with its
//! line and column in the log and the running configuration stays in force.
//!
//! Each loop starts at an offset inside its interval derived from a hash of the target (so targets
//! spread over the interval, the same way on every start, as Prometheus does), scrapes at its own
//! interval with its own timeout, and waits for one of `--scrape-concurrency` permits.
//!
//! The service registry is one more target source (issue 13 item 5a), with or without a
//! configuration file: every instance registered with a `metrics_url` is scraped every
//! `--registry-scrape-interval` as `job` = its service, `instance` = its instance id, and after a
//! successful scrape the registry lists it with the source `scraped`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flowscope_core::ingest::Ingest;
use flowscope_core::ports::StreamSink;
use flowscope_core::registry::Registry;
use flowscope_core::scrape::client::{scrape_once, HttpSource, Scraper};
use flowscope_core::scrape::config::ScrapeJob;
use flowscope_core::scrape::config::{
    resolve_targets, FileSource, ScrapeConfigFile, ScrapeLimits, ScrapeTargetSource, StaticSource,
    Target, TargetGroup,
};
use flowscope_core::scrape::parse::ParseLimits;
use flowscope_core::scrape::registry_source::{RegistryScrape, RegistrySource, REGISTRY_JOB};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Flags of the scraper (flattened into `flowscope local`).
#[derive(clap::Args, Debug, Clone)]
pub struct ScrapeArgs {
    /// Prometheus configuration (`scrape_configs`, `global.scrape_interval`…) whose targets are
    /// scraped into Flowscope; reloaded when the file changes.
    #[arg(long, env = "FLOWSCOPE_SCRAPE_CONFIG")]
    pub scrape_config: Option<PathBuf>,
    /// Bytes of one scrape's answer; a larger one fails the scrape (up = 0). A job's
    /// `body_size_limit` can only lower it.
    #[arg(long, env = "FLOWSCOPE_SCRAPE_MAX_BODY_BYTES", default_value_t = ScrapeLimits::default().max_body_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1024 * 1024 * 1024))]
    pub scrape_max_body_bytes: usize,
    /// Samples one scrape may hold; more fails the scrape (a job's `sample_limit` can only lower it).
    #[arg(long, env = "FLOWSCOPE_SCRAPE_SAMPLE_LIMIT", default_value_t = ParseLimits::default().max_samples,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub scrape_sample_limit: usize,
    /// Labels one scraped sample may carry (`label_limit`).
    #[arg(long, env = "FLOWSCOPE_SCRAPE_LABEL_LIMIT", default_value_t = ParseLimits::default().max_labels_per_sample,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub scrape_label_limit: usize,
    /// Bytes of one label name (`label_name_length_limit`).
    #[arg(long, env = "FLOWSCOPE_SCRAPE_LABEL_NAME_LENGTH_LIMIT", default_value_t = ParseLimits::default().max_label_name_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub scrape_label_name_length_limit: usize,
    /// Bytes of one label value (`label_value_length_limit`).
    #[arg(long, env = "FLOWSCOPE_SCRAPE_LABEL_VALUE_LENGTH_LIMIT", default_value_t = ParseLimits::default().max_label_value_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_048_576))]
    pub scrape_label_value_length_limit: usize,
    /// Scrapes in flight at once, over all targets.
    #[arg(long, env = "FLOWSCOPE_SCRAPE_CONCURRENCY", default_value_t = 16,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub scrape_concurrency: usize,
    /// How often the scrape config's modification time is checked for a reload (e.g. 2s, 500ms).
    #[arg(long, env = "FLOWSCOPE_SCRAPE_RELOAD_INTERVAL", default_value = "2s",
          value_parser = humantime::parse_duration)]
    pub scrape_reload_interval: Duration,
}

impl ScrapeArgs {
    pub fn limits(&self) -> ScrapeLimits {
        ScrapeLimits {
            parse: ParseLimits {
                max_samples: self.scrape_sample_limit,
                max_labels_per_sample: self.scrape_label_limit,
                max_label_name_bytes: self.scrape_label_name_length_limit,
                max_label_value_bytes: self.scrape_label_value_length_limit,
            },
            max_body_bytes: self.scrape_max_body_bytes,
        }
    }

    /// Reads the configuration once at start-up, so that a bad file stops `flowscope local` with
    /// its line and column instead of running without scraping.
    pub fn load(&self) -> anyhow::Result<Option<ScrapeConfigFile>> {
        let Some(path) = &self.scrape_config else {
            return Ok(None);
        };
        let file = ScrapeConfigFile::load(path, &self.limits())
            .map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
        for warning in &file.warnings {
            tracing::warn!(file = %path.display(), "scrape config: {warning}");
        }
        Ok(Some(file))
    }
}

/// The file's identity for reload: modification time and length.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

struct Source {
    source: Arc<dyn ScrapeTargetSource>,
    job: usize,
    next_refresh: Instant,
    groups: Vec<TargetGroup>,
}

struct Running {
    handle: JoinHandle<()>,
}

/// Runs the scrapers until local mode stops (the caller aborts this future).
/// The registry as a target source of its own job (see the module documentation).
pub struct RegistryTargets {
    pub registry: Arc<Registry>,
    pub settings: RegistryScrape,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub async fn run<S: StreamSink + ?Sized + 'static>(
    args: ScrapeArgs,
    initial: Option<ScrapeConfigFile>,
    registry: Option<RegistryTargets>,
    ingest: Arc<Ingest<S>>,
) {
    let path = args.scrape_config.clone();
    if path.is_none() && registry.is_none() {
        return;
    }
    let extra: Vec<(ScrapeJob, Arc<dyn ScrapeTargetSource>)> = registry
        .as_ref()
        .map(|r| {
            let source: Arc<dyn ScrapeTargetSource> = Arc::new(RegistrySource {
                registry: r.registry.clone(),
                refresh: r.settings.refresh,
                clock: unix_now,
            });
            (r.settings.job(), source)
        })
        .into_iter()
        .collect();
    let registry = registry.map(|r| r.registry);
    let scraper = match Scraper::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "scraping is off: no HTTP client");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(args.scrape_concurrency));
    let mut file_stamp = path.as_deref().and_then(stamp);
    let mut config = initial.unwrap_or(ScrapeConfigFile {
        jobs: Vec::new(),
        warnings: Vec::new(),
    });
    let mut sources = sources_of(&config, &scraper, &extra);
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut ticker = tokio::time::interval(args.scrape_reload_interval.min(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reload_check = Instant::now();
    tracing::info!(file = ?path, jobs = config.jobs.len(), registry = !extra.is_empty(), "scraping");
    loop {
        ticker.tick().await;
        if let Some(path) = path
            .as_deref()
            .filter(|_| last_reload_check.elapsed() >= args.scrape_reload_interval)
        {
            last_reload_check = Instant::now();
            let now_stamp = stamp(path);
            if now_stamp != file_stamp {
                file_stamp = now_stamp;
                match ScrapeConfigFile::load(path, &args.limits()) {
                    Ok(new) => {
                        for warning in &new.warnings {
                            tracing::warn!(file = %path.display(), "scrape config: {warning}");
                        }
                        tracing::info!(file = %path.display(), jobs = new.jobs.len(), "scrape config reloaded");
                        config = new;
                        sources = sources_of(&config, &scraper, &extra);
                    }
                    Err(e) => tracing::error!(
                        "{}:{e}: scrape config refused, the running one stays in force",
                        path.display()
                    ),
                }
            }
        }
        for source in &mut sources {
            if Instant::now() < source.next_refresh {
                continue;
            }
            source.next_refresh = match source.source.refresh_interval() {
                Some(every) => Instant::now() + every,
                None => Instant::now() + Duration::from_secs(u64::from(u32::MAX)),
            };
            match source.source.groups().await {
                Ok(groups) => {
                    source.groups = groups;
                }
                Err(e) => tracing::warn!(
                    source = %source.source.describe(),
                    error = %e,
                    "target discovery failed; its previous targets stay"
                ),
            }
        }
        // Reconciled every tick: cheap (targets are few), and it follows reloads and discovery alike.
        let mut wanted: HashMap<String, Target> = HashMap::new();
        let jobs = config.jobs.iter().chain(extra.iter().map(|(job, _)| job));
        for (j, job) in jobs.enumerate() {
            let groups: Vec<TargetGroup> = sources
                .iter()
                .filter(|s| s.job == j)
                .flat_map(|s| s.groups.iter().cloned())
                .collect();
            for target in resolve_targets(job, &groups) {
                wanted.insert(target.key(), target);
            }
        }
        running.retain(|key, r| {
            let keep = wanted.contains_key(key) && !r.handle.is_finished();
            if !keep {
                r.handle.abort();
                tracing::info!(target = %key, "target removed");
            }
            keep
        });
        for (key, target) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            tracing::info!(target = %key, url = %target.url, "target added");
            let handle = tokio::spawn(target_loop(
                target,
                scraper.clone(),
                ingest.clone(),
                permits.clone(),
                registry.clone(),
            ));
            running.insert(key, Running { handle });
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The sources of the file's jobs, then the `extra` ones (the registry), whose jobs follow the
/// file's in the same numbering.
fn sources_of(
    config: &ScrapeConfigFile,
    scraper: &Scraper,
    extra: &[(ScrapeJob, Arc<dyn ScrapeTargetSource>)],
) -> Vec<Source> {
    let mut out = Vec::new();
    let now = Instant::now();
    for (i, (_, source)) in extra.iter().enumerate() {
        out.push(Source {
            source: source.clone(),
            job: config.jobs.len() + i,
            next_refresh: now,
            groups: Vec::new(),
        });
    }
    for (j, job) in config.jobs.iter().enumerate() {
        let mut push = |source: Arc<dyn ScrapeTargetSource>| {
            out.push(Source {
                source,
                job: j,
                next_refresh: now,
                groups: Vec::new(),
            })
        };
        if !job.static_groups.is_empty() {
            push(Arc::new(StaticSource(job.static_groups.clone())));
        }
        for sd in &job.file_sd {
            push(Arc::new(FileSource(sd.clone())));
        }
        for sd in &job.http_sd {
            push(Arc::new(HttpSource {
                sd: sd.clone(),
                scraper: scraper.clone(),
            }));
        }
    }
    out
}

/// Where in its interval a target's scrapes fall: a hash of the target, so the same on every start.
fn offset(target: &Target) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    target.key().hash(&mut hasher);
    let interval_ms = target.interval.as_millis().max(1) as u64;
    Duration::from_millis(hasher.finish() % interval_ms)
}

async fn target_loop<S: StreamSink + ?Sized>(
    target: Target,
    scraper: Scraper,
    ingest: Arc<Ingest<S>>,
    permits: Arc<Semaphore>,
    registry: Option<Arc<Registry>>,
) {
    // A registry target's successful scrapes are recorded on its instance (source `scraped`),
    // live for three intervals.
    let registry = registry.filter(|_| target.job_name == REGISTRY_JOB);
    let ttl_s = i64::try_from(target.interval.as_secs().saturating_mul(3)).unwrap_or(i64::MAX);
    let start = tokio::time::Instant::now() + offset(&target);
    let mut ticker = tokio::time::interval_at(start, target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut was_up: Option<bool> = None;
    loop {
        ticker.tick().await;
        let Ok(_permit) = permits.acquire().await else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let report = scrape_once(&scraper, ingest.as_ref(), &target, now).await;
        super::metrics::events().scrape(report.up, report.duration);
        if was_up != Some(report.up) {
            match &report.error {
                None => tracing::info!(url = %target.url, samples = report.samples, "target up"),
                Some(e) => tracing::warn!(url = %target.url, error = %e, "target down"),
            }
            was_up = Some(report.up);
        }
        if report.delivery.rejected_points > 0 || !report.delivery.refused.is_empty() {
            tracing::debug!(url = %target.url, delivery = ?report.delivery, "receiver refused part of a scrape");
        }
        tracing::trace!(url = %target.url, samples = report.samples, points = report.points, duration = ?report.duration, "scraped");
        if let (Some(registry), true) = (&registry, report.up) {
            let (service, instance) = (
                target.labels.get("job").unwrap_or_default(),
                target.labels.get("instance").unwrap_or_default(),
            );
            if let Err(e) = registry
                .scraped(service, instance, &target.url, ttl_s, unix_now())
                .await
            {
                tracing::warn!(url = %target.url, error = %e, "recording a scraped instance failed");
            }
        }
    }
}
