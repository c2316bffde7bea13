//! One service's metrics as an OpenTelemetry SDK would keep them: cumulative counters and
//! histograms since a fixed start time, plus two gauges, exported as an OTLP request.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use rand::Rng;

use super::model::Conditions;
use super::otlp::{scope, string_attribute, ServiceIdentity};

// The dashboard and the alert rules look these names up: do not rename.
pub const REQUEST_DURATION: &str = "http.server.request.duration";
pub const REQUESTS: &str = "http.server.requests";
pub const ERRORS: &str = "http.server.errors";
pub const CPU_UTILIZATION: &str = "process.cpu.utilization";
pub const MEMORY_UTILIZATION: &str = "process.memory.utilization";

/// Upper bounds (inclusive, as OTLP defines them) of the latency histogram's buckets, in ms.
pub const LATENCY_BOUNDS_MS: [f64; 13] = [
    5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Data points per route in one export: the histogram, requests 2xx, requests 5xx, errors.
pub const POINTS_PER_ROUTE: usize = 4;
/// Data points per export that do not depend on routes: the CPU and memory gauges.
pub const POINTS_PER_PROCESS: usize = 2;

/// One endpoint of a service: a distinct series set (`http.request.method`, `http.route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub route: String,
}

/// `count` routes for a service: its own endpoints first, then versioned copies of them
/// (`/v2/orders`) when `--rate` asks for more series than the service naturally has.
pub fn routes_for(endpoints: &[(&'static str, &'static str)], count: usize) -> Vec<Route> {
    if endpoints.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|i| {
            let (method, path) = endpoints[i % endpoints.len()];
            let version = i / endpoints.len();
            let route = match version {
                0 => path.to_owned(),
                v => format!("/v{}/{}", v + 1, path.trim_start_matches('/')),
            };
            Route { method, route }
        })
        .collect()
}

/// A cumulative explicit-bucket histogram, as an SDK's default histogram aggregation.
#[derive(Debug, Clone, PartialEq)]
struct LatencyHistogram {
    bucket_counts: [u64; LATENCY_BOUNDS_MS.len() + 1],
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            bucket_counts: [0; LATENCY_BOUNDS_MS.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl LatencyHistogram {
    fn record(&mut self, latency_ms: f64) {
        // Bucket i holds (bounds[i-1], bounds[i]]; the last one everything above the last bound.
        let bucket = LATENCY_BOUNDS_MS.partition_point(|bound| *bound < latency_ms);
        self.bucket_counts[bucket] += 1;
        self.count += 1;
        self.sum += latency_ms;
        self.min = self.min.min(latency_ms);
        self.max = self.max.max(latency_ms);
    }
}

#[derive(Debug, Clone)]
struct RouteTotals {
    route: Route,
    /// Share of the service's traffic; busier endpoints first (Zipf-like).
    weight: f64,
    latency: LatencyHistogram,
    ok: u64,
    failed: u64,
}

/// Everything one simulated service has counted since the run started.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    identity: ServiceIdentity,
    /// Fixed for the whole run: consumers detect resets by a changed start time.
    start_time_unix_nano: u64,
    routes: Vec<RouteTotals>,
    cpu_percent: f64,
    memory_percent: f64,
}

impl ServiceMetrics {
    pub fn new(identity: ServiceIdentity, start_time_unix_nano: u64, routes: Vec<Route>) -> Self {
        let total: f64 = (1..=routes.len()).map(|rank| 1.0 / rank as f64).sum();
        let routes = routes
            .into_iter()
            .enumerate()
            .map(|(i, route)| RouteTotals {
                route,
                weight: 1.0 / ((i + 1) as f64 * total),
                latency: LatencyHistogram::default(),
                ok: 0,
                failed: 0,
            })
            .collect();
        ServiceMetrics {
            identity,
            start_time_unix_nano,
            routes,
            cpu_percent: 0.0,
            memory_percent: 0.0,
        }
    }

    /// Data points in each export.
    pub fn points_per_export(&self) -> usize {
        self.routes.len() * POINTS_PER_ROUTE + POINTS_PER_PROCESS
    }

    /// Simulates the requests served during `tick_secs` under `conditions` and adds them to the
    /// running totals. Returns how many requests were served.
    pub fn record_tick(
        &mut self,
        conditions: &Conditions,
        tick_secs: f64,
        rng: &mut impl Rng,
    ) -> u64 {
        let mut served = 0;
        for totals in &mut self.routes {
            let expected = conditions.throughput_rps * tick_secs.max(0.0) * totals.weight;
            let requests = stochastic_round(expected, rng);
            for _ in 0..requests {
                totals
                    .latency
                    .record(conditions.sample_latency_ms(rng).max(0.0));
                if rng.random_bool(conditions.error_rate.clamp(0.0, 1.0)) {
                    totals.failed += 1;
                } else {
                    totals.ok += 1;
                }
            }
            served += requests;
        }
        self.cpu_percent = conditions.cpu_percent;
        self.memory_percent = conditions.memory_percent;
        served
    }

