//! API Gateway WebSocket events (`$connect`, `$disconnect`, and client messages) → the live session
//! logic in [`crate::live::session`]. Replies go back through `PostToConnection`, since a WebSocket
//! route without a route response discards the function's return value.

use std::sync::Mutex;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::http::{header, HeaderValue};
use base64::Engine;
use bytes::Bytes;

use super::snapshot::{subscribe_reply, LatestBuckets, SnapshotConfig};
use super::{now_unix_s, LambdaError};
use crate::auth::{ApiKeys, CHALLENGE};
use crate::live::session::{on_connect_with, on_disconnect, on_message, ConnectError, Replay};
use crate::live::{ServerMessage, MAX_MESSAGE_BYTES};
use crate::ports::{ConnectionPusher, ConnectionStore, PushError, Subscription};
use crate::tokens::{Authenticator, Denied, Scopes};

/// The connection the event is about.
pub fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Result<&str, LambdaError> {
    event
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| LambdaError::Event("WebSocket event without a connectionId".into()))
}

/// A plain-text response: API Gateway refuses the `$connect` handshake on anything but 2xx.
pub fn response(status: i64, message: &str) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = Some(Body::Text(message.to_string()));
    response
}

/// The `$connect` refusal: 401, the reason as `{"error": …}` and a `WWW-Authenticate` challenge.
pub fn refused(error: impl Into<Denied>) -> ApiGatewayProxyResponse {
    let error: Denied = error.into();
    let mut refusal = response(i64::from(error.status()), &error.json_body());
    refusal.headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&error.challenge()).unwrap_or(HeaderValue::from_static(CHALLENGE)),
    );
    refusal.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    refusal
}

