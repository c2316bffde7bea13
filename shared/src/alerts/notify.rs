//! From transitions to delivered messages: silences, grouping per service, retries with exponential
//! backoff, and dead letters.
//!
//! Two ways in:
//! - local mode keeps a [`Dispatcher`] beside the engine: [`Dispatcher::submit`] after every evaluation,
//!   [`Dispatcher::flush_due`] on a timer (in its own task: deliveries may wait through backoffs).
//!   A group opens with its first transition and is sent `group_wait` later, so a failing service sends
//!   one message, not twenty.
//! - on AWS a queue-fed function (e.g. SQS with a batching window of `group_wait`) receives
//!   transitions and calls [`Dispatcher::dispatch_now`], which groups the batch per service and delivers
//!   at once, outside the aggregator's hot path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::rules::{NotificationSettings, RetrySettings};
use super::silence::is_silenced;
use super::state::AlertTransition;
pub use crate::domain::alerts::notification::{DeadLetter, Notification, NotificationStatus};
use crate::ports::{AlertStore, AlertStoreError, Notifier, NotifyError};

/// Label value used to group transitions that carry no `service` label.
const NO_SERVICE: &str = "(no service)";
/// How long dead letters are kept.
pub const DEAD_LETTER_TTL_S: i64 = 30 * 86_400;

/// Groups transitions into one notification per service, in first-seen order of services.
pub fn group_by_service(transitions: Vec<AlertTransition>, now: i64) -> Vec<Notification> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<AlertTransition>> = BTreeMap::new();
    for t in transitions {
        let service = t.service().unwrap_or(NO_SERVICE).to_string();
        if !groups.contains_key(&service) {
            order.push(service.clone());
        }
        groups.entry(service).or_default().push(t);
    }
    order
        .into_iter()
        .filter_map(|service| {
            let alerts = groups.remove(&service)?;
            Some(Notification::new(service, alerts, now))
        })
        .collect()
}

/// Time-windowed grouping: a service's group opens with its first transition and is due `wait_s`
/// later; everything that arrives meanwhile rides along.
#[derive(Debug, Default)]
pub struct Grouper {
    wait_s: i64,
    open: BTreeMap<String, OpenGroup>,
}

#[derive(Debug)]
struct OpenGroup {
    opened_at: i64,
    alerts: Vec<AlertTransition>,
}

impl Grouper {
    pub fn new(wait_s: i64) -> Grouper {
        Grouper {
            wait_s,
            open: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, transition: AlertTransition, now: i64) {
        let service = transition.service().unwrap_or(NO_SERVICE).to_string();
        self.open
            .entry(service)
            .or_insert_with(|| OpenGroup {
                opened_at: now,
                alerts: Vec::new(),
            })
            .alerts
            .push(transition);
    }

    /// Groups whose window has passed at `now`, removed.
    pub fn take_due(&mut self, now: i64) -> Vec<Notification> {
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, g)| now - g.opened_at >= self.wait_s)
            .map(|(service, _)| service.clone())
            .collect();
        due.into_iter()
            .filter_map(|service| {
                let group = self.open.remove(&service)?;
                Some(Notification::new(service, group.alerts, now))
            })
            .collect()
    }

    /// Every open group, due or not (at shutdown).
    pub fn take_all(&mut self, now: i64) -> Vec<Notification> {
        std::mem::take(&mut self.open)
            .into_iter()
            .map(|(service, group)| Notification::new(service, group.alerts, now))
            .collect()
    }

    /// When the earliest open group becomes due.
    pub fn next_due(&self) -> Option<i64> {
        self.open.values().map(|g| g.opened_at + self.wait_s).min()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// Exponential backoff: `initial`, `2·initial`, `4·initial`, … capped at `max`, for `attempts` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 = the wait after the first failure).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

impl From<RetrySettings> for RetryPolicy {
    fn from(s: RetrySettings) -> RetryPolicy {
        RetryPolicy {
            attempts: s.attempts.max(1),
            initial_backoff: Duration::from_millis(s.initial_backoff_ms),
            max_backoff: Duration::from_millis(s.max_backoff_ms),
        }
    }
}

/// How one delivery to one sink ended.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryReport {
    pub sink: String,
    pub notification_id: String,
    pub service: String,
    pub attempts: u32,
    /// `None` when delivered.
    pub error: Option<NotifyError>,
}

