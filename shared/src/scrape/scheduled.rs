//! The scheduled scraper (the `scraper` Lambda function, run by EventBridge every minute): scrape
//! every target for the scrape slots of the current minute into the receiver (Kinesis on AWS).
//!
//! Record identity and repeated invocations. Every point of a scrape is stamped with its **slot**
//! (the minute's start + k × the job's interval), not with the wall clock, and each (target, slot)
//! is recorded in a [`SlotLedger`] once all its points are in the stream:
//! - an invocation repeated after it finished (EventBridge or Lambda's async retry, a manual
//!   re-run) finds the slot in the ledger and writes nothing;
//! - one repeated after a crash between the stream write and the ledger write scrapes again and
//!   writes the same slot again: counters, histograms and summaries still count once, because the
//!   aggregator's cumulative tracker ignores a point at or before the time it already has for that
//!   series (the same slot time is a duplicate); only gauges of that one slot (`up`,
//!   `scrape_duration_seconds`, exposed gauges) may count twice in their bucket's count and sum.
//!   The ledger write is one conditional PutItem per target per slot.
//!
//! EventBridge Scheduler's finest rate is one minute: a job with a shorter interval is scraped at
//! each of its slots inside one invocation (15 s → 4 slots, the invocation sleeping between them);
//! a longer interval scrapes in the invocations whose minute holds one of its slots.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};

use super::client::{scrape_once, Scraper};
use super::config::{resolve_targets, ScrapeConfigFile, ScrapeTargetSource, StaticSource, Target};
use super::registry_source::ScrapedInstance;
use crate::ingest::Ingest;
use crate::ports::StreamSink;

/// Scrapes in flight at once in one invocation.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Which (target, slot) pairs are already in the stream.
#[async_trait]
pub trait SlotLedger: Send + Sync {
    async fn is_done(&self, key: &str) -> Result<bool, String>;
    /// Records `key`; `expires_at` (unix s) lets the store forget it.
    async fn mark_done(&self, key: &str, expires_at: i64) -> Result<(), String>;
}

/// An in-memory ledger (tests, a single long-lived process).
#[derive(Default)]
pub struct MemoryLedger(std::sync::Mutex<std::collections::HashSet<String>>);

#[async_trait]
impl SlotLedger for MemoryLedger {
    async fn is_done(&self, key: &str) -> Result<bool, String> {
        Ok(self.0.lock().map_err(|e| e.to_string())?.contains(key))
    }
    async fn mark_done(&self, key: &str, _expires_at: i64) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key.to_string());
        Ok(())
    }
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationReport {
    pub scraped: u64,
    pub up: u64,
    /// (target, slot) pairs already in the ledger: a repeated invocation.
    pub already_done: u64,
    pub points: u64,
    pub rejected_points: u64,
    /// Targets whose points the receiver refused whole (left out of the ledger: retried).
    pub failed: Vec<String>,
    /// Registry targets that answered: recorded with the source `scraped` by the caller
    /// ([`super::registry_source::record_scraped`]).
    pub scraped_instances: Vec<ScrapedInstance>,
}

/// The ledger key of a target's slot: `scr#<job>#<hash of the target>#<slot unix s>`.
pub fn slot_key(target: &Target, slot_unix_s: i64) -> String {
    let hash = crate::model::stable_hash(&[&target.key()]);
    format!("scr#{}#{hash:016x}#{slot_unix_s}", target.job_name)
}

/// The slots of `job_interval` inside the minute that starts at `minute_start` (unix s).
pub fn slots_in_minute(minute_start: i64, interval: Duration) -> Vec<i64> {
    let every = i64::try_from(interval.as_secs().max(1)).unwrap_or(i64::MAX);
    let first = minute_start.div_euclid(every) * every;
    let first = if first < minute_start {
        first + every
    } else {
        first
    };
    (0..)
        .map(|k| first + k * every)
        .take_while(|slot| *slot < minute_start + 60)
        .collect()
}

