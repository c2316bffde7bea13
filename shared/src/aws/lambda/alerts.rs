//! The scheduled alerts function: evaluate every rule against the buckets, record transitions with
//! conditional writes (concurrent invocations cannot fire twice), notify the sinks, and push `alert`
//! events to subscribed WebSocket clients. It runs on its own schedule, outside the aggregator's
//! hot path.

use bytes::Bytes;

use super::LambdaError;
use crate::alerts::{AlertEngine, AlertEvent, Dispatcher};
use crate::live::Fanout;
use crate::ports::{AlertStore, ConnectionPusher, ConnectionStore, MetricStore};

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