impl DeliveryReport {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// Sends with retries: retryable failures wait the policy's backoff; a permanent failure stops.
pub async fn deliver_with_retry(
    notifier: &dyn Notifier,
    notification: &Notification,
    policy: &RetryPolicy,
) -> DeliveryReport {
    let mut attempts = 0;
    let error = loop {
        attempts += 1;
        match notifier.send(notification).await {
            Ok(()) => break None,
            Err(error @ NotifyError::Permanent(_)) => break Some(error),
            Err(error) if attempts >= policy.attempts => break Some(error),
            Err(error) => {
                tracing::debug!(sink = notifier.name(), attempt = attempts, %error, "notification failed; retrying");
                tokio::time::sleep(policy.backoff(attempts)).await;
            }
        }
    };
    DeliveryReport {
        sink: notifier.name().to_string(),
        notification_id: notification.id.clone(),
        service: notification.service.clone(),
        attempts,
        error,
    }
}

/// What [`Dispatcher::submit`] did with a batch of transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubmitReport {
    pub queued: usize,
    pub silenced: usize,
}

/// Silences, groups and delivers notifications to every sink; dead-letters what fails.
pub struct Dispatcher<A: AlertStore + ?Sized> {
    store: Arc<A>,
    sinks: Vec<Arc<dyn Notifier>>,
    policy: RetryPolicy,
    grouper: Mutex<Grouper>,
}

impl<A: AlertStore + ?Sized> Dispatcher<A> {
    pub fn new(
        store: Arc<A>,
        sinks: Vec<Arc<dyn Notifier>>,
        settings: &NotificationSettings,
    ) -> Dispatcher<A> {
        Dispatcher {
            store,
            sinks,
            policy: settings.retry.into(),
            grouper: Mutex::new(Grouper::new(settings.group_wait_s)),
        }
    }

    fn grouper(&self) -> MutexGuard<'_, Grouper> {
        // The grouper is only changed by whole operations; a panic elsewhere leaves it usable.
        self.grouper.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops transitions nobody is told about (pending, cancelled, acks) and silenced ones.
    async fn notifiable(
        &self,
        transitions: &[AlertTransition],
        now: i64,
    ) -> Result<(Vec<AlertTransition>, usize), AlertStoreError> {
        let wanted: Vec<&AlertTransition> =
            transitions.iter().filter(|t| t.kind.notifies()).collect();
        if wanted.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let silences = self.store.list_silences().await?;
        let mut out = Vec::new();
        let mut silenced = 0;
        for t in wanted {
            // A resolve is silenced by what silenced the alert, whatever severity it had.
            let severity = t.severity.or(t.previous_severity);
            if is_silenced(&silences, &t.rule, &t.labels, severity, now) {
                silenced += 1;
            } else {
                out.push(t.clone());
            }
        }
        Ok((out, silenced))
    }

    /// Queues the notifiable, unsilenced transitions into their service's group.
    pub async fn submit(
        &self,
        transitions: &[AlertTransition],
        now: i64,
    ) -> Result<SubmitReport, AlertStoreError> {
        let (queued, silenced) = self.notifiable(transitions, now).await?;
        let report = SubmitReport {
            queued: queued.len(),
            silenced,
        };
        let mut grouper = self.grouper();
        for t in queued {
            grouper.add(t, now);
        }
        Ok(report)
    }

    /// When the next group is due, if any is open (to schedule the next flush).
    pub fn next_due(&self) -> Option<i64> {
        self.grouper().next_due()
    }

    /// Delivers every group whose window has passed.
    pub async fn flush_due(&self, now: i64) -> Vec<DeliveryReport> {
        let due = self.grouper().take_due(now);
        self.deliver_all(&due, now).await
    }

    /// Delivers every open group now (at shutdown).
    pub async fn flush_all(&self, now: i64) -> Vec<DeliveryReport> {
        let all = self.grouper().take_all(now);
        self.deliver_all(&all, now).await
    }

