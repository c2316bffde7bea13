//! The HTTP side of scraping: GET a target's `/metrics` (OpenMetrics preferred), bounded in time and
//! bytes, then parse → map → the receiver; and HTTP service discovery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::config::{HttpSd, ScrapeTargetSource, Target, TargetGroup};
use super::mapping::{to_otlp, ScrapeResult};
use super::parse::{parse, ExpositionFormat};
use super::{deliver, Delivery};
use crate::ingest::Ingest;
use crate::ports::StreamSink;

/// What Prometheus asks for: OpenMetrics first, the text format as the fallback.
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Bytes of an HTTP SD answer (Prometheus has no limit; a list of targets is small).
const MAX_SD_BODY_BYTES: usize = 4 * 1024 * 1024;
const SD_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP(S) client for targets and HTTP SD (rustls with ring, the operating system's roots).
#[derive(Clone)]
pub struct Scraper {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Scraper {
    /// A client trusting the operating system's root certificates; without usable ones only
    /// `http://` targets work and `https://` ones fail their scrape (up = 0).
    pub fn new() -> Result<Scraper, String> {
        let builder = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))
        };
        let config = match builder()?.with_native_roots() {
            Ok(b) => b.with_no_client_auth(),
            Err(_) => builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Scraper {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// GETs `url` within `timeout`, reading at most `max_bytes` of the body.
    pub async fn get(
        &self,
        url: &str,
        accept: &str,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<(Bytes, Option<String>), String> {
        let uri: Uri = url.parse().map_err(|e| format!("invalid url: {e}"))?;
        let mut request = Request::get(uri)
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("invalid request: {e}"))?;
        let headers = request.headers_mut();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(accept).map_err(|e| e.to_string())?,
        );
        headers.insert(USER_AGENT, HeaderValue::from_static("flowscope-scraper"));
        if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", timeout.as_secs_f64())) {
            headers.insert("x-prometheus-scrape-timeout-seconds", v);
        }
        let work = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("server returned HTTP status {status}"));
            }
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        format!("body over the limit of {max_bytes} bytes (body_size_limit)")
                    } else {
                        format!("reading the body: {e}")
                    }
                })?
                .to_bytes();
            Ok((body, content_type))
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no complete answer within the scrape timeout of {}",
                humantime::format_duration(timeout)
            )),
        }
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What one scrape of one target did.
#[derive(Debug, Clone, Default)]
pub struct ScrapeReport {
    pub up: bool,
    pub samples: usize,
    pub duration: Duration,
    /// Why the scrape failed (up = 0): connection, status, timeout, body or sample limits, syntax.
    pub error: Option<String>,
    pub points: u64,
    pub invalid_series: u64,
    pub delivery: Delivery,
}

/// Scrapes `target` once and hands the samples (or `up` = 0) to the receiver, stamped
/// `time_unix_nano` (the scrape's start; on AWS the scrape slot, so a repeated invocation writes the
/// same points).
pub async fn scrape_once<S: StreamSink + ?Sized>(
    scraper: &Scraper,
    ingest: &Ingest<S>,
    target: &Target,
    time_unix_nano: u64,
) -> ScrapeReport {
    let started = Instant::now();
    let fetched = scraper
        .get(
            &target.url,
            ACCEPT_HEADER,
            target.timeout,
            target.limits.max_body_bytes,
        )
        .await;
    let parsed = fetched.and_then(|(body, content_type)| {
        let format = ExpositionFormat::from_content_type(content_type.as_deref());
        parse(&body, format, &target.limits.parse).map_err(|e| e.to_string())
    });
    let duration = started.elapsed();
    let (exposition, error) = match parsed {
        Ok(e) => (Some(e), None),
        Err(e) => (None, Some(e)),
    };
    let (requests, stats) = to_otlp(
        &target.labels,
        &ScrapeResult {
            time_unix_nano,
            duration_seconds: duration.as_secs_f64(),
            exposition: exposition.as_ref(),
            honor_timestamps: target.honor_timestamps,
        },
        ingest.limits().max_points_per_request,
    );
    let delivery = deliver(ingest, requests).await;
    ScrapeReport {
        up: exposition.is_some(),
        samples: exposition.as_ref().map(|e| e.sample_count).unwrap_or(0),
        duration,
        error,
        points: stats.points,
        invalid_series: stats.invalid_series,
        delivery,
    }
}

