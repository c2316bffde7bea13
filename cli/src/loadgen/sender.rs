//! OTLP/HTTP delivery: protobuf bodies POSTed to `/v1/metrics` and `/v1/traces`, optionally
//! gzipped, retried on 429/503 as the OTLP spec asks (honouring `Retry-After`, within bounds).

use std::fmt;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::args::HeaderArg;

pub const PROTOBUF: &str = "application/x-protobuf";

/// Which OTLP endpoint a body goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Traces,
}

impl Signal {
    fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Traces => "/v1/traces",
        }
    }
}

/// How hard to try before counting a request as failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Longest wait between attempts, whatever `Retry-After` asks.
    pub max_wait: Duration,
    /// Wait before the first retry when the server gives no `Retry-After`; doubles each time.
    pub backoff: Duration,
    /// Limit on one attempt (connect, send, read the response).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            max_wait: Duration::from_secs(5),
            backoff: Duration::from_millis(250),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// A body the receiver accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub attempts: u32,
    /// Time spent waiting between attempts.
    pub waited: Duration,
}

/// Why a body was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The receiver answered with a status that is not success (after any retries).
    Rejected {
        status: u16,
        attempts: u32,
        /// The start of the response body: receivers explain rejections there.
        detail: String,
    },
    /// Connecting, sending or reading failed.
    Transport(String),
    TimedOut,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Rejected {
                status,
                attempts,
                detail,
            } => {
                write!(f, "HTTP {status} after {attempts} attempt(s)")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            SendError::Transport(reason) => write!(f, "transport error: {reason}"),
            SendError::TimedOut => write!(f, "request timed out"),
        }
    }
}

impl std::error::Error for SendError {}

/// Sends encoded OTLP bodies to one receiver.
#[derive(Debug, Clone)]
pub struct OtlpSender {
    client: Client<HttpConnector, Full<Bytes>>,
    metrics_uri: Uri,
    traces_uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    gzip: bool,
    retry: RetryPolicy,
}

impl OtlpSender {
    /// `endpoint` is the receiver's base URL, e.g. `http://127.0.0.1:4318`.
    pub fn new(
        endpoint: &str,
        headers: &[HeaderArg],
        gzip: bool,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let base = endpoint.trim().trim_end_matches('/');
        let uri_for = |signal: Signal| -> anyhow::Result<Uri> {
            let uri: Uri = format!("{base}{}", signal.path())
                .parse()
                .map_err(|e| anyhow::anyhow!("invalid --endpoint {endpoint:?}: {e}"))?;
            match uri.scheme_str() {
                Some("http") => Ok(uri),
                // No TLS stack is linked in: put a collector or proxy in front of HTTPS targets.
                Some("https") => anyhow::bail!(
                    "--endpoint {endpoint:?}: https is not supported, use http:// (e.g. a local collector)"
                ),
                _ => anyhow::bail!("--endpoint {endpoint:?} must start with http://"),
            }
        };
        Ok(OtlpSender {
            client: Client::builder(TokioExecutor::new()).build_http(),
            metrics_uri: uri_for(Signal::Metrics)?,
            traces_uri: uri_for(Signal::Traces)?,
            headers: headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            gzip,
            retry,
        })
    }

