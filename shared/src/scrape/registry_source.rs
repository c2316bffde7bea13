//! Scrape targets from the service registry (issue 13 item 5a): every live instance with a
//! `metrics_url` becomes one target, with `job` = its service and `instance` = its instance id
//! (so its samples land as `service.name` / `service.instance.id` like the instance's own OTLP),
//! scraped every [`RegistryScrape::interval`]. After a successful scrape the caller records a
//! `scraped` source on the instance ([`crate::registry::Registry::scraped`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::config::{
    Scheme, ScrapeConfigFile, ScrapeJob, ScrapeLimits, ScrapeTargetSource, TargetGroup,
};
use crate::registry::{InstanceView, Registry};

/// The job name of registry targets (the `job` label is replaced by each instance's service).
pub const REGISTRY_JOB: &str = "flowscope-registry";

/// How the registry's instances are scraped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegistryScrape {
    pub interval: Duration,
    pub timeout: Duration,
    /// How often the registry is asked for its instances.
    pub refresh: Duration,
    pub limits: ScrapeLimits,
}

impl Default for RegistryScrape {
    fn default() -> Self {
        RegistryScrape {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            refresh: Duration::from_secs(5),
            limits: ScrapeLimits::default(),
        }
    }
}

impl RegistryScrape {
    /// The job the registry's groups resolve under (no relabeling; the groups set every label).
    pub fn job(&self) -> ScrapeJob {
        ScrapeJob {
            job_name: REGISTRY_JOB.to_string(),
            interval: self.interval,
            timeout: self.timeout.min(self.interval),
            metrics_path: "/metrics".to_string(),
            scheme: Scheme::Http,
            params: BTreeMap::new(),
            honor_timestamps: true,
            static_groups: Vec::new(),
            file_sd: Vec::new(),
            http_sd: Vec::new(),
            relabel: Vec::new(),
            limits: self.limits,
        }
    }
}

/// The registry as a [`ScrapeTargetSource`].
pub struct RegistrySource {
    pub registry: Arc<Registry>,
    pub refresh: Duration,
    /// Unix seconds now.
    pub clock: fn() -> i64,
}

#[async_trait]
impl ScrapeTargetSource for RegistrySource {
    async fn groups(&self) -> Result<Vec<TargetGroup>, String> {
        let instances = self
            .registry
            .instances((self.clock)())
            .await
            .map_err(|e| e.to_string())?;
        Ok(instances.iter().filter_map(group_of).collect())
    }

    fn refresh_interval(&self) -> Option<Duration> {
        Some(self.refresh)
    }

    fn describe(&self) -> String {
        "the service registry (instances with a metrics_url)".to_string()
    }
}

/// The scheduled scraper's registry job (the `scraper` function, issue 13 item 5a on AWS): the
/// registry's live instances with a metrics URL as the static groups of one job
/// ([`REGISTRY_JOB`]), read at each invocation, scraped at `settings.interval`.
pub async fn registry_job(
    registry: &Registry,
    settings: &RegistryScrape,
    now: i64,
) -> Result<ScrapeJob, crate::registry::RegistryError> {
    let mut job = settings.job();
    job.static_groups = registry
        .instances(now)
        .await?
        .iter()
        .filter_map(group_of)
        .collect();
    Ok(job)
}

/// `config`'s jobs plus `job` (when it has targets): what one scheduled invocation scrapes.
pub fn with_job(config: &ScrapeConfigFile, job: ScrapeJob) -> ScrapeConfigFile {
    let mut out = config.clone();
    if !job.static_groups.is_empty() {
        out.jobs.push(job);
    }
    out
}

/// A registry target that answered a scrape: the caller records it on its instance with the
/// source `scraped` ([`record_scraped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapedInstance {
    pub service: String,
    pub instance: String,
    pub url: String,
    pub interval: Duration,
}

impl ScrapedInstance {
    /// The instance behind `target` when it is a registry target (job [`REGISTRY_JOB`]).
    pub fn of(target: &super::config::Target) -> Option<ScrapedInstance> {
        (target.job_name == REGISTRY_JOB).then(|| ScrapedInstance {
            service: target.labels.get("job").unwrap_or_default().to_string(),
            instance: target
                .labels
                .get("instance")
                .unwrap_or_default()
                .to_string(),
            url: target.url.clone(),
            interval: target.interval,
        })
    }
}

