//! Issue 15 item 2: Debian's `promtool` (package `prometheus`) reads local mode through the
//! Prometheus-compatible endpoints (`/api/v1/query`, `query_range`, `series`, `label/…/values`) and
//! gets the same numbers as Flowscope's own `/api/query`; errors come back in each API's format with
//! the position in the expression.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use flowscope_cli::local;
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// `promtool query -o json <args…>`; the test fails (never skips) when promtool is missing.
async fn promtool(args: Vec<String>) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("promtool")
            .arg("query")
            .args(["-o", "json"])
            .args(&args)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| {
        panic!("promtool is required (Debian package `prometheus`, installed by scripts/setup.sh): {e}")
    });
    assert!(
        out.status.success(),
        "promtool failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "promtool printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `promtool query <args…>` expected to fail: its stderr.
async fn promtool_error(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("promtool").arg("query").args(&args).output()
    })
    .await
    .unwrap()
    .expect("promtool is required (Debian package `prometheus`)");
    assert!(!out.status.success(), "promtool should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Our API's instant answer as `{labels} → value`.
async fn ours_instant(handle: &local::LocalHandle, expr: &str, t: u64) -> BTreeMap<String, f64> {
    let (status, body) = get_json(
        handle,
        &format!("/api/query?expr={}&time={t}", encode(expr)),
    )
    .await;
    assert_eq!(status, 200, "{expr}: {body}");
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let point = s["points"].as_array()?.first()?;
            Some((s["labels"].to_string(), point[1].as_f64()?))
        })
        .collect()
}

/// promtool's instant vector as `{labels} → value`.
fn prom_vector(v: &Value) -> BTreeMap<String, f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"].to_string(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Equal label sets and values (within 1e-12 relative: serde_json's default float parsing may be
/// one unit in the last place off).
fn same(theirs: &BTreeMap<String, f64>, ours: &BTreeMap<String, f64>, what: &str) {
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (k, v) in ours {
        let w = theirs[k];
        assert!(
            (v - w).abs() <= 1e-12 * v.abs().max(1.0),
            "{what}: {k} {w} vs {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_reads_the_same_numbers_as_the_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    let url = format!("http://{}", handle.http_addr);
    // All points in one minute: start right after a minute boundary if the current one is ending.
    while now_nanos() / 1_000_000_000 % 60 > 50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let minute = now_nanos() / 1_000_000_000 / 60 * 60;
    for (service, value) in [("svc-a", 10.0), ("svc-a", 30.0), ("svc-b", 50.0)] {
        send_gauge(&handle, service, "queue.depth", value).await;
    }
    // The minute's bucket is the sample of every time in the next minute.
    let t = minute + 60;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = ours_instant(&handle, "sum(count_over_time(queue_depth_percent[1m]))", t).await;
        if seen.values().next() == Some(&3.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the 3 points did not arrive: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Hand-computed: svc-a's sample is the mean of its bucket (20), svc-b's is 50.
    let by_job = ours_instant(&handle, "sum by (job) (queue_depth_percent)", t).await;
    assert_eq!(
        by_job.values().copied().collect::<Vec<_>>(),
        vec![20.0, 50.0],
        "{by_job:?}"
    );

    for expr in [
        "queue_depth_percent",
        "sum by (job) (queue_depth_percent)",
        "max(queue_depth_percent{job=~\"svc-.*\"})",
        "quantile(0.5, queue_depth_percent)",
        "count_over_time(queue_depth_percent[5m])",
        "queue_depth_percent > 25",
        "queue_depth_percent / on(job) (queue_depth_percent * 2)",
    ] {
        let ours = ours_instant(&handle, expr, t).await;
        assert!(!ours.is_empty(), "{expr}");
        let theirs = promtool(vec![
            "instant".into(),
            format!("--time={t}"),
            url.clone(),
            expr.into(),
        ])
        .await;
        same(&prom_vector(&theirs), &ours, expr);
    }

    // Range: the same points at every step.
    let (from, to) = (t - 300, t + 120);
    let expr = "sum(queue_depth_percent)";
    let (status, body) = get_json(
        &handle,
        &format!(
            "/api/query?expr={}&from={from}&to={to}&step=60",
            encode(expr)
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ours: Vec<(u64, f64)> = body["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    assert_eq!(ours, vec![(t, 70.0)], "one minute holds data: {body}");
    let theirs = promtool(vec![
        "range".into(),
        format!("--start={from}"),
        format!("--end={to}"),
        "--step=1m".into(),
        url.clone(),
        expr.into(),
    ])
    .await;
    let theirs: Vec<(u64, f64)> = theirs[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_f64().unwrap() as u64,
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(theirs, ours);

    // Series and label values: what the catalog holds, named per the compatibility spec.
    let series = promtool(vec![
        "series".into(),
        "--match=queue_depth_percent".into(),
        url.clone(),
    ])
    .await;
    let mut jobs: Vec<String> = series
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["__name__"], "queue_depth_percent", "{s}");
            s["job"].as_str().unwrap().to_string()
        })
        .collect();
    jobs.sort();
    assert_eq!(jobs, vec!["svc-a", "svc-b"]);
    let values = promtool(vec!["labels".into(), url.clone(), "job".into()]).await;
    let (_, services) = get_json(&handle, "/api/services").await;
    let mut expected: Vec<String> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["series"].as_u64() > Some(0))
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    let values: Vec<String> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(values, expected);
    let names = promtool(vec!["labels".into(), url.clone(), "__name__".into()]).await;
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "queue_depth_percent"),
        "{names}"
    );

    // Unsupported PromQL: Prometheus's error format, with the position.
    let err = promtool_error(vec![
        "instant".into(),
        url.clone(),
        "topk(1, queue_depth_percent)".into(),
    ])
    .await;
    assert!(
        err.contains("not supported") && err.contains("position 1"),
        "{err}"
    );
    let (status, body) = get_json(&handle, "/api/v1/query?query=rate(x%5B5m%5D").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    // Ours: 400 with the position as a field.
    let (status, body) = get_json(
        &handle,
        &format!("/api/query?expr={}", encode("sum(rate(x[5m])")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["position"], 16, "{body}");

    handle.shutdown().await.unwrap();
}
