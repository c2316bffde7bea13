//! The log sink: one structured line per notification — the notification as compact JSON (the same
//! document the webhook sink posts), written through `tracing` at INFO with target
//! `flowscope::alert_notification` and the service, status and alert count as fields. Local mode
//! uses it when no other sink is configured; a rules file turns it on with `kind: log`.

use std::sync::Arc;

use async_trait::async_trait;

use super::notify::Notification;
use crate::ports::{Notifier, NotifyError};

/// Where the lines go: `tracing` by default, a closure in tests.
type Writer = Arc<dyn Fn(&Notification, &str) + Send + Sync>;

pub struct LogNotifier {
    name: String,
    write: Writer,
}

impl LogNotifier {
    /// Lines through `tracing` (the process's log).
    pub fn new(name: &str) -> Self {
        LogNotifier {
            name: name.to_string(),
            write: Arc::new(|notification: &Notification, line: &str| {
                tracing::info!(
                    target: "flowscope::alert_notification",
                    service = %notification.service,
                    status = ?notification.status,
                    alerts = notification.alerts.len(),
                    "{line}"
                );
            }),
        }
    }

    /// Lines handed to `write` (tests, or another destination).
    pub fn with_writer(name: &str, write: impl Fn(&str) + Send + Sync + 'static) -> Self {
        LogNotifier {
            name: name.to_string(),
            write: Arc::new(move |_: &Notification, line: &str| write(line)),
        }
    }
}

/// The line of one notification: compact JSON, never more than one line.
pub fn line(notification: &Notification) -> Result<String, NotifyError> {
    // serde_json escapes control characters inside strings, so the document has no raw newline.
    serde_json::to_string(notification).map_err(|e| NotifyError::Permanent(e.to_string()))
}

#[async_trait]
impl Notifier for LogNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let line = line(notification)?;
        (self.write)(notification, &line);
        Ok(())
    }
}