/// Records each scraped instance in the registry with the source `scraped`, live for three
/// scrape intervals (as local mode's scrape loop does); returns how many were new (each a
/// `discovered` registry event). A failed write is logged and the rest are still recorded.
pub async fn record_scraped(registry: &Registry, scraped: &[ScrapedInstance], now: i64) -> usize {
    let mut new = 0;
    for s in scraped {
        let ttl_s = i64::try_from(s.interval.as_secs().saturating_mul(3)).unwrap_or(i64::MAX);
        match registry
            .scraped(&s.service, &s.instance, &s.url, ttl_s, now)
            .await
        {
            Ok(event) => new += usize::from(event.is_some()),
            Err(e) => {
                tracing::warn!(url = %s.url, error = %e, "recording a scraped instance failed")
            }
        }
    }
    new
}

/// One instance's target group: its metrics URL split into address, scheme and path (with the
/// query), labelled with its service and instance id. `None` without a usable metrics URL (the
/// registry accepts only absolute http(s) URLs, so that is an instance without one).
pub fn group_of(view: &InstanceView) -> Option<TargetGroup> {
    let url: axum::http::Uri = view.metrics_url.as_deref()?.parse().ok()?;
    let scheme = match url.scheme_str()? {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    let address = url.authority()?.as_str().to_string();
    let path = url
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let labels = BTreeMap::from([
        ("job".to_string(), view.service.clone()),
        ("instance".to_string(), view.instance.clone()),
        ("__scheme__".to_string(), scheme.to_string()),
        ("__metrics_path__".to_string(), path),
    ]);
    Some(TargetGroup {
        targets: vec![address],
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config::resolve_targets;

    fn view(metrics_url: Option<&str>) -> InstanceView {
        InstanceView {
            service: "checkout".into(),
            instance: "c-1".into(),
            version: None,
            host: None,
            sources: vec![crate::ports::registry::InstanceSource::Registered],
            metadata: BTreeMap::new(),
            health_url: None,
            metrics_url: metrics_url.map(str::to_string),
            first_seen: 1,
            last_seen: 1,
            lease: None,
        }
    }

    #[test]
    fn an_instance_with_a_metrics_url_is_a_target_of_its_service() {
        let group = group_of(&view(Some(
            "https://10.0.0.5:9464/custom/metrics?format=text",
        )));
        let job = RegistryScrape::default().job();
        let targets = resolve_targets(&job, &group.into_iter().collect::<Vec<_>>());
        assert_eq!(targets.len(), 1);
        let target = &targets[0];
        assert_eq!(
            target.url,
            "https://10.0.0.5:9464/custom/metrics?format=text"
        );
        assert_eq!(target.labels.get("job"), Some("checkout"));
        assert_eq!(target.labels.get("instance"), Some("c-1"));
        assert_eq!(target.interval, Duration::from_secs(30));
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn the_scheduled_scraper_gets_one_job_of_the_registry_targets() {
        use crate::ports::registry::{InstanceRecord, InstanceSource, RegistryStore};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::embedded::RedbRegistryStore::open(&dir.path().join("r.redb")).unwrap();
        let record = |instance: &str, metrics_url: Option<&str>, expires_at: i64| InstanceRecord {
            service: "checkout".into(),
            instance: instance.into(),
            source: InstanceSource::Registered,
            version: None,
            host: None,
            metadata: BTreeMap::new(),
            health_url: None,
            metrics_url: metrics_url.map(str::to_string),
            first_seen: 100,
            last_seen: 100,
            lease_ttl_s: Some(30),
            expires_at,
        };
        store
            .put(&record("c-1", Some("http://127.0.0.1:9100/metrics"), 200))
            .await
            .unwrap();
        store.put(&record("c-2", None, 200)).await.unwrap();
        store
            .put(&record("c-3", Some("http://127.0.0.1:9101/metrics"), 110))
            .await
            .unwrap();
        let registry = Registry::new(Arc::new(store), crate::registry::RegistryLimits::default());
        let settings = RegistryScrape::default();
        let job = registry_job(&registry, &settings, 120).await.unwrap();
        let targets = resolve_targets(&job, &job.static_groups);
        let urls: Vec<&str> = targets.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(
            urls,
            ["http://127.0.0.1:9100/metrics"],
            "live and with a metrics URL only"
        );
        let empty = ScrapeConfigFile {
            jobs: Vec::new(),
            warnings: Vec::new(),
        };
        assert_eq!(with_job(&empty, job).jobs.len(), 1);
        let none = registry_job(&registry, &settings, 500).await.unwrap();
        assert_eq!(with_job(&empty, none).jobs.len(), 0, "no targets, no job");
    }

    #[test]
    fn an_instance_without_one_is_not() {
        assert_eq!(group_of(&view(None)), None);
        assert_eq!(group_of(&view(Some("not a url"))), None);
        assert_eq!(group_of(&view(Some("ftp://h/metrics"))), None);
    }
}
