//! Simulated distributed traces: a request enters at `api`, which checks `auth`, reads `cache`
//! and `database` in parallel (a cache miss goes on to `database`), then publishes to `queue`.
//!
//! Every span sits inside its parent's time; each service's spans are exported by that service.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::model::{Conditions, ServiceName};
use super::otlp::{bool_attribute, int_attribute, scope, string_attribute, ServiceIdentity};

/// Share of cache lookups that miss and go on to the database.
const CACHE_MISS_RATE: f64 = 0.3;
/// W3C trace flag: sampled.
const SAMPLED: u32 = 0x01;
const MESSAGING_SYSTEM: &str = "kafka";
const TOPIC: &str = "order-events";

/// Spans of one trace, each tagged with the service that records it.
#[derive(Debug, Clone, Default)]
pub struct TraceSpans {
    pub spans: Vec<(ServiceName, Span)>,
}

/// Builds random traces shaped by each service's current conditions.
#[derive(Debug, Clone)]
pub struct TraceGenerator {
    rng: StdRng,
}

/// A remote call about to be made: the client side (in the caller) and the server side.
struct Call {
    caller: ServiceName,
    callee: ServiceName,
    client_kind: SpanKind,
    server_kind: SpanKind,
    client_name: String,
    server_name: String,
    client_attributes: Vec<KeyValue>,
    server_attributes: Vec<KeyValue>,
    /// HTTP calls carry `http.response.status_code`.
    http: bool,
}

struct CallOutcome {
    client: usize,
    server: usize,
    end: u64,
    failed: bool,
}

impl TraceGenerator {
    pub fn new(seed: u64) -> Self {
        TraceGenerator {
            rng: StdRng::seed_from_u64(seed ^ 0x5452_4143_4553),
        }
    }

    /// How many traces to start in a tick of `tick_secs` at `per_second`, keeping the average exact.
    pub fn traces_in_tick(&mut self, per_second: f64, tick_secs: f64) -> u64 {
        let expected = per_second * tick_secs;
        if !(expected.is_finite() && expected > 0.0) {
            return 0;
        }
        let whole = expected.floor();
        let extra = self.rng.random_bool((expected - whole).clamp(0.0, 1.0));
        whole as u64 + u64::from(extra)
    }

    /// One trace under `conditions` (indexed by [`ServiceName::index`]) whose root ends at
    /// `end_unix_nano`.
    pub fn trace(&mut self, conditions: &[Conditions; 5], end_unix_nano: u64) -> TraceSpans {
        let mut trace = TraceBuilder::new(random_id(&mut self.rng));
        let route = *pick(&mut self.rng, ServiceName::Api.profile().routes);
        let root = trace.open(
            &mut self.rng,
            ServiceName::Api,
            None,
            SpanKind::Server,
            &format!("{} {}", route.0, route.1),
            0,
            vec![
                string_attribute("http.request.method", route.0),
                string_attribute("http.route", route.1),
            ],
        );
        let api = &conditions[ServiceName::Api.index()];
        let mut now = self.work_ns(api, 0.1);
        let mut failed = false;

        let auth = self.call(
            &mut trace,
            conditions,
            root,
            now,
            Call {
                caller: ServiceName::Api,
                callee: ServiceName::Auth,
                client_kind: SpanKind::Client,
                server_kind: SpanKind::Server,
                client_name: "POST".to_owned(),
                server_name: "POST /verify".to_owned(),
                client_attributes: vec![
                    string_attribute("http.request.method", "POST"),
                    string_attribute("server.address", "auth"),
                    string_attribute("url.full", "http://auth/verify"),
                ],
                server_attributes: vec![
                    string_attribute("http.request.method", "POST"),
                    string_attribute("http.route", "/verify"),
                ],
                http: true,
            },
        );
        now = auth.end + self.gap_ns();

        // A request that fails authentication stops here, as a real API would.
        if auth.failed {
            failed = true;
        } else {
            let cache = self.cache_lookup(&mut trace, conditions, root, now);
            let database = self.call(
                &mut trace,
                conditions,
                root,
                now,
                database_call(ServiceName::Api, route.1),
            );
            failed |= database.failed;
            now = cache.max(database.end) + self.gap_ns();

            let publish = self.call(
                &mut trace,
                conditions,
                root,
                now,
                Call {
                    caller: ServiceName::Api,
                    callee: ServiceName::Queue,
                    client_kind: SpanKind::Producer,
                    server_kind: SpanKind::Consumer,
                    client_name: format!("send {TOPIC}"),
                    server_name: format!("process {TOPIC}"),
                    client_attributes: messaging_attributes("send"),
                    server_attributes: messaging_attributes("process"),
                    http: false,
                },
            );
            failed |= publish.failed;
            now = publish.end;
        }

        failed |= self.rng.random_bool(api.error_rate.clamp(0.0, 1.0));
        let end = now + self.work_ns(api, 0.2);
        trace.close(root, end, failed);
        trace.set_http_status(root, if failed { 500 } else { 200 });
        trace.into_spans(end_unix_nano)
    }

