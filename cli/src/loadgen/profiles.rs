//! Continuous profiles of the five simulated services (issue 14 item 8): every `--profile-interval`
//! each service pushes a CPU profile and a heap (`inuse_space`) profile in folded form to the
//! Pyroscope-compatible `POST /ingest`. Their shape follows the service's conditions: CPU samples
//! scale with its CPU use, and during an incident one call path (and one allocation site) takes a
//! growing share, so the diff view shows which frames grew.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::args::HeaderArg;
use super::model::{Conditions, ServiceName};

/// Samples per second of the simulated CPU profiler (the folded push's `sampleRate`).
pub const SAMPLE_RATE: u64 = 100;
/// Bytes a service's heap holds at 100% memory use.
const HEAP_BYTES_AT_FULL: f64 = 512.0 * 1024.0 * 1024.0;

/// A call path with its share of CPU in calm times and its extra share during a full incident.
struct Path {
    stack: &'static str,
    calm: f64,
    incident: f64,
}

const fn p(stack: &'static str, calm: f64, incident: f64) -> Path {
    Path {
        stack,
        calm,
        incident,
    }
}

const API_CPU: &[Path] = &[
    p(
        "main;http.serve;api.handle_request;auth.verify_token",
        15.0,
        0.0,
    ),
    p("main;http.serve;api.handle_request;cache.get", 10.0, 0.0),
    p(
        "main;http.serve;api.handle_request;db.query;pgx.exec",
        30.0,
        0.0,
    ),
    p(
        "main;http.serve;api.handle_request;db.query;pool.wait_for_connection",
        2.0,
        120.0,
    ),
    p("main;http.serve;api.handle_request;json.encode", 25.0, 0.0),
    p(
        "main;http.serve;api.handle_request;render.template",
        18.0,
        0.0,
    ),
    p("main;runtime.gc;gc.mark", 8.0, 10.0),
];
const AUTH_CPU: &[Path] = &[
    p(
        "main;grpc.serve;auth.check;bcrypt.compare;blowfish.expand_key",
        40.0,
        0.0,
    ),
    p("main;grpc.serve;auth.check;jwt.sign;rsa.sign", 20.0, 0.0),
    p("main;grpc.serve;auth.check;session.lookup", 25.0, 0.0),
    p(
        "main;grpc.serve;auth.check;session.lookup;redis.roundtrip_retry",
        1.0,
        110.0,
    ),
    p("main;runtime.gc;gc.mark", 6.0, 5.0),
];
const DATABASE_CPU: &[Path] = &[
    p("main;pg.executor;planner.plan", 20.0, 0.0),
    p("main;pg.executor;index.lookup;btree.search", 35.0, 0.0),
    p("main;pg.executor;seqscan.next;heap.fetch", 5.0, 150.0),
    p("main;pg.executor;wal.flush;fsync", 12.0, 0.0),
    p("main;pg.executor;lock.acquire;spin.wait", 2.0, 40.0),
];
const CACHE_CPU: &[Path] = &[
    p("main;redis.loop;dict.find", 40.0, 0.0),
    p("main;redis.loop;net.write", 30.0, 0.0),
    p("main;redis.loop;evict.lru;dict.delete", 5.0, 120.0),
    p("main;redis.loop;expire.cycle", 8.0, 0.0),
];
const QUEUE_CPU: &[Path] = &[
    p("main;broker.loop;queue.publish;log.append", 30.0, 0.0),
    p("main;broker.loop;queue.consume;log.read", 40.0, 0.0),
    p("main;broker.loop;disk.fsync", 10.0, 130.0),
    p("main;broker.loop;rebalance.assign", 3.0, 20.0),
];

/// Each service's CPU call paths: the incident path is the one that grows.
fn cpu_paths(service: ServiceName) -> &'static [Path] {
    match service {
        ServiceName::Api => API_CPU,
        ServiceName::Auth => AUTH_CPU,
        ServiceName::Database => DATABASE_CPU,
        ServiceName::Cache => CACHE_CPU,
        ServiceName::Queue => QUEUE_CPU,
    }
}

