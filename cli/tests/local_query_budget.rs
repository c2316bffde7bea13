//! Issue 15: the sample budget of expression queries (`--query-max-samples`) in local mode. A query
//! over it is refused before it loads (422: `/api/query` with the selector's position, `/api/v1/*`
//! in Prometheus's format with `errorType: execution`), naming the limit and what to narrow; a query
//! under it answers, also while other clients' over-budget queries are being refused.

mod support;

use std::time::Duration;

use flowscope_cli::local;
use support::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_sample_budget_gets_422_and_others_keep_answering() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(dir.path(), &["--query-max-samples", "50"]))
        .await
        .unwrap();
    while now_nanos() / 1_000_000_000 % 60 > 50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let minute = now_nanos() / 1_000_000_000 / 60 * 60;
    for (service, value) in [("svc-a", 10.0), ("svc-b", 20.0), ("svc-c", 30.0)] {
        send_gauge(&handle, service, "queue.depth", value).await;
    }
    let t = minute + 60;
    let under = format!(
        "/api/query?expr={}&time={t}",
        encode("sum(queue_depth_percent)")
    );
    wait_until(Duration::from_secs(20), "the 3 gauges to arrive", || {
        let handle = &handle;
        let under = under.clone();
        async move {
            let (status, body) = get_json(handle, &under).await;
            let v = body["series"][0]["points"][0][1].as_f64();
            (status == 200 && v == Some(60.0), format!("{status} {body}"))
        }
    })
    .await;

    // 3 series × 61 evaluation times = 183 samples > 50: refused before a bucket is read.
    let expr = "sum(queue_depth_percent)";
    let over = format!(
        "/api/query?expr={}&from={}&to={t}&step=60",
        encode(expr),
        t - 3600
    );
    let (status, body) = get_json(&handle, &over).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("more than 50 samples")
            && message.contains("--query-max-samples")
            && message.contains("narrow the selectors"),
        "{body}"
    );
    assert_eq!(body["position"], 5, "the selector's position: {body}");

    let prom_over = format!(
        "/api/v1/query_range?query={}&start={}&end={t}&step=60",
        encode(expr),
        t - 3600
    );
    let (status, body) = get_json(&handle, &prom_over).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], "execution", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("--query-max-samples"),
        "{body}"
    );

    // Other clients: over-budget queries and one under the budget at the same time; the one under
    // it answers with its numbers every time.
    for _ in 0..5 {
        let (a, b, c, d) = tokio::join!(
            get_json(&handle, &over),
            get_json(&handle, &prom_over),
            get_json(&handle, &under),
            get_json(&handle, &over),
        );
        assert_eq!((a.0, b.0, d.0), (422, 422, 422));
        assert_eq!(c.0, 200, "{}", c.1);
        assert_eq!(c.1["series"][0]["points"][0][1].as_f64(), Some(60.0));
    }
    // Narrowed as the message says (one service, a shorter range), the range query answers.
    let narrowed = format!(
        "/api/query?expr={}&from={}&to={t}&step=60",
        encode("sum(queue_depth_percent{job=\"svc-a\"})"),
        t - 1200
    );
    let (status, body) = get_json(&handle, &narrowed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"][0]["points"][0][1].as_f64(), Some(10.0));

    handle.shutdown().await.unwrap();
}
