//! Active-series limits in local mode: the excess of a cardinality explosion is refused in the
//! partial success, the rest is stored and queryable, refusals show at `GET /api/limits`, and a
//! restart does not admit a fresh set of series.

mod support;

use flowscope_cli::local::{self, LocalHandle};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::Value;
use support::{args_with, get_json, http, now_nanos, WAIT};

const LIMITS: &[&str] = &[
    "--max-series-per-metric",
    "5",
    "--max-series-per-service",
    "8",
    "--series-active-window",
    "1h",
];

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// `service` with one gauge per (metric, user count): one series per user.
fn request(service: &str, metrics: &[(&str, std::ops::Range<u32>)]) -> Vec<u8> {
    let metrics = metrics
        .iter()
        .map(|(name, users)| Metric {
            name: name.to_string(),
            unit: "1".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: users
                    .clone()
                    .map(|u| NumberDataPoint {
                        attributes: vec![kv("user", &format!("u-{u}"))],
                        time_unix_nano: now_nanos(),
                        value: Some(number_data_point::Value::AsDouble(1.0)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post(handle: &LocalHandle, body: Vec<u8>) -> ExportMetricsServiceResponse {
    let (status, body) = http(
        handle.otlp_addr,
        "POST",
        "/v1/metrics",
        "application/x-protobuf",
        &body,
    )
    .await;
    assert_eq!(status, 200);
    ExportMetricsServiceResponse::decode(&body[..]).unwrap()
}

/// Polls `/api/services/{service}/metrics` until the metrics this test sent (not Flowscope's own
/// `flowscope.*` series, such as the health score local mode stores per service) have `series` series.
async fn wait_for_series(handle: &LocalHandle, service: &str, series: u64) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, metrics) = get_json(handle, &format!("/api/services/{service}/metrics")).await;
        let sent: u64 = metrics["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                !m["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("flowscope.")
            })
            .map(|m| m["series"].as_array().map_or(0, |s| s.len() as u64))
            .sum();
        if sent == series {
            return metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service} never listed {series} series of its own metrics; last: {metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cardinality_explosion_is_refused_beyond_the_limit_and_the_rest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(dir.path(), LIMITS)).await.unwrap();

    let response = post(
        &handle,
        request("api", &[("logins", 0..12), ("temperature", 0..1)]),
    )
    .await;
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 7);
    assert!(
        partial
            .error_message
            .contains("metric \"logins\" of service \"api\" is at its limit of 5 active series"),
        "{}",
        partial.error_message
    );
    // A neighbour is unaffected.
    let response = post(&handle, request("checkout", &[("logins", 0..5)])).await;
    assert_eq!(response.partial_success, None);

    // The admitted 5 + 1 are stored and queryable; the refused 7 are not.
    wait_for_series(&handle, "api", 6).await;
    wait_for_series(&handle, "checkout", 5).await;

    let (status, limits) = get_json(&handle, "/api/limits").await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["limits"]["max_series_per_metric"], 5);
    assert_eq!(limits["limits"]["max_series_per_service"], 8);
    assert_eq!(limits["limits"]["active_window_seconds"], 3600);
    let refusals = limits["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1, "{limits}");
    assert_eq!(refusals[0]["service"], "api");
    assert_eq!(refusals[0]["metric"], "logins");
    assert_eq!(refusals[0]["limit"], "per_metric");
    assert_eq!(refusals[0]["refused_points"], 7);
    assert_eq!(refusals[0]["examples"][0]["user"], "u-5");
    handle.shutdown().await.unwrap();

    // After a restart the registry's active series still count: no fresh 5 for `logins`.
    let handle = local::start(args_with(dir.path(), LIMITS)).await.unwrap();
    let response = post(&handle, request("api", &[("logins", 3..6)])).await;
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 1, "u-3, u-4 pass; u-5 is new");
    handle.shutdown().await.unwrap();
}