    /// api → cache; on a miss the cache reads through to the database. Returns when it ends.
    fn cache_lookup(
        &mut self,
        trace: &mut TraceBuilder,
        conditions: &[Conditions; 5],
        parent: usize,
        start: u64,
    ) -> u64 {
        let lookup = self.call(
            trace,
            conditions,
            parent,
            start,
            Call {
                caller: ServiceName::Api,
                callee: ServiceName::Cache,
                client_kind: SpanKind::Client,
                server_kind: SpanKind::Server,
                client_name: "GET".to_owned(),
                server_name: "GET".to_owned(),
                client_attributes: vec![
                    string_attribute("db.system", "redis"),
                    string_attribute("db.operation.name", "GET"),
                    string_attribute("server.address", "cache"),
                ],
                server_attributes: vec![string_attribute("db.system", "redis")],
                http: false,
            },
        );
        let miss = lookup.failed || self.rng.random_bool(CACHE_MISS_RATE);
        trace.push_attribute(lookup.server, bool_attribute("cache.hit", !miss));
        if !miss {
            return lookup.end;
        }
        // The read-through happens inside the cache's server span, which grows to cover it.
        let server_start = trace.start_of(lookup.server);
        let server_end = trace.end_of(lookup.server);
        let read = self.call(
            trace,
            conditions,
            lookup.server,
            server_end,
            database_call(ServiceName::Cache, "/products"),
        );
        let new_server_end = read.end + self.gap_ns();
        let network = server_start - trace.start_of(lookup.client);
        trace.close(lookup.server, new_server_end, lookup.failed);
        trace.close(lookup.client, new_server_end + network, lookup.failed);
        new_server_end + network
    }

    /// A remote call at `start`: the client span in the caller (child of `parent`) and the server
    /// span in the callee (child of the client span), one network hop each way.
    fn call(
        &mut self,
        trace: &mut TraceBuilder,
        conditions: &[Conditions; 5],
        parent: usize,
        start: u64,
        call: Call,
    ) -> CallOutcome {
        let callee = &conditions[call.callee.index()];
        let network = self.network_ns();
        let client = trace.open(
            &mut self.rng,
            call.caller,
            Some(parent),
            call.client_kind,
            &call.client_name,
            start,
            call.client_attributes,
        );
        let server_start = start + network;
        let server = trace.open(
            &mut self.rng,
            call.callee,
            Some(client),
            call.server_kind,
            &call.server_name,
            server_start,
            call.server_attributes,
        );
        let server_end = server_start + latency_ns(callee, &mut self.rng);
        let failed = self.rng.random_bool(callee.error_rate.clamp(0.0, 1.0));
        let end = server_end + network;
        trace.close(server, server_end, failed);
        trace.close(client, end, failed);
        if call.http {
            let code = if failed { 503 } else { 200 };
            trace.set_http_status(server, code);
            trace.set_http_status(client, code);
        }
        CallOutcome {
            client,
            server,
            end,
            failed,
        }
    }

    /// In-process work of a service: a fraction of one of its request latencies.
    fn work_ns(&mut self, conditions: &Conditions, fraction: f64) -> u64 {
        (latency_ns(conditions, &mut self.rng) as f64 * fraction) as u64 + 1_000
    }

    /// One-way network hop: 50–300 µs.
    fn network_ns(&mut self) -> u64 {
        self.rng.random_range(50_000..300_000)
    }

