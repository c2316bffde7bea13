//! The five simulated services together: one call advances simulated time by a tick and returns
//! the OTLP requests each service would export for it.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::metrics::{routes_for, ServiceMetrics};
use super::model::{Conditions, ServiceBehaviour, ServiceName, SpikePlan};
use super::otlp::ServiceIdentity;
use super::plan::TickPlan;
use super::traces::{export_request, TraceGenerator};

struct SimulatedService {
    identity: ServiceIdentity,
    behaviour: ServiceBehaviour,
    metrics: ServiceMetrics,
    /// Draws request counts, latencies and failures; separate from the shapes so traffic volume
    /// never changes when a spike happens.
    traffic: StdRng,
}

/// What one service exports for one tick.
#[derive(Debug, Clone)]
pub struct ServiceExport {
    pub service: ServiceName,
    pub metrics: ExportMetricsServiceRequest,
    pub metric_points: u64,
    /// `None` when the service recorded no span this tick.
    pub traces: Option<ExportTraceServiceRequest>,
    pub spans: u64,
}

pub struct Fleet {
    services: Vec<SimulatedService>,
    traces: TraceGenerator,
    traces_per_second: f64,
    tick_secs: f64,
    ticks: u64,
    /// Every service's conditions in the last tick (the profile windows read them).
    last_conditions: Option<[Conditions; 5]>,
}

impl Fleet {
    /// `start_time_unix_nano` is the run's start: the start time of every cumulative series.
    /// `run_id` makes instance ids unique per run.
    pub fn new(
        seed: u64,
        plan: &TickPlan,
        spikes: &SpikePlan,
        traces_per_second: f64,
        start_time_unix_nano: u64,
        run_id: u64,
    ) -> Self {
        let services = ServiceName::ALL
            .iter()
            .map(|&name| {
                let identity = ServiceIdentity::new(name, run_id);
                let routes = routes_for(name.profile().routes, plan.routes_per_service);
                SimulatedService {
                    metrics: ServiceMetrics::new(identity.clone(), start_time_unix_nano, routes),
                    identity,
                    behaviour: ServiceBehaviour::new(name, seed, spikes),
                    traffic: StdRng::seed_from_u64(
                        seed ^ 0x5452_4146 ^ ((name.index() as u64) << 32),
                    ),
                }
            })
            .collect();
        Fleet {
            services,
            traces: TraceGenerator::new(seed),
            traces_per_second,
            tick_secs: plan.tick.as_secs_f64(),
            ticks: 0,
            last_conditions: None,
        }
    }

    /// Every service's conditions in the last tick (`None` before the first).
    pub fn last_conditions(&self) -> Option<&[Conditions; 5]> {
        self.last_conditions.as_ref()
    }

    /// Seconds of simulated time per tick.
    pub fn tick_secs(&self) -> f64 {
        self.tick_secs
    }

