//! The local API Gateway's live connections: what `PostToConnection` reaches in local mode, both
//! in-process (fan-out) and over HTTP (`/@connections/{id}`).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use flowscope_core::ports::{ConnectionPusher, PushError};
use tokio::sync::mpsc;

/// Messages waiting for one client; a client this far behind is too slow and gets no more until it
/// catches up (its next resubscribe resumes from its last sequence number).
const OUTBOX_CAPACITY: usize = 256;

#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Close,
}

struct Handle {
    outbox: mpsc::Sender<Outgoing>,
    connected_at_ms: i64,
    source_ip: String,
}

#[derive(Default)]
pub struct LocalConnections {
    open: Mutex<HashMap<String, Handle>>,
}

/// What `GET /@connections/{id}` returns, shaped like API Gateway's GetConnection.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub connected_at: String,
    pub identity: Identity,
    pub last_active_at: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub source_ip: String,
}

impl LocalConnections {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, connection_id: &str, source_ip: String) -> mpsc::Receiver<Outgoing> {
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        self.open().insert(
            connection_id.to_string(),
            Handle {
                outbox,
                connected_at_ms: now_ms(),
                source_ip,
            },
        );
        inbox
    }

    pub fn unregister(&self, connection_id: &str) {
        self.open().remove(connection_id);
    }

    pub fn info(&self, connection_id: &str) -> Option<ConnectionInfo> {
        self.open().get(connection_id).map(|h| ConnectionInfo {
            connected_at: rfc3339_ms(h.connected_at_ms),
            identity: Identity {
                source_ip: h.source_ip.clone(),
            },
            last_active_at: rfc3339_ms(now_ms()),
        })
    }

    /// Closes a connection as `DeleteConnection` does; false when it does not exist.
    pub fn close(&self, connection_id: &str) -> bool {
        match self.open().remove(connection_id) {
            Some(handle) => {
                let _ = handle.outbox.try_send(Outgoing::Close);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl ConnectionPusher for LocalConnections {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), PushError> {
        let outbox = match self.open().get(connection_id) {
            Some(handle) => handle.outbox.clone(),
            None => return Err(PushError::Gone),
        };
        let text = String::from_utf8(payload.to_vec())
            .map_err(|_| PushError::Failed("payload is not UTF-8 text".into()))?;
        match outbox.try_send(Outgoing::Text(text)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PushError::Gone),
            Err(mpsc::error::TrySendError::Full(_)) => Err(PushError::Failed(
                "client is not reading its messages".into(),
            )),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Minimal RFC 3339 (UTC, millisecond precision) without a date crate.
fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
    }

    #[tokio::test]
    async fn post_reaches_registered_connection_and_unknown_is_gone() {
        let conns = LocalConnections::default();
        let mut inbox = conns.register("abc", "127.0.0.1".into());
        conns.post("abc", Bytes::from_static(b"hi")).await.unwrap();
        match inbox.recv().await {
            Some(Outgoing::Text(t)) => assert_eq!(t, "hi"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            conns.post("nope", Bytes::from_static(b"x")).await,
            Err(PushError::Gone)
        ));
        assert!(conns.close("abc"));
        assert!(matches!(
            conns.post("abc", Bytes::from_static(b"x")).await,
            Err(PushError::Gone)
        ));
    }
}