    /// Time between two steps of a handler: 10–100 µs.
    fn gap_ns(&mut self) -> u64 {
        self.rng.random_range(10_000..100_000)
    }
}

fn database_call(caller: ServiceName, route: &str) -> Call {
    let table = if route.contains("user") {
        "users"
    } else if route.contains("product") || route.contains("search") {
        "products"
    } else {
        "orders"
    };
    let statement = format!("SELECT {table}");
    let attributes = vec![
        string_attribute("db.system", "postgresql"),
        string_attribute("db.system.name", "postgresql"),
        string_attribute("db.operation.name", "SELECT"),
        string_attribute("db.collection.name", table),
    ];
    let mut client_attributes = attributes.clone();
    client_attributes.push(string_attribute("server.address", "database"));
    Call {
        caller,
        callee: ServiceName::Database,
        client_kind: SpanKind::Client,
        server_kind: SpanKind::Server,
        client_name: statement.clone(),
        server_name: statement,
        client_attributes,
        server_attributes: attributes,
        http: false,
    }
}

fn messaging_attributes(operation: &str) -> Vec<KeyValue> {
    vec![
        string_attribute("messaging.system", MESSAGING_SYSTEM),
        string_attribute("messaging.destination.name", TOPIC),
        string_attribute("messaging.operation.type", operation),
    ]
}