/// Each service's allocation sites (heap in use): the incident site is the one that leaks.
fn heap_paths(service: ServiceName) -> [Path; 4] {
    let leak: &'static str = match service {
        ServiceName::Api => "main;http.serve;api.handle_request;response.buffer_pool.grow",
        ServiceName::Auth => "main;grpc.serve;auth.check;session.cache.insert",
        ServiceName::Database => "main;pg.executor;seqscan.next;tuple.materialize",
        ServiceName::Cache => "main;redis.loop;dict.expand",
        ServiceName::Queue => "main;broker.loop;queue.consume;unacked.retain",
    };
    [
        p("main;runtime.init;config.load", 5.0, 0.0),
        p("main;pool.new;buffers.alloc", 50.0, 0.0),
        p("main;worker.loop;request.decode;bytes.make", 30.0, 0.0),
        p(leak, 5.0, 160.0),
    ]
}

/// What a service did since the last push: CPU seconds, and the incident intensity weighted by time.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    seconds: f64,
    cpu_seconds: f64,
    spike_seconds: f64,
    memory_percent: f64,
}

/// Accumulates each service's conditions tick by tick and renders the pushes.
#[derive(Debug, Default)]
pub struct ProfileWindows {
    windows: [Window; 5],
}

/// One push: the service, the query string of `/ingest` and the folded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePush {
    pub service: ServiceName,
    pub query: String,
    pub body: String,
}

