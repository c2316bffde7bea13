//! The scheduled alerts function: evaluate every rule against the buckets, record transitions with
//! conditional writes (concurrent invocations cannot fire twice), notify the sinks, and push `alert`
//! events to subscribed WebSocket clients. It runs on its own schedule, outside the aggregator's
//! hot path.

use std::sync::Arc;

use bytes::Bytes;

use super::LambdaError;
use crate::alerts::{AlertEngine, AlertEvent, Dispatcher, RuleSource, Versioned};
use crate::live::Fanout;
use crate::ports::{AlertStore, ConnectionPusher, ConnectionStore, MetricStore, Notifier};

/// What one evaluation did, for the function's log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlertRunReport {
    pub alerts_evaluated: usize,
    pub transitions: usize,
    pub rules_failed: usize,
    pub notifications_delivered: usize,
    pub notifications_dead_lettered: usize,
    pub events_pushed: u64,
}

pub async fn evaluate_and_notify<S, A, C, P>(
    engine: &AlertEngine<S, A>,
    dispatcher: &Dispatcher<A>,
    connections: &C,
    pusher: &P,
    now_unix_s: i64,
) -> Result<AlertRunReport, LambdaError>
where
    S: MetricStore + ?Sized,
    A: AlertStore + ?Sized,
    C: ConnectionStore + ?Sized,
    P: ConnectionPusher + ?Sized,
{
    let evaluation = engine
        .evaluate_report(now_unix_s)
        .await
        .map_err(|e| LambdaError::Config(format!("alert evaluation failed: {e}")))?;
    for failure in &evaluation.failures {
        tracing::warn!(?failure, "an alert rule could not be evaluated");
    }
    let deliveries = dispatcher
        .dispatch_now(&evaluation.transitions, now_unix_s)
        .await
        .map_err(|e| LambdaError::Config(format!("reading silences failed: {e}")))?;
    let fanout = Fanout::new(connections, pusher);
    let mut events_pushed = 0;
    for transition in &evaluation.transitions {
        let event = AlertEvent::from_transition(transition);
        let report = fanout
            .deliver_event(event.service.as_deref(), Bytes::from(event.to_json()))
            .await?;
        events_pushed += report.messages_posted;
    }
    let delivered = deliveries.iter().filter(|d| d.delivered()).count();
    Ok(AlertRunReport {
        alerts_evaluated: evaluation.alerts,
        transitions: evaluation.transitions.len(),
        rules_failed: evaluation.failures.len(),
        notifications_delivered: delivered,
        notifications_dead_lettered: deliveries.len() - delivered,
        events_pushed,
    })
}

/// Builds a rule set's notification sinks (the function passes `webhook::http_sinks` over its env).
pub type SinkFactory = Box<
    dyn Fn(&crate::alerts::rules::NotificationSettings) -> Result<Vec<Arc<dyn Notifier>>, String>
        + Send
        + Sync,
>;

/// The engine and dispatcher of one rules version.
struct Evaluator<S: MetricStore + ?Sized, A: AlertStore + ?Sized> {
    version: u64,
    engine: AlertEngine<S, A>,
    dispatcher: Dispatcher<A>,
}

/// The alerts function's state across invocations: the rules version in force (the one put through
/// `PUT /api/alert-rules`, else the compiled-in seed), loaded at the start of every run and rebuilt
/// only when the version changed (issue 13 item 6: a new version fires without a redeploy).
pub struct AlertsFunction<S: MetricStore + ?Sized, A: AlertStore + ?Sized> {
    metrics: Arc<S>,
    alerts: Arc<A>,
    source: RuleSource,
    sinks: SinkFactory,
    current: tokio::sync::Mutex<Evaluator<S, A>>,
}

impl<S: MetricStore + ?Sized, A: AlertStore + ?Sized> AlertsFunction<S, A> {
    /// Fails when the seed rules' sinks are misconfigured (as a cold start always did).
    pub fn new(
        metrics: Arc<S>,
        alerts: Arc<A>,
        source: RuleSource,
        sinks: SinkFactory,
    ) -> Result<Self, LambdaError> {
        let seed = source.live().get();
        let current = build(&metrics, &alerts, &sinks, seed)
            .map_err(|reason| LambdaError::Config(format!("alert sinks: {reason}")))?;
        Ok(AlertsFunction {
            metrics,
            alerts,
            source,
            sinks,
            current: tokio::sync::Mutex::new(current),
        })
    }

    /// The rules version the last run used.
    pub async fn version(&self) -> u64 {
        self.current.lock().await.version
    }

    /// One scheduled run: load the rules version in force, then [`evaluate_and_notify`]. A store
    /// that cannot be read, or a new version whose sinks are misconfigured, leaves the running
    /// rules in force (logged).
    pub async fn run<C, P>(
        &self,
        connections: &C,
        pusher: &P,
        now_unix_s: i64,
    ) -> Result<AlertRunReport, LambdaError>
    where
        C: ConnectionStore + ?Sized,
        P: ConnectionPusher + ?Sized,
    {
        let mut current = self.current.lock().await;
        match self.source.refresh().await {
            Ok(latest) if latest.version != current.version => {
                let version = latest.version;
                match build(&self.metrics, &self.alerts, &self.sinks, latest) {
                    Ok(next) => *current = next,
                    Err(reason) => tracing::error!(
                        version,
                        %reason,
                        "the new alert rules' sinks are misconfigured; the running rules stay in force"
                    ),
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "reading the alert rules store failed; the running rules stay in force")
            }
        }
        evaluate_and_notify(
            &current.engine,
            &current.dispatcher,
            connections,
            pusher,
            now_unix_s,
        )
        .await
    }
}

fn build<S: MetricStore + ?Sized, A: AlertStore + ?Sized>(
    metrics: &Arc<S>,
    alerts: &Arc<A>,
    sinks: &SinkFactory,
    rules: Versioned,
) -> Result<Evaluator<S, A>, String> {
    let sinks = sinks(&rules.rules.notifications)?;
    Ok(Evaluator {
        version: rules.version,
        dispatcher: Dispatcher::new(alerts.clone(), sinks, &rules.rules.notifications),
        engine: AlertEngine::new(metrics.clone(), alerts.clone(), rules.rules),
    })
}
