//! Issue 15 item 6 in local mode: `GET /api/export` over the real HTTP server answers a chunked CSV
//! with its header row, and gzip when the client sends `Accept-Encoding: gzip`, decoding to the same
//! bytes.

mod support;

use std::io::Read;
use std::time::Duration;

use flowscope_cli::local;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_csv_and_gzip_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args(dir.path())).await.unwrap();
    while now_nanos() / 1_000_000_000 % 60 > 50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let minute = now_nanos() / 1_000_000_000 / 60 * 60;
    send_gauge(&handle, "svc-a", "queue.depth", 10.0).await;
    send_gauge(&handle, "svc-a", "queue.depth", 30.0).await;
    let path = format!(
        "/api/export?service=svc-a&metric=queue.depth&from={minute}&to={}",
        minute + 60
    );
    wait_until(Duration::from_secs(20), "both points in the export", || {
        let path = path.clone();
        let handle = &handle;
        async move {
            let r = http_full(handle.http_addr, "GET", &path, "text/plain", b"").await;
            let text = String::from_utf8_lossy(&r.body).to_string();
            let done = r.status == 200
                && text
                    .lines()
                    .nth(1)
                    .is_some_and(|l| l.contains(",2,40,10,30,20,"));
            (done, format!("{} {text}", r.status))
        }
    })
    .await;
    let csv = http_full(handle.http_addr, "GET", &path, "text/plain", b"")
        .await
        .body;
    let text = String::from_utf8(csv.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "time,service,metric,attributes,count,sum,min,max,avg,p50,p95,p99"
    );
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].starts_with(&format!("{minute},svc-a,queue.depth,")),
        "{text}"
    );

    // The helper writes the Content-Type line as given: a second header rides along.
    let gz = http_full(
        handle.http_addr,
        "GET",
        &path,
        "text/plain\r\nAccept-Encoding: gzip",
        b"",
    )
    .await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    assert!(gz
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/csv")));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, csv);
    handle.shutdown().await.unwrap();
}