/// `$connect`: checks `?token=` against the API key hashes and records the connection.
pub async fn handle_connect<C: ConnectionStore + ?Sized>(
    connections: &C,
    keys: &ApiKeys,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, LambdaError> {
    let auth = Authenticator::new().with_keys(keys.clone(), Scopes::ALL);
    handle_connect_with(connections, &auth, event).await
}

/// `$connect` with scopes: `?token=` is a key or a signed token with the `read` scope; 401 or 403
/// with the reason otherwise.
pub async fn handle_connect_with<C: ConnectionStore + ?Sized>(
    connections: &C,
    auth: &Authenticator,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, LambdaError> {
    let id = connection_id(event)?;
    let token = event.query_string_parameters.first("token");
    match on_connect_with(connections, auth, id, token, now_unix_s()).await {
        Ok(()) => Ok(response(200, "connected")),
        Err(ConnectError::Unauthorized(error)) => Ok(refused(error)),
        Err(ConnectError::Store(e)) => Err(e.into()),
    }
}

/// `$disconnect`: forgets the connection and its subscription.
pub async fn handle_disconnect<C: ConnectionStore + ?Sized>(
    connections: &C,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, LambdaError> {
    on_disconnect(connections, connection_id(event)?).await?;
    Ok(response(200, "disconnected"))
}

/// The message's text (API Gateway base64-encodes binary frames).
fn message_text(event: &ApiGatewayWebsocketProxyRequest) -> String {
    let body = event.body.clone().unwrap_or_default();
    if !event.is_base64_encoded {
        return body;
    }
    match base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => body,
    }
}

/// Holds a subscribe's request for the reply read from DynamoDB after [`on_message`] stored the
/// subscription (the session's [`Replay`] answers synchronously; the store is read asynchronously).
#[derive(Default)]
struct DeferredReplay(Mutex<Option<(Option<u64>, Subscription)>>);

impl Replay for DeferredReplay {
    fn resume(&self, last_seq: Option<u64>, subscription: &Subscription) -> Option<ServerMessage> {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((last_seq, subscription.clone()));
        }
        None
    }
}

/// A client message (`subscribe`, `ping`, or anything else): updates the subscription and posts the
/// reply to the sender: a subscribe's snapshot or catch-up read from DynamoDB
/// ([`super::snapshot::subscribe_reply`]), a pong, or an error.
pub async fn handle_message<C, P, B>(
    connections: &C,
    pusher: &P,
    store: &B,
    snapshot: &SnapshotConfig,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, LambdaError>
where
    C: ConnectionStore + ?Sized,
    P: ConnectionPusher + ?Sized,
    B: LatestBuckets + ?Sized,
{
    let id = connection_id(event)?;
    let deferred = DeferredReplay::default();
    let mut reply = on_message(
        connections,
        &deferred,
        id,
        &message_text(event),
        now_unix_s(),
    )
    .await?;
    let subscribed = deferred.0.lock().ok().and_then(|mut slot| slot.take());
    if let Some((last_seq, subscription)) = subscribed {
        reply = match subscribe_reply(store, snapshot, &subscription, last_seq, now_unix_ms()).await
        {
            Ok(reply) => reply,
            Err(error) => {
                // The subscription is stored and live updates will come: an empty snapshot lets
                // the client load history from the query API meanwhile.
                tracing::warn!(connection = id, %error, "snapshot not read; sending an empty one");
                Some(ServerMessage::Snapshot {
                    seq: u64::try_from(now_unix_ms()).unwrap_or(0),
                    part: 1,
                    parts: 1,
                    updates: Vec::new(),
                })
            }
        };
    }
    if let Some(reply) = reply {
        // A large reply goes out as numbered parts, each under API Gateway's 128 KB, in order.
        for text in reply.into_parts(MAX_MESSAGE_BYTES).texts {
            match pusher.post(id, Bytes::from(text)).await {
                Ok(()) => {}
                // The sender left while we worked: its $disconnect cleans up.
                Err(PushError::Gone) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(response(200, "ok"))
}

/// Unix milliseconds now.
fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_refused_connect_says_why_with_a_challenge() {
        let keys = ApiKeys::from_clear_keys(["k1"]);
        let missing = refused(keys.check_query_token(None).unwrap_err());
        assert_eq!(missing.status_code, 401);
        assert_eq!(missing.headers[header::WWW_AUTHENTICATE], CHALLENGE);
        let Some(Body::Text(body)) = missing.body else {
            panic!("a text body")
        };
        assert!(
            body.contains("missing credential: connect with ?token="),
            "{body}"
        );
        let wrong = refused(keys.check_query_token(Some("nope")).unwrap_err());
        assert_eq!(
            wrong.body,
            Some(Body::Text(r#"{"error":"invalid credential"}"#.into()))
        );
    }

    /// `$connect` with scopes and tokens (the ws-connect function's path): a token with `read` is
    /// accepted and the connection recorded under its key id; an ingest-only token is refused with
    /// 403, an expired one with 401 and an `invalid_token` challenge.
    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn connect_takes_a_token_with_the_read_scope() {
        use crate::tokens::{Scope, TokenIssuer};
        let secret = b"0123456789abcdef0123456789abcdef";
        let auth = Authenticator::new()
            .with_keys(
                ApiKeys::from_clear_keys(["k1"]),
                Scopes::of(&[Scope::Ingest, Scope::Read]),
            )
            .with_tokens(TokenIssuer::new(secret, 900).unwrap());
        let issuer = TokenIssuer::new(secret, 900).unwrap();
        let now = now_unix_s();
        let connect = |token: &str| {
            event(serde_json::json!({
                "requestContext": {"connectionId": "c1=", "routeKey": "$connect", "connectedAt": 0, "requestTimeEpoch": 0},
                "queryStringParameters": {"token": token},
                "isBase64Encoded": false
            }))
        };
        let connections = crate::embedded::MemoryConnections::new();
        let read = issuer
            .issue(
                &crate::tokens::key_id("k1"),
                Scopes::of(&[Scope::Read]),
                now,
            )
            .unwrap()
            .access_token;
        let accepted = handle_connect_with(&connections, &auth, &connect(&read))
            .await
            .unwrap();
        assert_eq!(accepted.status_code, 200);

        let ingest = issuer
            .issue("key:x", Scopes::of(&[Scope::Ingest]), now)
            .unwrap()
            .access_token;
        let forbidden = handle_connect_with(&connections, &auth, &connect(&ingest))
            .await
            .unwrap();
        assert_eq!(forbidden.status_code, 403);

        let expired = issuer
            .issue("key:x", Scopes::of(&[Scope::Read]), now - 1000)
            .unwrap()
            .access_token;
        let refused = handle_connect_with(&connections, &auth, &connect(&expired))
            .await
            .unwrap();
        assert_eq!(refused.status_code, 401);
        let challenge = refused.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }

    #[test]
    fn connection_id_and_text_come_from_the_event() {
        let e = event(serde_json::json!({
            "requestContext": {"connectionId": "abc=", "routeKey": "$default", "connectedAt": 0, "requestTimeEpoch": 0},
            "body": base64::engine::general_purpose::STANDARD.encode(r#"{"type":"ping"}"#),
            "isBase64Encoded": true
        }));
        assert_eq!(connection_id(&e).unwrap(), "abc=");
        assert_eq!(message_text(&e), r#"{"type":"ping"}"#);
        let missing = event(serde_json::json!({
            "requestContext": {"connectedAt": 0, "requestTimeEpoch": 0}
        }));
        assert!(connection_id(&missing).is_err());
    }
}