    /// Silences, groups per service and delivers `transitions` at once: the entry point of a
    /// queue-fed function, whose batching window does the waiting.
    pub async fn dispatch_now(
        &self,
        transitions: &[AlertTransition],
        now: i64,
    ) -> Result<Vec<DeliveryReport>, AlertStoreError> {
        let (wanted, _) = self.notifiable(transitions, now).await?;
        let notifications = group_by_service(wanted, now);
        Ok(self.deliver_all(&notifications, now).await)
    }

    async fn deliver_all(&self, notifications: &[Notification], now: i64) -> Vec<DeliveryReport> {
        let deliveries = notifications.iter().flat_map(|n| {
            self.sinks
                .iter()
                .map(move |sink| self.deliver_one(sink.as_ref(), n, now))
        });
        futures::future::join_all(deliveries).await
    }

    /// Delivers one notification to one sink with retries; a final failure becomes a dead letter.
    pub async fn deliver_one(
        &self,
        sink: &dyn Notifier,
        notification: &Notification,
        now: i64,
    ) -> DeliveryReport {
        let report = deliver_with_retry(sink, notification, &self.policy).await;
        if let Some(error) = &report.error {
            tracing::warn!(sink = sink.name(), service = %notification.service, attempts = report.attempts, %error, "notification undeliverable; dead-lettered");
            let letter = DeadLetter {
                id: format!("{}-{}", notification.id, sink.name()),
                sink: sink.name().to_string(),
                notification: notification.clone(),
                error: error.to_string(),
                attempts: report.attempts,
                failed_at: now,
                expires_at: now + DEAD_LETTER_TTL_S,
            };
            if let Err(store_error) = self.store.put_dead_letter(&letter).await {
                tracing::error!(sink = sink.name(), error = %store_error, "could not record dead letter");
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::state::{AlertStatus, Labels, TransitionKind};

    fn transition(service: &str, rule: &str, kind: TransitionKind, at: i64) -> AlertTransition {
        let mut labels = Labels::new();
        labels.insert("service".into(), service.into());
        AlertTransition {
            fingerprint: crate::alerts::state::fingerprint(rule, &labels),
            rule: rule.into(),
            labels,
            kind,
            status: if kind == TransitionKind::Resolved {
                AlertStatus::Resolved
            } else {
                AlertStatus::Firing
            },
            previous_status: AlertStatus::Pending,
            severity: Some(crate::alerts::state::Severity::Warning),
            previous_severity: None,
            value: Some(1.0),
            reason: None,
            at,
            summary: "s".into(),
            by: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let waits: Vec<u128> = (1..=4).map(|r| policy.backoff(r).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 350, 350]);
        assert_eq!(policy.backoff(200), Duration::from_millis(350));
    }

    #[test]
    fn grouper_sends_a_service_once_per_window_with_everything_that_arrived() {
        let mut g = Grouper::new(30);
        g.add(transition("api", "a", TransitionKind::Firing, 0), 0);
        g.add(transition("web", "a", TransitionKind::Firing, 10), 10);
        g.add(transition("api", "b", TransitionKind::Firing, 20), 20);
        assert!(g.take_due(29).is_empty());
        assert_eq!(g.next_due(), Some(30));
        let due = g.take_due(30);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].service, "api");
        assert_eq!(due[0].alerts.len(), 2);
        assert_eq!(g.take_due(40).len(), 1);
        assert!(g.is_empty());
    }

    #[test]
    fn notification_status_and_id_follow_content() {
        let n = Notification::new(
            "api".into(),
            vec![transition("api", "a", TransitionKind::Resolved, 5)],
            9,
        );
        assert_eq!(n.status, NotificationStatus::Resolved);
        let again = Notification::new(
            "api".into(),
            vec![transition("api", "a", TransitionKind::Resolved, 5)],
            10,
        );
        assert_eq!(n.id, again.id, "a retry of the same content keeps its id");
        let firing = Notification::new(
            "api".into(),
            vec![transition("api", "a", TransitionKind::Firing, 5)],
            9,
        );
        assert_eq!(firing.status, NotificationStatus::Firing);
        assert_ne!(firing.id, n.id);
        assert!(firing.text().contains("[WARNING] a"), "{}", firing.text());
    }
}
