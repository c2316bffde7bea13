//! Per-ingest-key rate limits (`--ingest-key-points-per-second`, `--ingest-key-requests-per-second`):
//! a key sending 10× its limit gets 429 with `Retry-After` and a reason naming the key, and nothing
//! of a refused request is kept; a well-behaved key beside it loses nothing.

mod support;

use std::net::SocketAddr;

use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint,
};
use serde_json::Value;
use support::*;

const LIMIT: u64 = 1_000;
const POINTS_PER_REQUEST: u64 = 1_000;

/// `points` gauge points of `service`/`depth`, a microsecond apart, ending 30 s ago.
fn request(service: &str, points: u64) -> Vec<u8> {
    let end = now_nanos() - 30_000_000_000;
    metrics_request(
        service,
        vec![Metric {
            name: "depth".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: (0..points)
                    .map(|i| NumberDataPoint {
                        time_unix_nano: end - i * 1_000,
                        value: Some(number_data_point::Value::AsDouble(1.0)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        }],
    )
}

struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: String,
}

/// POST /v1/metrics (protobuf) with `x-api-key: key`; a refusal's `google.rpc.Status` is protobuf,
/// whose message text is readable in the body as it is.
async fn post(addr: SocketAddr, key: &str, body: &[u8]) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nx-api-key: {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let retry_after = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().parse().unwrap())
    });
    Answer {
        status,
        retry_after,
        body: body.to_string(),
    }
}

/// Points of `service`/`depth` in the store (1m buckets around now).
async fn stored(handle: &flowscope_cli::local::LocalHandle, service: &str) -> u64 {
    let now = (now_nanos() / 1_000_000_000) as i64;
    let (status, body) = get_json(
        handle,
        &format!(
            "/api/services/{service}/metrics/depth?resolution=1m&from={}&to={}",
            now - 600,
            now + 600
        ),
    )
    .await;
    if status == 404 {
        return 0;
    }
    assert_eq!(status, 200, "{body}");
    body["buckets"].as_array().map_or(0, |b| {
        b.iter().map(|b| b["count"].as_u64().unwrap_or(0)).sum()
    })
}

async fn wait_stored(handle: &flowscope_cli::local::LocalHandle, service: &str, expected: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = stored(handle, service).await;
        if n == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service}: {n} points stored, expected {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_at_ten_times_its_limit_gets_429_and_the_well_behaved_key_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let handle = flowscope_cli::local::start(args_with(
        dir.path(),
        &[
            "--ingest-key-points-per-second",
            &LIMIT.to_string(),
            "--max-points-per-request",
            &POINTS_PER_REQUEST.to_string(),
        ],
    ))
    .await
    .unwrap();
    let otlp = handle.otlp_addr;

    // The misbehaving key: 20 requests of 1000 points as fast as it can (10× its limit when they
    // take up to 2 s), while the good key sends 5 × 100 points, well under the same limit.
    let started = std::time::Instant::now();
    let bad = tokio::spawn(async move {
        let body = request("noisy", POINTS_PER_REQUEST);
        let mut answers = Vec::new();
        for _ in 0..20 {
            answers.push(post(otlp, "noisy-key", &body).await);
        }
        answers
    });
    let good = tokio::spawn(async move {
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(post(otlp, "good-key", &request("quiet", 100)).await);
        }
        answers
    });
    let (bad, good) = (bad.await.unwrap(), good.await.unwrap());
    let elapsed = started.elapsed().as_secs_f64();

    for answer in &good {
        assert_eq!(
            answer.status, 200,
            "the good key is never refused: {}",
            answer.body
        );
    }
    let admitted = bad.iter().filter(|a| a.status == 200).count() as u64;
    let refused: Vec<&Answer> = bad.iter().filter(|a| a.status == 429).collect();
    assert_eq!(
        admitted + refused.len() as u64,
        20,
        "only 200 or 429 for the noisy key"
    );
    assert!(!refused.is_empty(), "the noisy key was refused");
    for answer in &refused {
        let retry_after = answer.retry_after.expect("429 carries Retry-After");
        assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
        assert!(
            answer
                .body
                .contains("over its limit of 1000 data points and spans per second"),
            "{}",
            answer.body
        );
        assert!(answer.body.contains("ingest key key-"), "{}", answer.body);
        assert!(
            !answer.body.contains("noisy-key"),
            "the key itself is never shown"
        );
    }
    // A bucket of one second's worth, refilled at the limit.
    let bound = LIMIT + (LIMIT as f64 * elapsed).ceil() as u64;
    assert!(
        admitted * POINTS_PER_REQUEST <= bound,
        "{admitted} requests admitted in {elapsed:.2} s, over {bound} points"
    );

    // Everything answered 200 is stored, nothing refused is.
    wait_stored(&handle, "quiet", 500).await;
    wait_stored(&handle, "noisy", admitted * POINTS_PER_REQUEST).await;
    let (_, pipeline): (u16, Value) = get_json(&handle, "/api/pipeline").await;
    assert_eq!(
        pipeline["ingest"]["refused_requests"],
        refused.len() as u64,
        "{pipeline}"
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_are_limited_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let handle = flowscope_cli::local::start(args_with(
        dir.path(),
        &["--ingest-key-requests-per-second", "3"],
    ))
    .await
    .unwrap();
    let body = request("chatty", 1);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(post(handle.otlp_addr, "chatty-key", &body).await);
    }
    let refused: Vec<_> = statuses.iter().filter(|a| a.status == 429).collect();
    assert!(!refused.is_empty());
    assert!(refused[0]
        .body
        .contains("over its limit of 3 requests per second"));
    // Another key is not affected.
    assert_eq!(post(handle.otlp_addr, "other-key", &body).await.status, 200);
    handle.shutdown().await.unwrap();
}