/// `http_sd_configs`: a JSON list of target groups from a URL (Prometheus's HTTP SD format).
pub struct HttpSource {
    pub sd: HttpSd,
    pub scraper: Scraper,
}

#[async_trait]
impl ScrapeTargetSource for HttpSource {
    async fn groups(&self) -> Result<Vec<TargetGroup>, String> {
        let (body, _) = self
            .scraper
            .get(
                &self.sd.url,
                "application/json",
                SD_TIMEOUT,
                MAX_SD_BODY_BYTES,
            )
            .await
            .map_err(|e| format!("{}: {e}", self.sd.url))?;
        let mut groups: Vec<TargetGroup> = serde_json::from_slice(&body)
            .map_err(|e| format!("{}: line {}:{}: {e}", self.sd.url, e.line(), e.column()))?;
        for group in &mut groups {
            group
                .labels
                .insert("__meta_url".into(), self.sd.url.clone());
        }
        Ok(groups)
    }
    fn refresh_interval(&self) -> Option<Duration> {
        Some(self.sd.refresh_interval)
    }
    fn describe(&self) -> String {
        format!("http_sd_configs {}", self.sd.url)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::ingest::IngestLimits;
    use crate::ports::{StreamEntry, StreamError};
    use crate::scrape::config::{ScrapeConfigFile, ScrapeLimits};

    #[derive(Default)]
    struct Recorded(Mutex<Vec<StreamEntry>>);

    #[async_trait]
    impl StreamSink for Recorded {
        async fn put_all(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError> {
            self.0.lock().unwrap().extend(entries);
            Ok(())
        }
    }

    /// Serves `body` to every request, `content_type` as given.
    async fn serve(body: String, content_type: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        port
    }

    fn target(port: u16, extra: &str) -> Target {
        let file = ScrapeConfigFile::parse(
            &format!(
                "scrape_configs:\n  - job_name: t\n{extra}    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ),
            std::path::Path::new("/"),
            &ScrapeLimits::default(),
        )
        .unwrap();
        let job = &file.jobs[0];
        crate::scrape::config::resolve_targets(job, &job.static_groups).remove(0)
    }

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn receiver() -> Ingest<Recorded> {
        Ingest::new(Arc::new(Recorded::default()), IngestLimits::default()).with_clock(|| NOW)
    }

    #[tokio::test]
    async fn a_scrape_reaches_the_receiver_and_limits_fail_it_with_up_zero() {
        let body =
            "# TYPE c counter\nc_total 3\n# TYPE g gauge\ng{a=\"1\"} 2\ng{a=\"2\"} 5\n# EOF\n";
        let port = serve(
            body.to_string(),
            "application/openmetrics-text; version=1.0.0",
        )
        .await;
        let ingest = receiver();
        let report = scrape_once(&Scraper::new().unwrap(), &ingest, &target(port, ""), NOW).await;
        assert!(report.up, "{report:?}");
        assert_eq!(report.samples, 3);
        assert_eq!(
            report.points, 6,
            "3 samples + up, duration, samples scraped"
        );
        assert_eq!(ingest.stats().accepted_data_points, 6);
        assert_eq!(report.delivery, Delivery::default());

        // body_size_limit below the body; sample_limit below the samples: the scrape fails.
        for extra in ["    body_size_limit: 20\n", "    sample_limit: 2\n"] {
            let ingest = receiver();
            let report =
                scrape_once(&Scraper::new().unwrap(), &ingest, &target(port, extra), NOW).await;
            assert!(!report.up, "{extra}: {report:?}");
            let error = report.error.unwrap();
            assert!(error.contains("limit"), "{error}");
            assert_eq!(report.points, 3, "only up, duration, samples scraped");
            assert_eq!(ingest.stats().accepted_data_points, 3);
        }

        // Nothing listening: up = 0.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let report = scrape_once(
            &Scraper::new().unwrap(),
            &ingest,
            &target(closed_port, ""),
            NOW,
        )
        .await;
        assert!(!report.up);
    }
}
