//! HTTP notification sinks over hyper: a generic JSON webhook and a Slack-compatible incoming webhook.
//!
//! [`WebhookNotifier::new`] speaks plain HTTP (local receivers, relays). For `https://` URLs (Slack),
//! build a hyper-util client with a TLS connector and pass it to [`WebhookNotifier::with_client`]; the
//! notifier itself does not depend on a TLS stack.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::notify::Notification;
use super::rules::{NotificationSettings, SinkKind};
use crate::ports::{Notifier, NotifyError};

/// One attempt may take this long (connect + response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an error response kept for the message.
const ERROR_BODY_LIMIT: usize = 512;

pub struct WebhookNotifier<C = HttpConnector> {
    name: String,
    kind: SinkKind,
    url: Uri,
    client: Client<C, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookNotifier<HttpConnector> {
    /// A plain-HTTP notifier. `https://` URLs are refused here: use [`WebhookNotifier::with_client`]
    /// with a TLS-capable connector.
    pub fn new(name: &str, kind: SinkKind, url: &str) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err(format!(
                "sink {name:?}: https URLs need a TLS connector; build the notifier with `with_client`"
            ));
        }
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        WebhookNotifier::with_client(name, kind, url, client)
    }
}

impl<C> WebhookNotifier<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    pub fn with_client(
        name: &str,
        kind: SinkKind,
        url: &str,
        client: Client<C, Full<Bytes>>,
    ) -> Result<Self, String> {
        let url: Uri = url
            .parse()
            .map_err(|e| format!("sink {name:?}: invalid url {url:?}: {e}"))?;
        if url.host().is_none() {
            return Err(format!("sink {name:?}: url {url} has no host"));
        }
        Ok(WebhookNotifier {
            name: name.to_string(),
            kind,
            url,
            client,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn post(&self, body: Vec<u8>, notification_id: &str) -> Result<(), NotifyError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(id) = HeaderValue::from_str(notification_id) {
            // Lets receivers drop a retry of something they already processed.
            request = request.header("idempotency-key", id);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NotifyError::Permanent(format!("cannot build request: {e}")))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| NotifyError::Retryable(format!("no response within {:?}", self.timeout)))?
            .map_err(|e| NotifyError::Retryable(format!("request failed: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let snippet = match tokio::time::timeout(
            self.timeout,
            Limited::new(response.into_body(), ERROR_BODY_LIMIT).collect(),
        )
        .await
        {
            Ok(Ok(body)) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            _ => String::new(),
        };
        let message = format!("HTTP {status}: {}", snippet.trim());
        match status.as_u16() {
            408 | 429 | 500..=599 => Err(NotifyError::Retryable(message)),
            _ => Err(NotifyError::Permanent(message)),
        }
    }
}

/// The JSON body a sink of `kind` receives.
pub fn payload(kind: SinkKind, notification: &Notification) -> Result<Vec<u8>, NotifyError> {
    let encoded = match kind {
        SinkKind::Webhook => serde_json::to_vec(notification),
        SinkKind::Slack => serde_json::to_vec(&serde_json::json!({ "text": notification.text() })),
    };
    encoded.map_err(|e| NotifyError::Permanent(format!("cannot encode notification: {e}")))
}

#[async_trait]
impl<C> Notifier for WebhookNotifier<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let body = payload(self.kind, notification)?;
        self.post(body, &notification.id).await
    }
}

/// Plain-HTTP notifiers for every configured sink, URLs read through `env` where asked.
pub fn http_sinks(
    settings: &NotificationSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Arc<dyn Notifier>>, String> {
    settings
        .sinks
        .iter()
        .map(|sink| {
            let url = sink.resolve_url(&env)?;
            let notifier = WebhookNotifier::new(&sink.name, sink.kind, &url)?;
            Ok(Arc::new(notifier) as Arc<dyn Notifier>)
        })
        .collect()
}