/// Runs one invocation: every job's targets (static and HTTP SD; file SD has no files on Lambda
/// and is skipped with a warning) at each of their slots in the minute of `now_unix_s`. `sleep_until`
/// waits for a slot's time (tests pass a no-op).
pub async fn run_invocation<S, F, Fut>(
    config: &ScrapeConfigFile,
    scraper: &Scraper,
    ingest: &Ingest<S>,
    ledger: &dyn SlotLedger,
    now_unix_s: i64,
    sleep_until: F,
) -> InvocationReport
where
    S: StreamSink + ?Sized,
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let minute_start = now_unix_s.div_euclid(60) * 60;
    let mut report = InvocationReport::default();
    let mut plan: Vec<(i64, Target)> = Vec::new();
    for job in &config.jobs {
        let mut groups = StaticSource(job.static_groups.clone())
            .groups()
            .await
            .unwrap_or_default();
        if !job.file_sd.is_empty() {
            tracing::warn!(job = %job.job_name, "file_sd_configs are not read by the scraper function");
        }
        for sd in &job.http_sd {
            let source = super::client::HttpSource {
                sd: sd.clone(),
                scraper: scraper.clone(),
            };
            match source.groups().await {
                Ok(found) => groups.extend(found),
                Err(e) => tracing::warn!(job = %job.job_name, error = %e, "http_sd failed"),
            }
        }
        let targets = resolve_targets(job, &groups);
        for slot in slots_in_minute(minute_start, job.interval) {
            for target in &targets {
                plan.push((slot, target.clone()));
            }
        }
    }
    plan.sort_by_key(|(slot, _)| *slot);
    let mut index = 0;
    while index < plan.len() {
        let slot = plan[index].0;
        let end = plan[index..]
            .iter()
            .position(|(s, _)| *s != slot)
            .map_or(plan.len(), |n| index + n);
        if slot > now_unix_s {
            sleep_until(slot).await;
        }
        let batch = &plan[index..end];
        let results: Vec<SlotResult> = stream::iter(batch.iter())
            .map(|(slot, target)| scrape_slot(scraper, ingest, ledger, target, *slot))
            .buffer_unordered(DEFAULT_CONCURRENCY)
            .collect()
            .await;
        for result in results {
            match result {
                SlotResult::AlreadyDone => report.already_done += 1,
                SlotResult::Scraped {
                    up,
                    points,
                    rejected,
                    failed,
                    instance,
                } => {
                    report.scraped_instances.extend(instance);
                    report.scraped += 1;
                    report.up += u64::from(up);
                    report.points += points;
                    report.rejected_points += rejected;
                    report.failed.extend(failed);
                }
            }
        }
        index = end;
    }
    report
}

enum SlotResult {
    AlreadyDone,
    Scraped {
        up: bool,
        points: u64,
        rejected: u64,
        failed: Option<String>,
        /// The registry instance behind an answering registry target.
        instance: Option<ScrapedInstance>,
    },
}

async fn scrape_slot<S: StreamSink + ?Sized>(
    scraper: &Scraper,
    ingest: &Ingest<S>,
    ledger: &dyn SlotLedger,
    target: &Target,
    slot: i64,
) -> SlotResult {
    let key = slot_key(target, slot);
    match ledger.is_done(&key).await {
        Ok(true) => return SlotResult::AlreadyDone,
        Ok(false) => {}
        // Unknown: scrape anyway (counters stay exact through the slot time; see module docs).
        Err(e) => tracing::warn!(%key, error = %e, "slot ledger unreadable"),
    }
    let time = u64::try_from(slot)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000);
    let report = scrape_once(scraper, ingest, target, time).await;
    let failed = if report.delivery.refused.is_empty() {
        // Kept a day: far beyond any retry of the same slot.
        if let Err(e) = ledger.mark_done(&key, slot + 86_400).await {
            tracing::warn!(%key, error = %e, "slot ledger write failed");
        }
        None
    } else {
        Some(format!("{}: {:?}", target.url, report.delivery.refused))
    };
    if let Some(error) = &report.error {
        tracing::info!(url = %target.url, %error, "target down");
    }
    SlotResult::Scraped {
        up: report.up,
        points: report.points,
        rejected: report.delivery.rejected_points,
        failed,
        instance: ScrapedInstance::of(target).filter(|_| report.up),
    }
}

/// `SCRAPE_CONFIG` (the YAML itself) as the function reads it; warnings go to the log.
pub fn config_from_env_text(
    text: &str,
    limits: &super::config::ScrapeLimits,
) -> Result<ScrapeConfigFile, String> {
    let file = ScrapeConfigFile::parse(text, std::path::Path::new("/"), limits)
        .map_err(|e| format!("SCRAPE_CONFIG:{e}"))?;
    for warning in &file.warnings {
        tracing::warn!("SCRAPE_CONFIG: {warning}");
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_a_minute() {
        assert_eq!(
            slots_in_minute(120, Duration::from_secs(15)),
            [120, 135, 150, 165]
        );
        assert_eq!(slots_in_minute(120, Duration::from_secs(60)), [120]);
        assert_eq!(slots_in_minute(300, Duration::from_secs(300)), [300]);
        assert_eq!(
            slots_in_minute(120, Duration::from_secs(300)),
            Vec::<i64>::new()
        );
        assert_eq!(slots_in_minute(60, Duration::from_secs(45)), [90]);
    }
}
