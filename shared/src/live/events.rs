//! [`LiveEventSink`] that delivers at once through the [`Fanout`]: local mode's sink, and the
//! fan-out function's last step for the event items it reads from the live table's stream.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Fanout, FanoutReport};
use crate::ports::{
    ConnectionPusher, ConnectionStore, ConnectionStoreError, LiveEvent, LiveEventSink, StoreError,
};

/// Posts each event to the connections subscribed to its service.
pub struct FanoutEvents {
    pub connections: Arc<dyn ConnectionStore>,
    pub pusher: Arc<dyn ConnectionPusher>,
}

/// Delivers `events` one by one (each is one message of its own), adding up the reports.
pub async fn deliver_events<C, P>(
    fanout: &Fanout<'_, C, P>,
    events: &[LiveEvent],
) -> Result<FanoutReport, ConnectionStoreError>
where
    C: ConnectionStore + ?Sized,
    P: ConnectionPusher + ?Sized,
{
    let mut total = FanoutReport::default();
    for event in events {
        let report = fanout
            .deliver_event(Some(&event.service), Bytes::from(event.json.clone()))
            .await?;
        total.messages_posted += report.messages_posted;
        total.connections_reached += report.connections_reached;
        total.gone_removed += report.gone_removed;
        total.failed += report.failed;
    }
    Ok(total)
}

#[async_trait]
impl LiveEventSink for FanoutEvents {
    async fn publish(&self, events: &[LiveEvent]) -> Result<(), StoreError> {
        let fanout = Fanout::new(self.connections.as_ref(), self.pusher.as_ref());
        deliver_events(&fanout, events)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}
