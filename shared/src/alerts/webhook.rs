//! HTTP(S) notification sinks over hyper: a generic JSON webhook and a Slack-compatible incoming webhook.
//!
//! Every notifier speaks both `http://` and `https://` through one connector (rustls with ring).
//! [`WebhookNotifier::new`] and [`http_sinks`] trust the operating system's root certificates, which
//! are loaded once per process; if the OS has none, `https://` sinks are refused with a configuration
//! error naming the sink while `http://` sinks still work. [`WebhookNotifier::with_root_certificates`]
//! and [`WebhookNotifier::with_tls_config`] trust what the caller says instead (a private CA, tests).

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};

use super::notify::Notification;
use super::rules::{NotificationSettings, SinkKind};
use crate::ports::{Notifier, NotifyError};

/// One attempt may take this long (connect + response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an error response kept for the message.
const ERROR_BODY_LIMIT: usize = 512;

/// The connector every sink uses: plain TCP for `http://`, rustls for `https://`.
pub type SinkConnector = HttpsConnector<HttpConnector>;

pub struct WebhookNotifier {
    name: String,
    kind: SinkKind,
    url: Uri,
    client: Client<SinkConnector, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookNotifier {
    /// A notifier for an `http://` or `https://` URL; https servers are verified against the
    /// operating system's root certificates (loaded once per process).
    pub fn new(name: &str, kind: SinkKind, url: &str) -> Result<Self, String> {
        WebhookNotifier::with_tls(name, kind, url, native_tls().as_ref())
    }

    /// A notifier whose https servers are verified against `roots` only (a private CA, tests).
    pub fn with_root_certificates(
        name: &str,
        kind: SinkKind,
        url: &str,
        roots: RootCertStore,
    ) -> Result<Self, String> {
        let config = client_config(roots).map_err(|e| format!("sink {name:?}: {e}"))?;
        WebhookNotifier::with_tls_config(name, kind, url, config)
    }

    /// A notifier using `config` for https (its ALPN protocols are replaced: the sink speaks HTTP/1.1).
    pub fn with_tls_config(
        name: &str,
        kind: SinkKind,
        url: &str,
        config: ClientConfig,
    ) -> Result<Self, String> {
        WebhookNotifier::with_tls(name, kind, url, Ok(&config))
    }

    /// `tls` is the client configuration for https, or why there is none (http still works then).
    fn with_tls(
        name: &str,
        kind: SinkKind,
        url: &str,
        tls: Result<&ClientConfig, &String>,
    ) -> Result<Self, String> {
        let uri = parse_url(name, url)?;
        let config = match tls {
            Ok(config) => config.clone(),
            Err(reason) if uri.scheme_str() == Some("https") => {
                return Err(format!("sink {name:?}: cannot use https: {reason}"));
            }
            // No roots to trust, but this sink is plain http: a config that trusts nothing is never used.
            Err(_) => {
                client_config(RootCertStore::empty()).map_err(|e| format!("sink {name:?}: {e}"))?
            }
        };
        let client = Client::builder(TokioExecutor::new()).build(connector(config));
        Ok(WebhookNotifier::from_parts(name, kind, uri, client))
    }
}

/// TLS client settings with ring as the crypto provider (whatever else the process links), trusting
/// `roots`.
pub fn client_config(roots: RootCertStore) -> Result<ClientConfig, String> {
    Ok(ring_config_builder()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn ring_config_builder(
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))
}

/// The operating system's root certificates as a client configuration, loaded on first use.
fn native_tls() -> &'static Result<ClientConfig, String> {
    static NATIVE: OnceLock<Result<ClientConfig, String>> = OnceLock::new();
    NATIVE.get_or_init(|| {
        Ok(ring_config_builder()?
            .with_native_roots()
            .map_err(|e| format!("the operating system has no usable root certificates ({e})"))?
            .with_no_client_auth())
    })
}

/// An HTTP(S) client on the sinks' TLS stack (OS roots, ring): the health probes use it too.
pub fn client<B>() -> Result<Client<SinkConnector, B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    // Without OS root certificates http:// still works (https:// then fails per request).
    let config = match native_tls() {
        Ok(config) => config.clone(),
        Err(_) => client_config(RootCertStore::empty())?,
    };
    Ok(Client::builder(TokioExecutor::new()).build(connector(config)))
}

fn connector(mut config: ClientConfig) -> SinkConnector {
    // The builder sets ALPN itself and refuses (panics on) a config that already has some.
    config.alpn_protocols.clear();
    HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build()
}

fn parse_url(name: &str, url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("sink {name:?}: invalid url {url:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        // The URL may be a secret (from `url_env`): not echoed.
        return Err(format!(
            "sink {name:?}: url must start with http:// or https://"
        ));
    }
    if uri.host().is_none() {
        return Err(format!("sink {name:?}: url {uri} has no host"));
    }
    Ok(uri)
}