    /// The running totals as one OTLP export taken at `time_unix_nano`.
    pub fn export(&self, time_unix_nano: u64) -> ExportMetricsServiceRequest {
        let start = self.start_time_unix_nano;
        let cumulative = AggregationTemporality::Cumulative as i32;
        let mut durations = Vec::with_capacity(self.routes.len());
        let mut requests = Vec::with_capacity(self.routes.len() * 2);
        let mut errors = Vec::with_capacity(self.routes.len());
        for totals in &self.routes {
            let attributes = route_attributes(&totals.route);
            let latency = &totals.latency;
            let seen_any = latency.count > 0;
            durations.push(HistogramDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: start,
                time_unix_nano,
                count: latency.count,
                sum: Some(latency.sum),
                bucket_counts: latency.bucket_counts.to_vec(),
                explicit_bounds: LATENCY_BOUNDS_MS.to_vec(),
                min: seen_any.then_some(latency.min),
                max: seen_any.then_some(latency.max),
                ..Default::default()
            });
            for (status_class, value) in [("2xx", totals.ok), ("5xx", totals.failed)] {
                let mut with_status = attributes.clone();
                with_status.push(string_attribute("http.response.status_class", status_class));
                requests.push(counter_point(with_status, start, time_unix_nano, value));
            }
            errors.push(counter_point(
                attributes,
                start,
                time_unix_nano,
                totals.failed,
            ));
        }

        let metrics = vec![
            Metric {
                name: REQUEST_DURATION.to_owned(),
                description: "Duration of HTTP server requests.".to_owned(),
                unit: "ms".to_owned(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: durations,
                    aggregation_temporality: cumulative,
                })),
                ..Default::default()
            },
            counter(REQUESTS, "HTTP server requests by status class.", requests),
            counter(ERRORS, "HTTP server requests that failed.", errors),
            gauge(
                CPU_UTILIZATION,
                "CPU in use by the process, as a fraction of one host.",
                self.cpu_percent,
                time_unix_nano,
            ),
            gauge(
                MEMORY_UTILIZATION,
                "Memory in use by the process, as a fraction of its limit.",
                self.memory_percent,
                time_unix_nano,
            ),
        ];
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.identity.resource()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

fn route_attributes(route: &Route) -> Vec<KeyValue> {
    vec![
        string_attribute("http.request.method", route.method),
        string_attribute("http.route", &route.route),
    ]
}

fn counter_point(attributes: Vec<KeyValue>, start: u64, time: u64, value: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsInt(
            i64::try_from(value).unwrap_or(i64::MAX),
        )),
        ..Default::default()
    }
}

fn counter(name: &str, description: &str, data_points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: "{request}".to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// A utilization gauge as OpenTelemetry's semantic conventions define it: a 0..1 ratio with unit
/// `1` (the alert rules and the dashboard scale it to percent).
fn gauge(name: &str, description: &str, percent: f64, time: u64) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: "1".to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(percent / 100.0)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

/// Rounds up with probability equal to the fraction, so the expected value is kept exactly.
fn stochastic_round(expected: f64, rng: &mut impl Rng) -> u64 {
    if !(expected.is_finite() && expected > 0.0) {
        return 0;
    }
    let whole = expected.floor();
    let extra = u64::from(rng.random_bool((expected - whole).clamp(0.0, 1.0)));
    (whole as u64).saturating_add(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::model::ServiceName;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn histogram_buckets_follow_otlp_upper_inclusive_bounds() {
        let mut histogram = LatencyHistogram::default();
        for latency in [0.3, 5.0, 5.01, 10_000.0, 20_000.0] {
            histogram.record(latency);
        }
        let mut expected = [0u64; 14];
        expected[0] = 2; // 0.3 and exactly 5
        expected[1] = 1; // 5.01
        expected[12] = 1; // exactly 10 000
        expected[13] = 1; // above the last bound
        assert_eq!(histogram.bucket_counts, expected);
        assert_eq!(histogram.count, 5);
        assert_eq!(histogram.min, 0.3);
        assert_eq!(histogram.max, 20_000.0);
    }

    #[test]
    fn routes_expand_with_versions_and_stay_distinct() {
        let routes = routes_for(ServiceName::Api.profile().routes, 20);
        assert_eq!(routes.len(), 20);
        assert_eq!(routes[0].route, "/orders/{id}");
        assert!(routes.iter().any(|r| r.route == "/v2/orders/{id}"));
        let mut keys: Vec<(&str, &str)> = routes
            .iter()
            .map(|r| (r.method, r.route.as_str()))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 20, "two routes would be the same series");
    }

    #[test]
    fn traffic_follows_throughput_and_error_rate() {
        let identity = ServiceIdentity::new(ServiceName::Api, 1);
        let routes = routes_for(ServiceName::Api.profile().routes, 8);
        let mut metrics = ServiceMetrics::new(identity, 1, routes);
        let mut conditions =
            Conditions::from_shapes(ServiceName::Api.profile(), 1.0, 0.0, 0.0, 0.0);
        conditions.error_rate = 0.1;
        let mut rng = StdRng::seed_from_u64(4);
        let served: u64 = (0..100)
            .map(|_| metrics.record_tick(&conditions, 1.0, &mut rng))
            .sum();
        // 500 rps for 100 s, within a few percent.
        assert!((48_000..=52_000).contains(&served), "served {served}");
        let failed: u64 = metrics.routes.iter().map(|r| r.failed).sum();
        let ratio = failed as f64 / served as f64;
        assert!((0.09..0.11).contains(&ratio), "error ratio {ratio}");
        assert!(metrics.routes[0].latency.count > metrics.routes[7].latency.count);
    }
}