    /// Simulates the next tick and stamps its exports with `now_unix_nano`.
    pub fn tick(&mut self, now_unix_nano: u64) -> Vec<ServiceExport> {
        self.ticks += 1;
        let t_secs = self.ticks as f64 * self.tick_secs;
        let conditions: [Conditions; 5] = ServiceName::ALL
            .map(|name| self.services[name.index()].behaviour.conditions_at(t_secs));
        self.last_conditions = Some(conditions);

        let mut spans: [Vec<Span>; 5] = Default::default();
        let traces = self
            .traces
            .traces_in_tick(self.traces_per_second, self.tick_secs);
        let tick_nanos = (self.tick_secs * 1e9) as u64;
        for i in 0..traces {
            // Spread trace ends over the tick that just passed, oldest first.
            let age = tick_nanos.saturating_sub(tick_nanos * (i + 1) / traces.max(1));
            for (service, span) in self
                .traces
                .trace(&conditions, now_unix_nano.saturating_sub(age))
                .spans
            {
                spans[service.index()].push(span);
            }
        }

        self.services
            .iter_mut()
            .zip(spans)
            .map(|(simulated, spans)| {
                let service = simulated.identity.service;
                simulated.metrics.record_tick(
                    &conditions[service.index()],
                    self.tick_secs,
                    &mut simulated.traffic,
                );
                let span_count = spans.len() as u64;
                ServiceExport {
                    service,
                    metrics: simulated.metrics.export(now_unix_nano),
                    metric_points: simulated.metrics.points_per_export() as u64,
                    traces: (!spans.is_empty()).then(|| export_request(&simulated.identity, spans)),
                    spans: span_count,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, AggregationTemporality, Metric,
    };
    use prost::Message;

    use super::*;
    use crate::loadgen::metrics::{
        CPU_UTILIZATION, ERRORS, LATENCY_BOUNDS_MS, MEMORY_UTILIZATION, REQUESTS, REQUEST_DURATION,
    };
    use crate::loadgen::otlp::find_string;

    const START: u64 = 1_700_000_000_000_000_000;

    fn fleet(seed: u64, rate: u64) -> (Fleet, TickPlan) {
        let plan = TickPlan::new(rate, Duration::from_secs(1));
        (
            Fleet::new(seed, &plan, &SpikePlan::default(), 20.0, START, 99),
            plan,
        )
    }

    /// Decodes a request the way a receiver would: from its protobuf bytes.
    fn wire(request: &ExportMetricsServiceRequest) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest::decode(request.encode_to_vec().as_slice()).unwrap()
    }

    fn series_key(service: &str, metric: &str, attributes: &[KeyValue]) -> String {
        let mut parts: Vec<String> = attributes
            .iter()
            .map(|kv| format!("{}={:?}", kv.key, kv.value))
            .collect();
        parts.sort();
        format!("{service}/{metric}/{}", parts.join(","))
    }

    fn int_value(value: &Option<number_data_point::Value>) -> i64 {
        match value {
            Some(number_data_point::Value::AsInt(v)) => *v,
            other => panic!("counter value should be an int, got {other:?}"),
        }
    }

    #[test]
    fn each_tick_sends_one_metrics_request_per_service_with_the_planned_points() {
        let (mut fleet, plan) = fleet(1, 2000);
        let exports = fleet.tick(START + 1_000_000_000);
        let services: Vec<ServiceName> = exports.iter().map(|e| e.service).collect();
        assert_eq!(services, ServiceName::ALL);
        for export in &exports {
            let request = wire(&export.metrics);
            assert_eq!(request.resource_metrics.len(), 1);
            let resource_metrics = &request.resource_metrics[0];
            let attributes = &resource_metrics.resource.as_ref().unwrap().attributes;
            assert_eq!(
                find_string(attributes, "service.name"),
                Some(export.service.as_str())
            );
            assert!(find_string(attributes, "service.instance.id").is_some());
            assert!(find_string(attributes, "host.name").is_some());
            let scope_metrics = &resource_metrics.scope_metrics[0];
            assert_eq!(
                scope_metrics.scope.as_ref().unwrap().name,
                "flowscope-loadgen"
            );
            let points: usize = scope_metrics.metrics.iter().map(point_count).sum();
            assert_eq!(points as u64, export.metric_points);
            assert_eq!(points, plan.points_per_request());
        }
    }

    fn point_count(metric: &Metric) -> usize {
        match &metric.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            other => panic!("unexpected metric data {other:?}"),
        }
    }

    #[test]
    fn metrics_have_the_names_kinds_units_and_temporality_the_dashboard_expects() {
        let (mut fleet, _) = fleet(2, 200);
        let cumulative = AggregationTemporality::Cumulative as i32;
        for export in fleet.tick(START + 1) {
            let request = wire(&export.metrics);
            let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
            let by_name: HashMap<&str, &Metric> =
                metrics.iter().map(|m| (m.name.as_str(), m)).collect();
            assert_eq!(by_name.len(), 5);

            let duration = by_name[REQUEST_DURATION];
            assert_eq!(duration.unit, "ms");
            let Some(metric::Data::Histogram(histogram)) = &duration.data else {
                panic!("{REQUEST_DURATION} must be a histogram");
            };
            assert_eq!(histogram.aggregation_temporality, cumulative);
            for point in &histogram.data_points {
                assert_eq!(point.explicit_bounds, LATENCY_BOUNDS_MS);
                assert_eq!(point.bucket_counts.len(), LATENCY_BOUNDS_MS.len() + 1);
                assert_eq!(point.bucket_counts.iter().sum::<u64>(), point.count);
                assert!(find_string(&point.attributes, "http.route").is_some());
            }

            for name in [REQUESTS, ERRORS] {
                let metric = by_name[name];
                assert_eq!(metric.unit, "{request}");
                let Some(metric::Data::Sum(sum)) = &metric.data else {
                    panic!("{name} must be a sum");
                };
                assert!(sum.is_monotonic);
                assert_eq!(sum.aggregation_temporality, cumulative);
            }
            let Some(metric::Data::Sum(requests)) = &by_name[REQUESTS].data else {
                unreachable!()
            };
            let classes: Vec<&str> = requests
                .data_points
                .iter()
                .filter_map(|p| find_string(&p.attributes, "http.response.status_class"))
                .collect();
            assert_eq!(classes.len(), requests.data_points.len());
            assert!(classes.contains(&"2xx") && classes.contains(&"5xx"));

            for name in [CPU_UTILIZATION, MEMORY_UTILIZATION] {
                let metric = by_name[name];
                assert_eq!(
                    metric.unit, "1",
                    "utilization is a 0..1 ratio (semantic conventions)"
                );
                let Some(metric::Data::Gauge(gauge)) = &metric.data else {
                    panic!("{name} must be a gauge");
                };
                assert_eq!(gauge.data_points.len(), 1);
                match gauge.data_points[0].value {
                    Some(number_data_point::Value::AsDouble(v)) => {
                        assert!((0.0..=1.0).contains(&v), "{name} = {v}")
                    }
                    ref other => panic!("{name} value {other:?}"),
                }
            }
        }
    }

    #[test]
    fn cumulative_values_never_decrease_and_keep_one_start_time() {
        let (mut fleet, plan) = fleet(3, 400);
        let mut last: HashMap<String, (u64, f64)> = HashMap::new();
        let mut grew = 0;
        for tick in 1..=60u64 {
            let now = START + tick * plan.tick.as_nanos() as u64;
            for export in fleet.tick(now) {
                let request = wire(&export.metrics);
                let service = export.service.as_str();
                for metric in &request.resource_metrics[0].scope_metrics[0].metrics {
                    let observations: Vec<(String, u64, u64, f64)> = match &metric.data {
                        Some(metric::Data::Sum(sum)) => sum
                            .data_points
                            .iter()
                            .map(|p| {
                                let key = series_key(service, &metric.name, &p.attributes);
                                let value = int_value(&p.value);
                                assert!(value >= 0);
                                (key, p.start_time_unix_nano, value as u64, 0.0)
                            })
                            .collect(),
                        Some(metric::Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| {
                                let key = series_key(service, &metric.name, &p.attributes);
                                assert_eq!(p.time_unix_nano, now);
                                (key, p.start_time_unix_nano, p.count, p.sum.unwrap())
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    for (key, start, count, sum) in observations {
                        assert_eq!(start, START, "{key}: start time is fixed per run");
                        if let Some((previous_count, previous_sum)) = last.get(&key) {
                            assert!(count >= *previous_count, "{key} went down");
                            assert!(sum >= *previous_sum, "{key} sum went down");
                            if count > *previous_count {
                                grew += 1;
                            }
                        }
                        last.insert(key, (count, sum));
                    }
                }
            }
        }
        assert!(grew > 1000, "counters barely moved ({grew} increases)");
    }

    #[test]
    fn the_same_seed_replays_the_same_requests() {
        let (mut a, _) = fleet(4, 300);
        let (mut b, _) = fleet(4, 300);
        let (mut c, _) = fleet(5, 300);
        let mut differs = false;
        for tick in 1..=10 {
            let (ea, eb, ec) = (
                a.tick(START + tick),
                b.tick(START + tick),
                c.tick(START + tick),
            );
            for ((x, y), z) in ea.iter().zip(&eb).zip(&ec) {
                assert_eq!(x.metrics, y.metrics);
                assert_eq!(x.traces, y.traces);
                differs |= x.metrics != z.metrics;
            }
        }
        assert!(differs, "a different seed should give different traffic");
    }

    #[test]
    fn traces_are_sent_by_the_services_that_recorded_them() {
        let (mut fleet, plan) = fleet(6, 200);
        let mut spans_per_service = [0u64; 5];
        let mut traces = 0;
        for tick in 1..=20 {
            for export in fleet.tick(START + tick * plan.tick.as_nanos() as u64) {
                let Some(request) = &export.traces else {
                    continue;
                };
                let decoded =
                    ExportTraceServiceRequest::decode(request.encode_to_vec().as_slice()).unwrap();
                let resource_spans = &decoded.resource_spans[0];
                let attributes = &resource_spans.resource.as_ref().unwrap().attributes;
                assert_eq!(
                    find_string(attributes, "service.name"),
                    Some(export.service.as_str())
                );
                let spans = &resource_spans.scope_spans[0].spans;
                assert_eq!(spans.len() as u64, export.spans);
                spans_per_service[export.service.index()] += export.spans;
                if export.service == ServiceName::Api {
                    traces += spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
                }
            }
        }
        // 20 traces/s for about 20 ticks of ~1 s.
        let expected = 20.0 * 20.0 * plan.tick.as_secs_f64();
        assert!(
            (traces as f64 - expected).abs() <= 2.0,
            "{traces} traces, expected {expected}"
        );
        assert!(
            spans_per_service.iter().all(|n| *n > 0),
            "{spans_per_service:?}"
        );
    }
}
