//! The WebSocket routes' logic (`$connect`, `$default` messages, `$disconnect`), shared by the Lambda
//! functions on AWS and the local API Gateway.

use super::hub::LiveHub;
use super::wire::{ClientMessage, ServerMessage};
use crate::auth::{ApiKeys, AuthError};
use crate::ports::{ConnectionStore, ConnectionStoreError, Subscription};
use crate::tokens::{Authenticator, Denied, Scope, Scopes};

/// API Gateway closes a connection after 2 h; connection items outlive that a little, then expire.
pub const CONNECTION_TTL_SECONDS: i64 = 2 * 3600 + 600;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Missing or wrong `?token=` (401), or a credential without the `read` scope (403); the text
    /// is the reason given.
    #[error(transparent)]
    Unauthorized(#[from] Denied),
    #[error(transparent)]
    Store(#[from] ConnectionStoreError),
}

/// Where a resubscribing client's missed updates come from.
pub trait Replay: Send + Sync {
    fn resume(&self, last_seq: Option<u64>, subscription: &Subscription) -> Option<ServerMessage>;
}

impl Replay for LiveHub {
    fn resume(&self, last_seq: Option<u64>, subscription: &Subscription) -> Option<ServerMessage> {
        LiveHub::resume(self, last_seq, subscription)
    }
}

/// No replay buffer (stateless functions on AWS): a resubscribing client is told to rebuild its state
/// from the query API by an empty snapshot.
pub struct NoReplay;

impl Replay for NoReplay {
    fn resume(
        &self,
        _last_seq: Option<u64>,
        _subscription: &Subscription,
    ) -> Option<ServerMessage> {
        Some(ServerMessage::Snapshot {
            seq: 0,
            part: 1,
            parts: 1,
            updates: Vec::new(),
        })
    }
}

/// `$connect`: checks the query-string token (browsers cannot set headers on a WebSocket) and records
/// the connection. With no keys configured, anyone may connect (local mode without `--token`).
pub async fn on_connect<C: ConnectionStore + ?Sized>(
    connections: &C,
    keys: &ApiKeys,
    connection_id: &str,
    token: Option<&str>,
    now_unix_s: i64,
) -> Result<(), ConnectError> {
    let auth = Authenticator::new().with_keys(keys.clone(), Scopes::ALL);
    on_connect_with(connections, &auth, connection_id, token, now_unix_s).await
}

/// `$connect` with scopes: `?token=` is a key or a signed token carrying the `read` scope.
pub async fn on_connect_with<C: ConnectionStore + ?Sized>(
    connections: &C,
    auth: &Authenticator,
    connection_id: &str,
    token: Option<&str>,
    now_unix_s: i64,
) -> Result<(), ConnectError> {
    let principal = auth.authorize(token, AuthError::MissingQueryToken, Some(Scope::Read))?;
    connections
        .put_connection(
            connection_id,
            &principal.subject,
            now_unix_s + CONNECTION_TTL_SECONDS,
        )
        .await?;
    Ok(())
}

/// `$default`: a client message. Returns the reply to send to this connection, if any.
pub async fn on_message<C: ConnectionStore + ?Sized, R: Replay + ?Sized>(
    connections: &C,
    replay: &R,
    connection_id: &str,
    text: &str,
    now_unix_s: i64,
) -> Result<Option<ServerMessage>, ConnectionStoreError> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(e) => {
            return Ok(Some(ServerMessage::Error {
                message: format!("unrecognised message: {e}"),
            }))
        }
    };
    match message {
        ClientMessage::Ping => Ok(Some(ServerMessage::Pong)),
        ClientMessage::Subscribe {
            services,
            metrics,
            last_seq,
        } => {
            let subscription = Subscription { services, metrics };
            connections
                .set_subscription(
                    connection_id,
                    &subscription,
                    now_unix_s + CONNECTION_TTL_SECONDS,
                )
                .await?;
            Ok(replay.resume(last_seq, &subscription))
        }
    }
}

/// `$disconnect`.
pub async fn on_disconnect<C: ConnectionStore + ?Sized>(
    connections: &C,
    connection_id: &str,
) -> Result<(), ConnectionStoreError> {
    connections.delete_connection(connection_id).await
}
