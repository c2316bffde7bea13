//! Pull (issue 14 item 2, as Parca does): every registry instance whose registration metadata has a
//! `pprof_url` (the base of Go's `net/http/pprof`, e.g. `http://10.0.0.5:6060/debug/pprof`) is asked
//! every `--profile-pull-interval` for `{pprof_url}/profile?seconds=N` (cpu) and `{pprof_url}/heap`
//! (its `inuse_*` types: a heap profile's `alloc_*` values count since the program started, so
//! merging them every interval would count the same allocations again). Each answer is merged like
//! a push (the same limits; labels `instance=<id>`), keyed by URL, minute and body, so a repeated
//! fetch of the same answer is merged once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flowscope_core::profiles::limits::Refusals;
use flowscope_core::profiles::push::Push;
use flowscope_core::profiles::{minute_of, pprof, ProfileType};
use flowscope_core::profiling::service::ProfileService;
use flowscope_core::registry::Registry;
use flowscope_core::scrape::client::Scraper;
use sha2::{Digest, Sha256};

use super::unix_now;

/// The registration metadata key naming an instance's pprof base URL.
pub const PPROF_URL_KEY: &str = "pprof_url";

#[derive(Debug, Clone, Copy)]
pub struct PullSettings {
    pub interval: Duration,
    /// `seconds` of the cpu profile request.
    pub cpu_seconds: u64,
}

/// One pull of one URL: fetched, read within the push limits, merged.
pub async fn pull_one(
    service: &ProfileService,
    scraper: &Scraper,
    target: (&str, &str),
    url: &str,
    timeout: Duration,
    keep: fn(ProfileType) -> bool,
) -> Result<Refusals, String> {
    let limits = service.limits();
    let started = unix_now();
    let (body, _) = scraper
        .get(url, "*/*", timeout, limits.max_body_bytes)
        .await?;
    let (decoded, refused) =
        pprof::decode_bounded(&body, limits.max_decompressed_bytes, &limits.samples())
            .map_err(|e| e.to_string())?;
    let minute = minute_of(started);
    let mut hasher = Sha256::new();
    hasher.update(url.as_bytes());
    hasher.update(minute.to_le_bytes());
    hasher.update(&body);
    let contribution = format!("pull-{}", hex::encode(&hasher.finalize()[..16]));
    let labels: BTreeMap<String, String> = [("instance".to_string(), target.1.to_string())].into();
    let pushes: Vec<Push> = decoded
        .into_iter()
        .filter(|d| keep(d.profile_type) && !d.tree.is_empty())
        .map(|d| Push {
            service: target.0.to_string(),
            labels: labels.clone(),
            profile_type: d.profile_type,
            minute,
            tree: d.tree,
            contribution: contribution.clone(),
        })
        .collect();
    let report = service
        .merge_all(pushes, refused)
        .await
        .map_err(|e| e.to_string())?;
    Ok(report.refused)
}

fn cpu_types(t: ProfileType) -> bool {
    matches!(
        t,
        ProfileType::Cpu | ProfileType::Samples | ProfileType::Wall
    )
}

fn heap_types(t: ProfileType) -> bool {
    matches!(t, ProfileType::InuseSpace | ProfileType::InuseObjects)
}

/// Pulls every registered pprof URL every `settings.interval`, the instances concurrently.
pub async fn pull_loop(
    registry: Arc<Registry>,
    service: Arc<ProfileService>,
    settings: PullSettings,
) {
    let scraper = match Scraper::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "profile pull disabled: no HTTP client");
            return;
        }
    };
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let instances = match registry.instances(unix_now()).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "profile pull: listing the registry failed");
                continue;
            }
        };
        let mut work = Vec::new();
        for instance in &instances {
            let Some(base) = instance.metadata.get(PPROF_URL_KEY) else {
                continue;
            };
            let base = base.trim_end_matches('/');
            let cpu_timeout = Duration::from_secs(settings.cpu_seconds + 10);
            let targets = [
                (
                    format!("{base}/profile?seconds={}", settings.cpu_seconds),
                    cpu_timeout,
                    cpu_types as fn(ProfileType) -> bool,
                ),
                (format!("{base}/heap"), Duration::from_secs(10), heap_types),
            ];
            for (url, timeout, keep) in targets {
                let (service, scraper) = (service.clone(), scraper.clone());
                let (svc, id) = (instance.service.clone(), instance.instance.clone());
                work.push(async move {
                    match pull_one(&service, &scraper, (&svc, &id), &url, timeout, keep).await {
                        Ok(refused) if refused.is_empty() => {}
                        Ok(refused) => {
                            tracing::warn!(%url, "profile pull: {}", refused.message())
                        }
                        Err(error) => tracing::warn!(%url, %error, "profile pull failed"),
                    }
                });
            }
        }
        futures::future::join_all(work).await;
    }
}
