//! Alerting in local mode: rules loaded at start, evaluation every 10 s against the store, grouped
//! notifications to the configured sinks, and `alert` events to subscribed WebSocket clients.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use flowscope_core::alerts::{webhook, AlertEngine, AlertEvent, Dispatcher, RuleSet};
use flowscope_core::live::Fanout;
use flowscope_core::ports::{AlertStore, ConnectionPusher, ConnectionStore, MetricStore};

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
/// every evaluation (a cheap poll, no watcher); a changed file that validates replaces the rules
/// the evaluator uses from its next run, one that does not is refused with its line numbers in
/// the log and the running rules stay in force. Alert state lives in the store, so firing alerts
/// carry over. Notification sinks and `GET /api/alert-rules` keep the start-up settings.
struct RulesWatch {
    path: Option<PathBuf>,
    stamp: Option<(std::time::SystemTime, u64)>,
}

impl RulesWatch {
    fn new(path: Option<PathBuf>) -> RulesWatch {
        let stamp = path.as_deref().and_then(stamp);
        RulesWatch { path, stamp }
    }

    /// New rules when the file changed and validates.
    fn changed(&mut self) -> Option<RuleSet> {
        let path = self.path.as_deref()?;
        let now = stamp(path);
        if now == self.stamp {
            return None;
        }
        self.stamp = now;
        match RuleSet::load(path) {
            Ok(rules) => {
                tracing::info!(file = %path.display(), rules = rules.rules.len(), "alert rules reloaded");
                Some(rules)
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "alert rules refused; the running rules stay in force");
                None
            }
        }
    }
}

fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

pub struct Alerting {
    pub store: Arc<dyn AlertStore>,
    pub rules: Arc<RuleSet>,
}

impl Alerting {
    pub fn new(store: Arc<dyn AlertStore>, rules: RuleSet) -> Alerting {
        Alerting {
            store,
            rules: Arc::new(rules),
        }
    }
}

/// Evaluates every [`EVALUATION_INTERVAL`], notifies, and pushes transitions live.
pub async fn evaluation_loop(
    alerting: Arc<Alerting>,
    metrics: Arc<dyn MetricStore>,
    connections: Arc<dyn ConnectionStore>,
    pusher: Arc<dyn ConnectionPusher>,
    rules_file: Option<PathBuf>,
) {
    let mut watch = RulesWatch::new(rules_file);
    let mut engine = AlertEngine::new(
        metrics.clone(),
        alerting.store.clone(),
        alerting.rules.clone(),
    );
    let sinks = match webhook::http_sinks(&alerting.rules.notifications, |k| std::env::var(k).ok())
    {
        Ok(sinks) => sinks,
        Err(reason) => {
            tracing::error!(%reason, "alert notification sinks are misconfigured; notifications are off");
            Vec::new()
        }
    };
    let dispatcher = Dispatcher::new(alerting.store.clone(), sinks, &alerting.rules.notifications);
    let mut ticker = tokio::time::interval(EVALUATION_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Some(rules) = watch.changed() {
            engine = AlertEngine::new(metrics.clone(), alerting.store.clone(), Arc::new(rules));
        }
        let now = unix_now();
        let started = std::time::Instant::now();
        let evaluated = engine.evaluate_report(now).await;
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
                if let Err(e) = dispatcher.submit(&report.transitions, now).await {
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
        for delivery in dispatcher.flush_due(now).await {
            if !delivery.delivered() {
                tracing::warn!(?delivery, "an alert notification was dead-lettered");
            }
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
        let rules = watch.changed().expect("the valid file is taken");
        assert_eq!(rules.rules.len(), 2);
    }
}
