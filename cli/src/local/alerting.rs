//! Alerting in local mode: rules loaded at start (and replaced by file edits or the API), evaluation
//! every 10 s against the store, grouped
//! notifications to the configured sinks, and `alert` events to subscribed WebSocket clients.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use flowscope_core::alerts::{
    webhook, AlertEngine, AlertEvent, Dispatcher, RuleSet, RuleSource, Versioned,
};
use flowscope_core::live::Fanout;
use flowscope_core::ports::{
    AlertStore, ConnectionPusher, ConnectionStore, MetricStore, RuleStore,
};

use super::unix_now;

/// How often the rules are evaluated.
const EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// Where the shipped default rules live in a checkout.
const DEFAULT_RULES_PATH: &str = "infra/alert-rules.yaml";

/// The rules from `path`, else `infra/alert-rules.yaml` when it exists, else the built-in defaults.
/// A file that exists but is invalid is an error with its line numbers, never silently replaced.
pub fn load_rules(path: Option<&Path>) -> anyhow::Result<RuleSet> {
    match rules_path(path) {
        Some(path) => RuleSet::load(&path)
            .with_context(|| format!("loading alert rules from {}", path.display())),
        None => RuleSet::shipped().context("the built-in alert rules are invalid"),
    }
}

/// The rules file in force: `path`, else `infra/alert-rules.yaml` when it exists.
pub fn rules_path(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_RULES_PATH)).filter(|p| p.exists()),
    }
}

/// Hot reload of the rules file (issue 13 item 6): its modification time and size are checked at
/// every evaluation (a cheap poll, no watcher). A changed file that validates is stored as the next
/// rules version, exactly as `PUT /api/alert-rules` stores a body; one that does not is refused with
/// its line numbers in the log and the running rules stay in force. So the newest change wins,
/// whether it came from the file or the API.
struct RulesWatch {
    path: Option<PathBuf>,
    stamp: Option<(SystemTime, u64)>,
}

impl RulesWatch {
    fn new(path: Option<PathBuf>) -> RulesWatch {
        let stamp = path.as_deref().and_then(stamp);
        RulesWatch { path, stamp }
    }

    /// The file's text when it changed and validates.
    fn changed(&mut self) -> Option<String> {
        let path = self.path.as_deref()?;
        let now = stamp(path);
        if now == self.stamp {
            return None;
        }
        self.stamp = now;
        let name = path.display().to_string();
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                RuleSet::parse(&text, &name)
                    .map(|_| text)
                    .map_err(|e| e.to_string())
            }) {
            Ok(text) => Some(text),
            Err(error) => {
                tracing::error!(file = %name, %error, "alert rules refused; the running rules stay in force");
                None
            }
        }
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub struct Alerting {
    pub store: Arc<dyn AlertStore>,
    /// The rules in force, shared with `GET`/`PUT /api/alert-rules`.
    pub source: RuleSource,
}

impl Alerting {
    /// The rule file (or the built-in rules) seeds the rules; once a version was stored (through
    /// the API or by a file edit), the newest of the stored version and the file is in force: a
    /// file modified after the stored version was written (while Flowscope was stopped) is stored
    /// as the next version at start.
    pub async fn open(
        store: Arc<dyn AlertStore>,
        rule_store: Arc<dyn RuleStore>,
        seed: RuleSet,
        path: Option<&Path>,
    ) -> anyhow::Result<Alerting> {
        let source = RuleSource::new(rule_store.clone(), Arc::new(seed));
        let stored = rule_store
            .current()
            .await
            .context("reading the stored alert rules")?;
        if let (Some(stored), Some(path)) = (&stored, path) {
            let file_time = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map(unix_seconds)
                .unwrap_or(0);
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if file_time > stored.updated_at && text != stored.text {
                let version = source
                    .replace(&text, Some(stored.version), unix_now())
                    .await
                    .map_err(|e| anyhow::anyhow!("storing {}: {e}", path.display()))?
                    .version;
                tracing::info!(file = %path.display(), version, "the rules file changed since the stored version: stored as the next version");
            }
        }
        let current = source
            .refresh()
            .await
            .context("reading the stored alert rules")?;
        if current.version > 0 {
            tracing::info!(
                version = current.version,
                "alert rules: the version stored through the API (or a file edit) is in force"
            );
        }
        Ok(Alerting { store, source })
    }

    pub fn rules(&self) -> Arc<RuleSet> {
        self.source.live().rules()
    }
}

/// The engine, sinks and dispatcher of one rules version.
struct Evaluator {
    version: u64,
    engine: AlertEngine<dyn MetricStore, dyn AlertStore>,
    dispatcher: Dispatcher<dyn AlertStore>,
}

impl Evaluator {
    fn new(
        alerting: &Alerting,
        metrics: &Arc<dyn MetricStore>,
        current: Versioned,
    ) -> Result<Evaluator, String> {
        // Stateful sinks (Jira's issue per firing service) keep their state in the alert store.
        let state: Arc<dyn flowscope_core::ports::SinkStateStore> = alerting.store.clone();
        let mut sinks = webhook::sinks_with_state(
            &current.rules.notifications,
            |k| std::env::var(k).ok(),
            state,
        )?;
        if sinks.is_empty() {
            // Nothing else configured (or every optional sink off): notifications go to the log.
            tracing::info!("no alert notification sink is on; notifications are logged (target flowscope::alert_notification)");
            sinks.push(
                Arc::new(flowscope_core::alerts::log_sink::LogNotifier::new("log"))
                    as Arc<dyn flowscope_core::ports::Notifier>,
            );
        }
        Ok(Evaluator {
            version: current.version,
            dispatcher: Dispatcher::new(
                alerting.store.clone(),
                sinks,
                &current.rules.notifications,
            ),
            engine: AlertEngine::new(metrics.clone(), alerting.store.clone(), current.rules),
        })
    }
}