    /// The request body for `message`: protobuf, gzipped when asked.
    pub fn encode(&self, message: &impl prost::Message) -> std::io::Result<Bytes> {
        let protobuf = message.encode_to_vec();
        if !self.gzip {
            return Ok(Bytes::from(protobuf));
        }
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(protobuf.len() / 4), Compression::fast());
        encoder.write_all(&protobuf)?;
        Ok(Bytes::from(encoder.finish()?))
    }

    /// POSTs `body` (from [`OtlpSender::encode`]), retrying on 429 and 503.
    pub async fn send(&self, signal: Signal, body: Bytes) -> Result<Delivery, SendError> {
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = tokio::time::timeout(
                self.retry.attempt_timeout,
                self.attempt(signal, body.clone()),
            )
            .await
            .map_err(|_| SendError::TimedOut)??;
            let (status, retry_after, detail) = response;
            if status.is_success() {
                return Ok(Delivery {
                    attempts: attempt,
                    waited,
                });
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if !retryable || attempt > self.retry.max_retries {
                return Err(SendError::Rejected {
                    status: status.as_u16(),
                    attempts: attempt,
                    detail,
                });
            }
            let wait = retry_after
                .unwrap_or_else(|| {
                    self.retry
                        .backoff
                        .saturating_mul(1 << (attempt - 1).min(16))
                })
                .min(self.retry.max_wait);
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    /// One HTTP exchange: status, the `Retry-After` delay if any, and the start of the body.
    async fn attempt(
        &self,
        signal: Signal,
        body: Bytes,
    ) -> Result<(StatusCode, Option<Duration>, String), SendError> {
        let uri = match signal {
            Signal::Metrics => self.metrics_uri.clone(),
            Signal::Traces => self.traces_uri.clone(),
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, PROTOBUF);
        if self.gzip {
            builder = builder.header(CONTENT_ENCODING, "gzip");
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        // Reading the body to the end lets the connection be reused.
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?
            .to_bytes();
        let detail = if status.is_success() {
            String::new()
        } else {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned()
        };
        Ok((status, retry_after, detail))
    }
}

/// `Retry-After` as delay-seconds. HTTP dates are not parsed; the caller backs off instead.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// hyper's errors say "client error (Connect)"; the cause below says what actually happened.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes as AxumBytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::Router;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use prost::Message;

    use super::*;
    use crate::loadgen::metrics::{routes_for, ServiceMetrics};
    use crate::loadgen::model::ServiceName;
    use crate::loadgen::otlp::ServiceIdentity;

    /// What the test receiver saw, one entry per request.
    #[derive(Debug, Clone)]
    struct Received {
        path: String,
        content_type: Option<String>,
        content_encoding: Option<String>,
        api_key: Option<String>,
        body: Vec<u8>,
    }

    /// Responses to give, in order: status and optional `Retry-After`.
    type Script = Vec<(AxumStatus, Option<&'static str>)>;

    #[derive(Clone)]
    struct Receiver {
        log: Arc<Mutex<Vec<Received>>>,
        /// Responses to give, in order; once used up, every request gets 200.
        script: Arc<Mutex<Script>>,
    }

    async fn receive(
        State(receiver): State<Receiver>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: AxumBytes,
    ) -> impl IntoResponse {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        receiver.log.lock().unwrap().push(Received {
            path: uri.path().to_owned(),
            content_type: header("content-type"),
            content_encoding: header("content-encoding"),
            api_key: header("x-api-key"),
            body: body.to_vec(),
        });
        let next = {
            let mut script = receiver.script.lock().unwrap();
            (!script.is_empty()).then(|| script.remove(0))
        };
        let (status, retry_after) = next.unwrap_or((AxumStatus::OK, None));
        let mut response_headers = HeaderMap::new();
        if let Some(seconds) = retry_after {
            response_headers.insert("retry-after", seconds.parse().unwrap());
        }
        (status, response_headers, "busy")
    }

    /// A receiver on 127.0.0.1 that answers with `script`, then 200s.
    async fn spawn_receiver(script: Script) -> (String, Receiver) {
        let receiver = Receiver {
            log: Arc::default(),
            script: Arc::new(Mutex::new(script)),
        };
        let app = Router::new()
            .route("/v1/metrics", post(receive))
            .route("/v1/traces", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}"), receiver)
    }

    fn sample_request() -> ExportMetricsServiceRequest {
        let identity = ServiceIdentity::new(ServiceName::Api, 1);
        let routes = routes_for(ServiceName::Api.profile().routes, 3);
        ServiceMetrics::new(identity, 1, routes).export(2)
    }

    #[tokio::test]
    async fn retries_after_503_honouring_retry_after_then_delivers_protobuf() {
        let (endpoint, receiver) =
            spawn_receiver(vec![(AxumStatus::SERVICE_UNAVAILABLE, Some("1"))]).await;
        let key: HeaderArg = "x-api-key=k1".parse().unwrap();
        let sender = OtlpSender::new(&endpoint, &[key], false, RetryPolicy::default()).unwrap();
        let message = sample_request();
        let body = sender.encode(&message).unwrap();

        let delivery = sender.send(Signal::Metrics, body).await.unwrap();

        assert_eq!(delivery.attempts, 2);
        assert_eq!(
            delivery.waited,
            Duration::from_secs(1),
            "Retry-After: 1 was honoured"
        );
        let log = receiver.log.lock().unwrap().clone();
        assert_eq!(log.len(), 2, "one rejected attempt, one retry");
        for received in &log {
            assert_eq!(received.path, "/v1/metrics");
            assert_eq!(
                received.content_type.as_deref(),
                Some("application/x-protobuf")
            );
            assert_eq!(received.content_encoding, None);
            assert_eq!(received.api_key.as_deref(), Some("k1"));
            let decoded = ExportMetricsServiceRequest::decode(received.body.as_slice()).unwrap();
            assert_eq!(decoded, message);
        }
    }

    #[tokio::test]
    async fn gzip_bodies_are_marked_and_decompress_to_the_protobuf() {
        let (endpoint, receiver) = spawn_receiver(Vec::new()).await;
        let sender = OtlpSender::new(&endpoint, &[], true, RetryPolicy::default()).unwrap();
        let message = sample_request();
        let body = sender.encode(&message).unwrap();
        sender.send(Signal::Traces, body).await.unwrap();

        let log = receiver.log.lock().unwrap().clone();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].path, "/v1/traces");
        assert_eq!(log[0].content_encoding.as_deref(), Some("gzip"));
        let mut protobuf = Vec::new();
        flate2::read::GzDecoder::new(log[0].body.as_slice())
            .read_to_end(&mut protobuf)
            .unwrap();
        assert_eq!(
            ExportMetricsServiceRequest::decode(protobuf.as_slice()).unwrap(),
            message
        );
    }

    #[tokio::test]
    async fn retries_are_bounded_and_other_errors_are_not_retried() {
        let busy = (AxumStatus::TOO_MANY_REQUESTS, Some("0"));
        let (endpoint, receiver) = spawn_receiver(vec![busy; 10]).await;
        let policy = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        let sender = OtlpSender::new(&endpoint, &[], false, policy).unwrap();
        let error = sender
            .send(Signal::Metrics, Bytes::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                SendError::Rejected {
                    status: 429,
                    attempts: 3,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(receiver.log.lock().unwrap().len(), 3);

        let (endpoint, receiver) = spawn_receiver(vec![(AxumStatus::BAD_REQUEST, Some("1"))]).await;
        let sender = OtlpSender::new(&endpoint, &[], false, policy).unwrap();
        let error = sender
            .send(Signal::Metrics, Bytes::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, SendError::Rejected { status: 400, attempts: 1, ref detail } if detail == "busy"),
            "{error}"
        );
        assert_eq!(receiver.log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_an_error_not_a_panic() {
        // Bind then drop, so nothing listens on the port.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let sender = OtlpSender::new(
            &format!("http://{address}"),
            &[],
            false,
            RetryPolicy::default(),
        )
        .unwrap();
        let error = sender
            .send(Signal::Metrics, Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Transport(_)), "{error}");
    }

    #[test]
    fn endpoints_must_be_plain_http() {
        let policy = RetryPolicy::default();
        assert!(OtlpSender::new("http://127.0.0.1:4318/", &[], false, policy).is_ok());
        assert!(OtlpSender::new("https://collector:4318", &[], false, policy).is_err());
        assert!(OtlpSender::new("127.0.0.1:4318", &[], false, policy).is_err());
        assert!(OtlpSender::new("http://bad host", &[], false, policy).is_err());
    }
}
