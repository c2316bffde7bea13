//! Local mode serves daily buckets: `resolution=1d` on the query API returns UTC days, each the sum
//! of its hours (count, sum, min, max).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use flowscope_cli::local;
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(20);
const DAY: u64 = 86_400;

fn buckets(history: &Value) -> Vec<Value> {
    history["buckets"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_api_serves_daily_buckets_equal_to_the_sum_of_their_hours() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    for value in [10.0, 30.0, 20.0] {
        send_gauge(&handle, "daily", "queue.depth", value).await;
    }
    let today = now_nanos() / 1_000_000_000 / DAY * DAY;
    let (from, to) = (today - DAY, today + 2 * DAY);
    let path = |resolution: &str| {
        format!(
            "/api/services/daily/metrics/queue.depth?resolution={resolution}&from={from}&to={to}"
        )
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let days = loop {
        let (status, history) = get_json(&handle, &path("1d")).await;
        let days = buckets(&history);
        let count: u64 = days.iter().filter_map(|b| b["count"].as_u64()).sum();
        if status == 200 && count == 3 {
            assert_eq!(history["resolution"], "1d", "{history}");
            break days;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the 1d buckets did not reach 3 points: {status} {history}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (status, hours) = get_json(&handle, &path("1h")).await;
    assert_eq!(status, 200, "{hours}");
    // Each day: count, sum, min and max of its hours.
    let mut expected: BTreeMap<u64, (u64, f64, f64, f64)> = BTreeMap::new();
    for hour in buckets(&hours) {
        let start = hour["start"].as_u64().unwrap();
        let entry =
            expected
                .entry(start / DAY * DAY)
                .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        entry.0 += hour["count"].as_u64().unwrap();
        entry.1 += hour["sum"].as_f64().unwrap();
        entry.2 = entry.2.min(hour["min"].as_f64().unwrap());
        entry.3 = entry.3.max(hour["max"].as_f64().unwrap());
    }
    let got: BTreeMap<u64, (u64, f64, f64, f64)> = days
        .iter()
        .map(|d| {
            (
                d["start"].as_u64().unwrap(),
                (
                    d["count"].as_u64().unwrap(),
                    d["sum"].as_f64().unwrap(),
                    d["min"].as_f64().unwrap(),
                    d["max"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, expected, "days {days:?}");
    assert_eq!(got.values().map(|d| d.1).sum::<f64>(), 60.0);
    handle.shutdown().await.unwrap();
}