impl WebhookNotifier {
    fn from_parts(
        name: &str,
        kind: SinkKind,
        url: Uri,
        client: Client<SinkConnector, Full<Bytes>>,
    ) -> Self {
        WebhookNotifier {
            name: name.to_string(),
            kind,
            url,
            client,
            timeout: DEFAULT_TIMEOUT,
        }
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
            .map_err(|e| NotifyError::Retryable(self.describe_failure(&e)))?;
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

    /// The error and its causes on one line (hyper's own message is just "client error (Connect)").
    fn describe_failure(&self, error: &(dyn StdError + 'static)) -> String {
        let mut message = error.to_string();
        let mut tls = false;
        let mut cause = error.source();
        while let Some(e) = cause {
            tls |= is_tls_error(e);
            let text = e.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = e.source();
        }
        let host = self.url.authority().map(|a| a.as_str()).unwrap_or("?");
        if tls {
            format!("TLS handshake with {host} failed: {message}")
        } else {
            format!("request to {host} failed: {message}")
        }
    }
}

/// Whether `error` is (or wraps, through nested `io::Error`s as tokio-rustls and hyper-rustls build
/// them) a rustls error: a failed handshake or certificate check.
fn is_tls_error(error: &(dyn StdError + 'static)) -> bool {
    let mut current = error;
    loop {
        if current.is::<rustls::Error>() {
            return true;
        }
        match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => current = inner,
            None => return false,
        }
    }
}

/// The JSON body a sink of `kind` receives.
pub fn payload(kind: SinkKind, notification: &Notification) -> Result<Vec<u8>, NotifyError> {
    let encoded = match kind {
        SinkKind::Webhook | SinkKind::Log | SinkKind::Jira => serde_json::to_vec(notification),
        SinkKind::Slack => serde_json::to_vec(&serde_json::json!({ "text": notification.text() })),
    };
    encoded.map_err(|e| NotifyError::Permanent(format!("cannot encode notification: {e}")))
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let body = payload(self.kind, notification)?;
        self.post(body, &notification.id).await
    }
}

/// Notifiers (http or https, OS root certificates) for every configured sink, URLs read through `env`
/// where asked. An `optional` sink whose variable is unset is left out; any other sink that cannot
/// be built is an error naming it.
/// Jira sinks keep their open issues in memory here: use [`sinks_with_state`] to keep them in the
/// alert store.
pub fn http_sinks(
    settings: &NotificationSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Arc<dyn Notifier>>, String> {
    sinks_with_state(
        settings,
        env,
        Arc::new(super::jira::MemorySinkState::default()),
    )
}

/// [`http_sinks`], with stateful sinks (Jira: the issue of each firing group) keeping their state in
/// `state` (the alert store), so it survives a restart.
pub fn sinks_with_state(
    settings: &NotificationSettings,
    env: impl Fn(&str) -> Option<String>,
    state: Arc<dyn crate::ports::SinkStateStore>,
) -> Result<Vec<Arc<dyn Notifier>>, String> {
    let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
    for sink in &settings.sinks {
        if sink.kind == SinkKind::Log {
            notifiers.push(Arc::new(super::log_sink::LogNotifier::new(&sink.name)));
            continue;
        }
        if sink.kind == SinkKind::Jira {
            // `optional` turns the sink off while its URL is unset; with the URL set, a missing
            // project or credential is a configuration error.
            if let (Err(reason), true) = (sink.resolve_url(&env), sink.optional) {
                tracing::info!(sink = %sink.name, %reason, "optional notification sink is off");
                continue;
            }
            let target = super::jira::JiraTarget::resolve(sink, &env)?;
            notifiers.push(Arc::new(super::jira::JiraNotifier::new(
                &sink.name,
                target,
                state.clone(),
            )?));
            continue;
        }
        let url = match sink.resolve_url(&env) {
            Ok(url) => url,
            Err(reason) if sink.optional => {
                tracing::info!(sink = %sink.name, %reason, "optional notification sink is off");
                continue;
            }
            Err(reason) => return Err(reason),
        };
        notifiers.push(Arc::new(WebhookNotifier::new(&sink.name, sink.kind, &url)?));
    }
    Ok(notifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_root_certificates_https_sinks_are_refused_but_http_sinks_work() {
        let reason = "the operating system has no usable root certificates".to_string();
        let https = WebhookNotifier::with_tls(
            "slack",
            SinkKind::Slack,
            "https://hooks.example.com/services/x",
            Err(&reason),
        );
        let error = https.err().expect("https without roots must be refused");
        assert!(error.contains("\"slack\""), "{error}");
        assert!(error.contains("root certificates"), "{error}");
        let http = WebhookNotifier::with_tls(
            "ops",
            SinkKind::Webhook,
            "http://127.0.0.1:9/x",
            Err(&reason),
        );
        assert!(http.is_ok(), "{:?}", http.err());
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        for url in ["ftp://example.com/x", "example.com", "/hook", "not a url"] {
            let error = WebhookNotifier::with_root_certificates(
                "ops",
                SinkKind::Webhook,
                url,
                RootCertStore::empty(),
            )
            .err()
            .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(error.starts_with("sink \"ops\""), "{error}");
        }
    }

    #[test]
    fn a_tls_config_with_alpn_set_is_accepted() {
        let mut config = client_config(RootCertStore::empty()).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let notifier = WebhookNotifier::with_tls_config(
            "ops",
            SinkKind::Webhook,
            "https://example.com/x",
            config,
        );
        assert!(notifier.is_ok());
    }
}