/// `count` split over `weights` by largest remainder, so the parts add up exactly.
fn split(count: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || count == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| count as f64 * w / sum).collect();
    let mut parts: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
    let mut left = count.saturating_sub(parts.iter().sum());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor()))
    });
    for i in order {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

fn folded(paths: &[Path], total: u64, spike: f64) -> String {
    let weights: Vec<f64> = paths.iter().map(|p| p.calm + p.incident * spike).collect();
    let mut out = String::new();
    for (path, count) in paths.iter().zip(split(total, &weights)) {
        if count > 0 {
            let _ = writeln!(out, "{} {count}", path.stack);
        }
    }
    out
}

impl ProfileWindows {
    /// Adds one tick of every service's conditions.
    pub fn record_tick(&mut self, conditions: &[Conditions; 5], tick_secs: f64) {
        for (window, c) in self.windows.iter_mut().zip(conditions) {
            window.seconds += tick_secs;
            window.cpu_seconds += c.cpu_percent.max(0.0) / 100.0 * tick_secs;
            window.spike_seconds += c.spike * tick_secs;
            window.memory_percent = c.memory_percent;
        }
    }

    /// The pushes for the window `[from, until)` (unix seconds), and a fresh window.
    pub fn take(&mut self, from: u64, until: u64) -> Vec<ProfilePush> {
        let mut pushes = Vec::with_capacity(10);
        for (service, window) in ServiceName::ALL
            .into_iter()
            .zip(std::mem::take(&mut self.windows))
        {
            if window.seconds <= 0.0 {
                continue;
            }
            let spike = (window.spike_seconds / window.seconds).clamp(0.0, 1.0);
            let samples = (window.cpu_seconds * SAMPLE_RATE as f64).round() as u64;
            let name = service.as_str();
            pushes.push(ProfilePush {
                service,
                query: format!(
                    "name={name}.cpu&from={from}&until={until}&format=folded&sampleRate={SAMPLE_RATE}&spyName=flowscope-loadgen"
                ),
                body: folded(cpu_paths(service), samples, spike),
            });
            let heap =
                (window.memory_percent.clamp(0.0, 100.0) / 100.0 * HEAP_BYTES_AT_FULL) as u64;
            pushes.push(ProfilePush {
                service,
                query: format!(
                    "name={name}.inuse_space&from={from}&until={until}&format=folded&spyName=flowscope-loadgen"
                ),
                body: folded(&heap_paths(service), heap, spike),
            });
        }
        pushes
    }
}

/// Posts pushes to `{endpoint}/ingest`. A receiver without that route (404: an OpenTelemetry
/// Collector, say) turns profile pushes off for the rest of the run, with one warning.
#[derive(Clone)]
pub struct ProfileSender {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    unsupported: Arc<AtomicBool>,
}

impl ProfileSender {
    pub fn new(endpoint: &str, headers: &[HeaderArg]) -> Self {
        ProfileSender {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: endpoint.trim().trim_end_matches('/').to_string(),
            headers: headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            unsupported: Arc::new(AtomicBool::new(false)),
        }
    }

    /// One attempt; an error says why (status and the start of the reason).
    pub async fn send(&self, push: ProfilePush) -> Result<(), String> {
        if self.unsupported.load(Ordering::Relaxed) {
            return Ok(());
        }
        let uri: Uri = format!("{}/ingest?{}", self.base, push.query)
            .parse()
            .map_err(|e| format!("profile push URI: {e}"))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "text/plain");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(push.body)))
            .map_err(|e| format!("profile push: {e}"))?;
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.client.request(request),
        )
        .await
        .map_err(|_| "profile push timed out".to_string())?
        .map_err(|e| format!("profile push: {e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == hyper::StatusCode::NOT_FOUND && !self.unsupported.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(endpoint = %self.base, "the receiver has no /ingest (404): profiles are not sent");
            return Ok(());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(format!(
            "profile push for {}: HTTP {status}: {}",
            push.service.as_str(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::model::ServiceProfile;

    fn conditions(cpu: f64, spike: f64) -> [Conditions; 5] {
        let profile: &ServiceProfile = ServiceName::Api.profile();
        let mut c = Conditions::from_shapes(profile, 1.0, spike, 0.0, 0.0);
        c.cpu_percent = cpu;
        c.memory_percent = 50.0;
        [c; 5]
    }

    fn count(body: &str, stack_end: &str) -> u64 {
        body.lines()
            .find(|l| l.rsplit_once(' ').unwrap().0.ends_with(stack_end))
            .map_or(0, |l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
    }

    #[test]
    fn cpu_samples_follow_cpu_use_and_an_incident_grows_one_path() {
        let mut windows = ProfileWindows::default();
        for _ in 0..10 {
            windows.record_tick(&conditions(40.0, 0.0), 1.0);
        }
        let calm = windows.take(1000, 1010);
        assert_eq!(calm.len(), 10, "a cpu and a heap push per service");
        let api = calm
            .iter()
            .find(|p| p.service == ServiceName::Api && p.query.contains(".cpu"))
            .unwrap();
        assert!(api
            .query
            .starts_with("name=api.cpu&from=1000&until=1010&format=folded&sampleRate=100"));
        // 40% of one core for 10 s at 100 Hz = 400 samples.
        let total: u64 = api
            .body
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 400);
        let calm_wait = count(&api.body, "pool.wait_for_connection");

        for _ in 0..10 {
            windows.record_tick(&conditions(40.0, 1.0), 1.0);
        }
        let incident = windows.take(1010, 1020);
        let api = incident
            .iter()
            .find(|p| p.service == ServiceName::Api && p.query.contains(".cpu"))
            .unwrap();
        let incident_wait = count(&api.body, "pool.wait_for_connection");
        assert!(
            incident_wait > 10 * calm_wait.max(1),
            "{calm_wait} → {incident_wait}"
        );
        let heap = incident
            .iter()
            .find(|p| p.service == ServiceName::Api && p.query.contains("inuse_space"))
            .unwrap();
        let heap_total: u64 = heap
            .body
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(heap_total, (0.5 * HEAP_BYTES_AT_FULL) as u64);
        assert!(count(&heap.body, "response.buffer_pool.grow") > heap_total / 2);
    }

    #[test]
    fn split_adds_up_exactly() {
        assert_eq!(split(10, &[1.0, 1.0, 1.0]).iter().sum::<u64>(), 10);
        assert_eq!(split(0, &[1.0]), vec![0]);
        assert_eq!(split(5, &[0.0, 0.0]), vec![0, 0]);
    }
}
