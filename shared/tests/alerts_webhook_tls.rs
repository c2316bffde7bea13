//! Alert sinks over https: a TLS receiver on 127.0.0.1 whose certificate is issued at test time by a
//! throwaway CA. A notifier trusting that CA delivers (with retries, like plain-http webhooks); one
//! that does not gets a retryable TLS error; https sinks from the rules file use the OS roots.

mod alerts_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alerts_support::{minute, notification_settings, serve, Fixture, Received};
use flowscope_core::alerts::notify::{Dispatcher, Notification};
use flowscope_core::alerts::rules::SinkKind;
use flowscope_core::alerts::state::{fingerprint, Labels, Severity};
use flowscope_core::alerts::webhook::{http_sinks, WebhookNotifier};
use flowscope_core::alerts::{AlertStatus, AlertTransition, RuleSet, TransitionKind};
use flowscope_core::ports::{AlertStore, Notifier, NotifyError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A CA made for one test, and a server certificate for 127.0.0.1/localhost that it issued.
struct TestPki {
    ca: CertificateDer<'static>,
    server: Arc<ServerConfig>,
}

impl TestPki {
    fn new(name: &str) -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "receiver");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        TestPki {
            ca: ca.der().clone(),
            server: Arc::new(server),
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }
}

/// An HTTPS/1.1 receiver on 127.0.0.1 answering the n-th request with `statuses[n]` (the last repeats);
/// records every request and every failed TLS handshake.
struct TlsReceiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    failed_handshakes: Arc<Mutex<Vec<String>>>,
}

impl TlsReceiver {
    async fn start(pki: &TestPki, statuses: Vec<u16>) -> TlsReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hook", listener.local_addr().unwrap());
        let acceptor = TlsAcceptor::from(pki.server.clone());
        let failed_handshakes = Arc::new(Mutex::new(Vec::new()));
        let failures = failed_handshakes.clone();
        let received = serve(listener, statuses, move |socket| {
            let (acceptor, failures) = (acceptor.clone(), failures.clone());
            async move {
                match acceptor.accept(socket).await {
                    Ok(tls) => Some(tls),
                    Err(e) => {
                        failures.lock().unwrap().push(e.to_string());
                        None
                    }
                }
            }
        });
        TlsReceiver {
            url,
            received,
            failed_handshakes,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn firing(service: &str, rule: &str, at: i64) -> AlertTransition {
    let mut labels = Labels::new();
    labels.insert("service".into(), service.into());
    AlertTransition {
        fingerprint: fingerprint(rule, &labels),
        rule: rule.into(),
        labels,
        kind: TransitionKind::Firing,
        status: AlertStatus::Firing,
        previous_status: AlertStatus::Pending,
        severity: Some(Severity::Critical),
        previous_severity: Some(Severity::Critical),
        value: Some(1234.0),
        reason: None,
        at,
        summary: format!("{rule} summary"),
        by: None,
    }
}

#[tokio::test]
async fn slack_sink_delivers_over_https_to_a_receiver_issued_by_a_trusted_ca() {
    let fx = Fixture::new();
    let pki = TestPki::new("trusted");
    // Fails once, then accepts: the retry opens a new TLS connection with the same idempotency key.
    let receiver = TlsReceiver::start(&pki, vec![503, 200]).await;
    let slack = WebhookNotifier::with_root_certificates(
        "slack",
        SinkKind::Slack,
        &receiver.url,
        pki.roots(),
    )
    .unwrap()
    .with_timeout(Duration::from_secs(5));
    let dispatcher = Dispatcher::new(
        fx.alerts.clone(),
        vec![Arc::new(slack)],
        &notification_settings(3),
    );
    let now = minute(0);
    let reports = dispatcher
        .dispatch_now(&[firing("checkout", "high-latency", now)], now)
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].delivered(), "{:?}", reports[0].error);
    assert_eq!(reports[0].attempts, 2);
    assert!(receiver.failed_handshakes.lock().unwrap().is_empty());

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert!(
            request.head.starts_with("POST /hook HTTP/1.1\r\n"),
            "{}",
            request.head
        );
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
    }
    let keys: Vec<Option<String>> = requests
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert!(keys[0].is_some());
    assert_eq!(keys[0], keys[1]);
    let body = requests[1].json();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("*checkout*: 1 firing"), "{text}");
    assert!(
        text.contains("[CRITICAL] high-latency — high-latency summary"),
        "{text}"
    );
    assert!(fx.alerts.list_dead_letters(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_receiver_certificate_from_an_untrusted_ca_is_a_retryable_tls_error() {
    let pki = TestPki::new("receiver");
    let other = TestPki::new("other");
    let receiver = TlsReceiver::start(&pki, vec![200]).await;
    let webhook = WebhookNotifier::with_root_certificates(
        "ops",
        SinkKind::Webhook,
        &receiver.url,
        other.roots(),
    )
    .unwrap()
    .with_timeout(Duration::from_secs(5));
    let notification = Notification::new("api".into(), vec![firing("api", "latency", 0)], 0);
    let error = webhook.send(&notification).await.unwrap_err();
    let NotifyError::Retryable(message) = &error else {
        panic!("expected a retryable error, got {error:?}");
    };
    assert!(message.contains("TLS handshake"), "{message}");
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(receiver.requests().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn https_sinks_from_the_rules_file_are_built_with_the_os_root_certificates() {
    let rules = RuleSet::parse(
        "version: 1\n\
         notifications:\n  \
           sinks:\n    \
             - { name: ops, kind: webhook, url: \"http://127.0.0.1:9/hook\" }\n    \
             - { name: slack, kind: slack, url_env: TEST_SLACK_URL }\n\
         rules: []\n",
        "tls-rules.yaml",
    )
    .unwrap();
    let env = |key: &str| {
        (key == "TEST_SLACK_URL").then(|| "https://hooks.slack.com/services/T0/B0/secret".into())
    };
    // Needs the OS root certificates (ca-certificates); without them this is a configuration error
    // naming the sink.
    let sinks = http_sinks(&rules.notifications, env).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["ops", "slack"]);

    // A URL given directly is accepted the same way.
    let direct = WebhookNotifier::new(
        "slack",
        SinkKind::Slack,
        "https://hooks.slack.com/services/T0/B0/secret",
    );
    assert!(direct.is_ok(), "{:?}", direct.err());
}