fn latency_ns(conditions: &Conditions, rng: &mut impl Rng) -> u64 {
    // At least 20 µs: no real call takes zero time, and zero-length spans confuse viewers.
    (conditions.sample_latency_ms(rng) * 1e6).max(20_000.0) as u64
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A non-zero random id (all-zero ids are invalid in OTLP).
fn random_id<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    loop {
        let id: [u8; N] = rng.random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

/// Spans of one trace under construction, with times relative to the root's start.
struct TraceBuilder {
    trace_id: [u8; 16],
    spans: Vec<(ServiceName, Span)>,
}

impl TraceBuilder {
    fn new(trace_id: [u8; 16]) -> Self {
        TraceBuilder {
            trace_id,
            spans: Vec::with_capacity(12),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        rng: &mut impl Rng,
        service: ServiceName,
        parent: Option<usize>,
        kind: SpanKind,
        name: &str,
        start: u64,
        attributes: Vec<KeyValue>,
    ) -> usize {
        let span_id = loop {
            let id: [u8; 8] = random_id(rng);
            if !self.spans.iter().any(|(_, s)| s.span_id == id) {
                break id;
            }
        };
        let parent_span_id = parent
            .and_then(|index| self.spans.get(index))
            .map(|(_, span)| span.span_id.clone())
            .unwrap_or_default();
        self.spans.push((
            service,
            Span {
                trace_id: self.trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id,
                flags: SAMPLED,
                name: name.to_owned(),
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start,
                attributes,
                ..Default::default()
            },
        ));
        self.spans.len() - 1
    }

    fn close(&mut self, index: usize, end: u64, failed: bool) {
        if let Some((_, span)) = self.spans.get_mut(index) {
            span.end_time_unix_nano = end.max(span.start_time_unix_nano);
            span.status = Some(if failed {
                Status {
                    code: StatusCode::Error as i32,
                    message: "simulated failure".to_owned(),
                }
            } else {
                Status::default()
            });
        }
    }

    fn set_http_status(&mut self, index: usize, code: i64) {
        self.push_attribute(index, int_attribute("http.response.status_code", code));
    }

    fn push_attribute(&mut self, index: usize, attribute: KeyValue) {
        if let Some((_, span)) = self.spans.get_mut(index) {
            span.attributes.retain(|kv| kv.key != attribute.key);
            span.attributes.push(attribute);
        }
    }

    fn start_of(&self, index: usize) -> u64 {
        self.spans
            .get(index)
            .map_or(0, |(_, s)| s.start_time_unix_nano)
    }

    fn end_of(&self, index: usize) -> u64 {
        self.spans
            .get(index)
            .map_or(0, |(_, s)| s.end_time_unix_nano)
    }

    /// Moves the trace onto the wall clock so that the root ends at `end_unix_nano`.
    fn into_spans(mut self, end_unix_nano: u64) -> TraceSpans {
        let duration = self
            .spans
            .iter()
            .map(|(_, s)| s.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        let origin = end_unix_nano.saturating_sub(duration);
        for (_, span) in &mut self.spans {
            span.start_time_unix_nano += origin;
            span.end_time_unix_nano += origin;
        }
        TraceSpans { spans: self.spans }
    }
}

/// The spans one service recorded, as that service's OTLP export.
pub fn export_request(identity: &ServiceIdentity, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(identity.resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use prost::Message;

    use super::*;
    use crate::loadgen::model::{ServiceBehaviour, SpikePlan};
    use crate::loadgen::otlp::find_string;

    const END: u64 = 1_700_000_000_000_000_000;

    fn conditions_at(seed: u64, t_secs: f64) -> [Conditions; 5] {
        ServiceName::ALL.map(|name| {
            ServiceBehaviour::new(name, seed, &SpikePlan::default()).conditions_at(t_secs)
        })
    }

    /// Generates traces, exports them per service, and decodes what would go over the wire.
    fn decoded_spans(
        seed: u64,
        traces: usize,
        conditions: &[Conditions; 5],
    ) -> Vec<(String, Span)> {
        let mut generator = TraceGenerator::new(seed);
        let mut per_service: HashMap<ServiceName, Vec<Span>> = HashMap::new();
        for _ in 0..traces {
            for (service, span) in generator.trace(conditions, END).spans {
                per_service.entry(service).or_default().push(span);
            }
        }
        let mut decoded = Vec::new();
        for (service, spans) in per_service {
            let identity = ServiceIdentity::new(service, 7);
            let bytes = export_request(&identity, spans).encode_to_vec();
            let request = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
            for resource_spans in request.resource_spans {
                let resource = resource_spans.resource.unwrap();
                let name = find_string(&resource.attributes, "service.name")
                    .unwrap()
                    .to_owned();
                assert_eq!(name, service.as_str());
                for scope_spans in resource_spans.scope_spans {
                    assert_eq!(scope_spans.scope.unwrap().name, "flowscope-loadgen");
                    decoded.extend(scope_spans.spans.into_iter().map(|s| (name.clone(), s)));
                }
            }
        }
        decoded
    }

    fn by_trace(spans: Vec<(String, Span)>) -> HashMap<Vec<u8>, Vec<(String, Span)>> {
        let mut traces: HashMap<Vec<u8>, Vec<(String, Span)>> = HashMap::new();
        for (service, span) in spans {
            traces
                .entry(span.trace_id.clone())
                .or_default()
                .push((service, span));
        }
        traces
    }

    #[test]
    fn traces_form_proper_trees_nested_in_time() {
        let conditions = conditions_at(1, 0.0);
        let traces = by_trace(decoded_spans(1, 300, &conditions));
        assert_eq!(traces.len(), 300);
        for (trace_id, spans) in &traces {
            assert_eq!(trace_id.len(), 16);
            assert!(trace_id.iter().any(|b| *b != 0));
            let by_id: HashMap<&[u8], &(String, Span)> = spans
                .iter()
                .map(|entry| (entry.1.span_id.as_slice(), entry))
                .collect();
            assert_eq!(
                by_id.len(),
                spans.len(),
                "span ids must be unique in a trace"
            );
            let roots: Vec<_> = spans
                .iter()
                .filter(|(_, s)| s.parent_span_id.is_empty())
                .collect();
            assert_eq!(roots.len(), 1, "exactly one root");
            let (root_service, root) = roots[0];
            assert_eq!(root_service, "api");
            assert_eq!(root.kind, SpanKind::Server as i32);
            assert_eq!(root.end_time_unix_nano, END);
            for (_, span) in spans {
                assert_eq!(span.span_id.len(), 8);
                assert!(span.span_id.iter().any(|b| *b != 0));
                assert!(span.start_time_unix_nano < span.end_time_unix_nano);
                if span.parent_span_id.is_empty() {
                    continue;
                }
                let (_, parent) = by_id
                    .get(span.parent_span_id.as_slice())
                    .expect("parent is in the same trace");
                assert!(parent.start_time_unix_nano <= span.start_time_unix_nano);
                assert!(span.end_time_unix_nano <= parent.end_time_unix_nano);
            }
        }
    }

    #[test]
    fn calls_cross_services_with_matching_client_and_server_spans() {
        let conditions = conditions_at(2, 0.0);
        let traces = by_trace(decoded_spans(2, 300, &conditions));
        let mut complete = 0;
        let mut saw_cache_miss = false;
        for spans in traces.values() {
            let by_id: HashMap<&[u8], &(String, Span)> = spans
                .iter()
                .map(|entry| (entry.1.span_id.as_slice(), entry))
                .collect();
            for (service, span) in spans {
                let Some((parent_service, parent)) = by_id.get(span.parent_span_id.as_slice())
                else {
                    continue;
                };
                let kind = SpanKind::try_from(span.kind).unwrap();
                let parent_kind = SpanKind::try_from(parent.kind).unwrap();
                match kind {
                    // The receiving side of a call lives in another service than its caller.
                    SpanKind::Server => {
                        assert_eq!(parent_kind, SpanKind::Client);
                        assert_ne!(service, parent_service);
                    }
                    SpanKind::Consumer => {
                        assert_eq!(parent_kind, SpanKind::Producer);
                        assert_eq!(service, "queue");
                        assert_eq!(
                            find_string(&span.attributes, "messaging.system"),
                            Some("kafka")
                        );
                    }
                    SpanKind::Client | SpanKind::Producer => {
                        assert_eq!(service, parent_service, "outgoing calls start in-process");
                        assert_eq!(parent_kind, SpanKind::Server);
                    }
                    other => panic!("unexpected span kind {other:?}"),
                }
                if kind == SpanKind::Server && service == "database" {
                    assert_eq!(
                        find_string(&parent.attributes, "db.system"),
                        Some("postgresql")
                    );
                    if parent_service == "cache" {
                        saw_cache_miss = true;
                    }
                }
            }
            let services: BTreeSet<&str> = spans.iter().map(|(s, _)| s.as_str()).collect();
            let auth_ok = spans.iter().any(|(service, span)| {
                service == "auth"
                    && span
                        .status
                        .as_ref()
                        .is_none_or(|s| s.code != StatusCode::Error as i32)
            });
            if auth_ok {
                assert_eq!(
                    services,
                    BTreeSet::from(["api", "auth", "cache", "database", "queue"]),
                    "a request that passes auth reaches every service"
                );
                complete += 1;
            }
        }
        assert!(complete > 250, "only {complete} complete traces of 300");
        assert!(saw_cache_miss, "no cache miss read through to the database");
    }

    #[test]
    fn failures_follow_the_error_rate_and_mark_status_and_http_codes() {
        let mut conditions = conditions_at(3, 0.0);
        for c in &mut conditions {
            c.error_rate = 0.0;
        }
        let calm = decoded_spans(3, 200, &conditions);
        assert!(calm
            .iter()
            .all(|(_, s)| s.status.as_ref().is_none_or(|st| st.code == 0)));

        conditions[ServiceName::Database.index()].error_rate = 1.0;
        let failing = decoded_spans(3, 50, &conditions);
        for (service, span) in &failing {
            if span.parent_span_id.is_empty() {
                let status = span.status.as_ref().unwrap();
                assert_eq!(
                    status.code,
                    StatusCode::Error as i32,
                    "db failure fails the request"
                );
                let code = span
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "http.response.status_code")
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| v.value.clone());
                assert_eq!(
                    code,
                    Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(500))
                );
            }
            if service == "database" {
                assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
            }
        }
    }

    #[test]
    fn spans_are_deterministic_for_a_seed() {
        let conditions = conditions_at(4, 0.0);
        let mut a = TraceGenerator::new(4);
        let mut b = TraceGenerator::new(4);
        for _ in 0..20 {
            assert_eq!(
                a.trace(&conditions, END).spans,
                b.trace(&conditions, END).spans
            );
        }
    }

    #[test]
    fn trace_count_per_tick_keeps_the_requested_rate() {
        let mut generator = TraceGenerator::new(5);
        // 6.6 traces per tick: whole traces only, but the fractions must add up.
        let total: u64 = (0..1000)
            .map(|_| generator.traces_in_tick(20.0, 0.33))
            .sum();
        assert!((6_450..=6_750).contains(&total), "total {total}");
        assert_eq!(generator.traces_in_tick(0.0, 1.0), 0);
    }
}