/// Evaluates every [`EVALUATION_INTERVAL`], notifies, and pushes transitions live. Each run first
/// takes a changed rules file (stored as the next version) and loads the version in force: a new
/// version gets a new engine and new sinks; what the old dispatcher was still grouping is sent
/// first.
pub async fn evaluation_loop(
    alerting: Arc<Alerting>,
    metrics: Arc<dyn MetricStore>,
    connections: Arc<dyn ConnectionStore>,
    pusher: Arc<dyn ConnectionPusher>,
    rules_file: Option<PathBuf>,
) {
    let mut watch = RulesWatch::new(rules_file);
    let mut evaluator = match Evaluator::new(&alerting, &metrics, alerting.source.live().get()) {
        Ok(evaluator) => evaluator,
        Err(reason) => {
            tracing::error!(%reason, "alert notification sinks are misconfigured; notifications are off");
            Evaluator {
                version: alerting.source.live().get().version,
                dispatcher: Dispatcher::new(
                    alerting.store.clone(),
                    Vec::new(),
                    &alerting.rules().notifications,
                ),
                engine: AlertEngine::new(metrics.clone(), alerting.store.clone(), alerting.rules()),
            }
        }
    };
    let mut ticker = tokio::time::interval(EVALUATION_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = unix_now();
        if let Some(text) = watch.changed() {
            match alerting.source.replace(&text, None, now).await {
                Ok(current) => tracing::info!(
                    version = current.version,
                    rules = current.rules.rules.len(),
                    "alert rules reloaded from the file"
                ),
                Err(error) => {
                    tracing::error!(%error, "storing the changed rules file failed; the running rules stay in force")
                }
            }
        }
        match alerting.source.refresh().await {
            Ok(current) if current.version != evaluator.version => {
                let version = current.version;
                match Evaluator::new(&alerting, &metrics, current) {
                    Ok(next) => {
                        let old = std::mem::replace(&mut evaluator, next);
                        report_undelivered(&old.dispatcher.flush_all(now).await);
                    }
                    Err(reason) => tracing::error!(
                        version,
                        %reason,
                        "the new alert rules' sinks are misconfigured; the running rules stay in force"
                    ),
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reading the alert rules store failed"),
        }
        let started = std::time::Instant::now();
        let evaluated = evaluator.engine.evaluate_report(now).await;
        super::metrics::events().alert_evaluation(
            evaluated.is_ok(),
            evaluated.as_ref().map_or(0, |r| r.transitions.len()),
            started.elapsed(),
        );
        match evaluated {
            Ok(report) => {
                for failure in &report.failures {
                    tracing::warn!(?failure, "an alert rule could not be evaluated");
                }
                if let Err(e) = evaluator.dispatcher.submit(&report.transitions, now).await {
                    tracing::warn!(error = %e, "queuing alert notifications failed");
                }
                let events: Vec<AlertEvent> = report
                    .transitions
                    .iter()
                    .map(AlertEvent::from_transition)
                    .collect();
                push_events(connections.as_ref(), pusher.as_ref(), &events).await;
            }
            Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
        }
        report_undelivered(&evaluator.dispatcher.flush_due(now).await);
    }
}

fn report_undelivered(deliveries: &[flowscope_core::alerts::notify::DeliveryReport]) {
    for delivery in deliveries {
        if !delivery.delivered() {
            tracing::warn!(?delivery, "an alert notification was dead-lettered");
        }
    }
}

/// Sends each event to the clients subscribed to its service.
pub async fn push_events(
    connections: &dyn ConnectionStore,
    pusher: &dyn ConnectionPusher,
    events: &[AlertEvent],
) {
    let fanout = Fanout::new(connections, pusher);
    for event in events {
        let payload = Bytes::from(event.to_json());
        if let Err(e) = fanout
            .deliver_event(event.service.as_deref(), payload)
            .await
        {
            tracing::warn!(error = %e, "pushing an alert event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "version: 1\nrules:\n  - name: a\n    metric: m\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 1\n    critical: 2\n";

    #[test]
    fn a_changed_rules_file_reloads_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, RULE).unwrap();
        let mut watch = RulesWatch::new(Some(path.clone()));
        assert!(watch.changed().is_none(), "unchanged");
        std::fs::write(&path, "version: 1\nrules:\n  - name: broken\n").unwrap();
        assert!(watch.changed().is_none(), "refused: the running rules stay");
        let two = RULE.replace("name: a", "name: b") + &RULE["version: 1\nrules:\n".len()..];
        std::fs::write(&path, two).unwrap();
        let text = watch.changed().expect("the valid file is taken");
        assert_eq!(RuleSet::parse(&text, "t").unwrap().rules.len(), 2);
    }
}
