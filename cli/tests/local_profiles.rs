//! Continuous profiling in local mode (issue 14): folded and pprof pushes on the OTLP port's
//! Pyroscope-compatible `POST /ingest` (raw and multipart, as `@pyroscope/nodejs` sends), read back
//! as flame graph, top functions, diff, timeline, pprof download and snapshot; a repeated push
//! changes nothing; the live `profile` event and the `flowscope.profile.cpu` series; the limits.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use flowscope_cli::local::{self, LocalHandle};
use flowscope_core::profiles::pprof;
use flowscope_core::profiles::ProfileType;
use futures::SinkExt;
use serde_json::{json, Value};
use support::{args_with, connect, get_json, http, http_full, next_json};
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(20);
/// A pprof written by `@datadog/pprof` (see shared/tests/fixtures/profiles/): wall 936000000 ns,
/// 468 samples, `hashLoop` 896000000 ns of self time.
const NODE_WALL: &[u8] = include_bytes!("../../shared/tests/fixtures/profiles/node-wall.pb.gz");

async fn push(handle: &LocalHandle, query: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let (status, body) = http(
        handle.otlp_addr,
        "POST",
        &format!("/ingest?{query}"),
        content_type,
        body,
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn get_ok(handle: &LocalHandle, path: &str) -> Value {
    let (status, body) = get_json(handle, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn multipart(profile: &[u8]) -> (String, Vec<u8>) {
    let boundary = "flowscope-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(profile);
    body.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"sample_type_config\"\r\n\r\n{{}}\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Every listed node lies within its parent's span on the level above.
fn assert_nested(levels: &[Value]) {
    for depth in 1..levels.len() {
        let parents: Vec<(u64, u64)> = levels[depth - 1]
            .as_array()
            .unwrap()
            .chunks(4)
            .map(|g| (g[0].as_u64().unwrap(), g[1].as_u64().unwrap()))
            .collect();
        for g in levels[depth].as_array().unwrap().chunks(4) {
            let (start, total) = (g[0].as_u64().unwrap(), g[1].as_u64().unwrap());
            assert!(
                parents
                    .iter()
                    .any(|(ps, pt)| start >= *ps && start + total <= ps + pt),
                "node at depth {depth} [{start}, +{total}) has no parent around it"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_and_pprof_pushes_merge_once_per_minute_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(dir.path(), &["--max-profile-bytes", "65536"]))
        .await
        .unwrap();
    let mut socket = connect(&handle).await;
    socket
        .send(Message::text(
            json!({"type": "subscribe", "services": ["shop"]}).to_string(),
        ))
        .await
        .unwrap();
    let _ = next_json(&mut socket).await;

    let now = local::unix_now();
    let base = now - now.rem_euclid(60) - 180; // three minutes ago, a minute start
    let incident = base + 60;
    // Minute `base`: mostly `render`. 100 Hz: each sample is 10 ms.
    let folded_base = b"main;handle;render 80\nmain;handle;db;query 20\n";
    let folded_incident =
        b"main;handle;render 80\nmain;handle;db;query 120\nmain;handle;db;query;lock 30\n";
    let q = |from: i64| {
        format!("name=shop.cpu%7Benv%3Dtest%7D&from={from}&until={}&format=folded&sampleRate=100&spyName=pyspy", from + 10)
    };
    let (status, body) = push(&handle, &q(base), "text/plain", folded_base).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = push(&handle, &q(incident), "text/plain", folded_incident).await;
    assert_eq!(status, 200);
    // The same push again (a client retry): merged once.
    let (status, _) = push(&handle, &q(base), "text/plain", folded_base).await;
    assert_eq!(status, 200);

    // The live event for the service's minute.
    let deadline = Instant::now() + DEADLINE;
    let event = loop {
        assert!(Instant::now() < deadline, "no profile event");
        let message = next_json(&mut socket).await;
        if message["type"] == "profile" {
            break message;
        }
    };
    assert_eq!(event["service"], "shop");
    assert_eq!(event["profile_type"], "cpu");
    assert!(
        event["minute"] == json!(base * 1000) || event["minute"] == json!(incident * 1000),
        "{event}"
    );

    let range = format!("service=shop&type=cpu&from={base}&to={}", incident + 60);
    let timeline = get_ok(&handle, &format!("/api/profiles/timeline?{range}")).await;
    assert_eq!(timeline["unit"], "nanoseconds");
    assert_eq!(
        timeline["points"],
        json!([
            {"t": base * 1000, "total": 100 * 10_000_000u64},
            {"t": incident * 1000, "total": 230 * 10_000_000u64},
        ]),
        "a repeated push leaves the minute's total unchanged"
    );
    // Milliseconds work too.
    let ms = get_ok(
        &handle,
        &format!(
            "/api/profiles/timeline?service=shop&type=cpu&from={}&to={}",
            base * 1000,
            (incident + 60) * 1000
        ),
    )
    .await;
    assert_eq!(ms["points"], timeline["points"]);

    // The range's flame graph is the sum of its minutes.
    let flame = get_ok(&handle, &format!("/api/profiles/flamegraph?{range}")).await;
    assert_eq!(flame["total"], 330 * 10_000_000u64);
    assert_eq!(flame["names"][0], "total");
    let levels = flame["levels"].as_array().unwrap();
    assert_eq!(levels[0], json!([0, 3_300_000_000u64, 0, 0]));
    assert_nested(levels);
    let names = flame["names"].as_array().unwrap();
    let query = levels[4]
        .as_array()
        .unwrap()
        .chunks(4)
        .find(|g| names[g[3].as_u64().unwrap() as usize] == "query")
        .expect("query at depth 4");
    assert_eq!(
        (query[1].as_u64(), query[2].as_u64()),
        (Some(1_700_000_000), Some(1_400_000_000))
    );
    // A label filter that matches nothing.
    let none = get_ok(
        &handle,
        &format!("/api/profiles/flamegraph?{range}&labels=env=prod"),
    )
    .await;
    assert_eq!(none["total"], 0);
    // Pruned: the listed nodes keep exact values.
    let pruned = get_ok(
        &handle,
        &format!("/api/profiles/flamegraph?{range}&max_nodes=3"),
    )
    .await;
    assert_eq!(pruned["levels"].as_array().unwrap().len(), 3);
    assert_eq!(pruned["total"], flame["total"]);

    let top = get_ok(&handle, &format!("/api/profiles/top?{range}&limit=2")).await;
    assert_eq!(
        top["functions"],
        json!([
            {"name": "render", "self": 1_600_000_000u64, "total": 1_600_000_000u64},
            {"name": "query", "self": 1_400_000_000u64, "total": 1_700_000_000u64},
        ])
    );

    // The incident against the minute before: `query` grew, `lock` is new.
    let diff = get_ok(&handle, &format!("/api/profiles/diff?service=shop&type=cpu&from={incident}&to={}&base_from={base}&base_to={incident}", incident + 60)).await;
    assert_eq!(
        (diff["total"].as_u64(), diff["base_total"].as_u64()),
        (Some(2_300_000_000), Some(1_000_000_000))
    );
    let dnames = diff["names"].as_array().unwrap();
    let group = |depth: usize, name: &str| -> Vec<u64> {
        diff["levels"][depth]
            .as_array()
            .unwrap()
            .chunks(7)
            .find(|g| dnames[g[2].as_u64().unwrap() as usize] == name)
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        group(4, "query")[3..],
        [1_500_000_000, 1_200_000_000, 200_000_000, 200_000_000]
    );
    assert_eq!(group(5, "lock")[3..], [300_000_000, 300_000_000, 0, 0]);
    assert_eq!(group(0, "total")[1], 3_300_000_000);

    // The pprof download decodes with the same total and stacks.
    let download = http_full(
        handle.http_addr,
        "GET",
        &format!("/api/profiles/pprof?{range}"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert!(download
        .header("content-disposition")
        .unwrap()
        .contains(&format!(
            "shop-cpu-{}-{}.pb.gz",
            base * 1000,
            (incident + 60) * 1000
        )));
    let decoded = pprof::decode(&download.body, 1 << 24).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].profile_type, ProfileType::Cpu);
    assert_eq!(decoded[0].tree.total(), 3_300_000_000);

    // Snapshot: gzip JSON of timeline and flame graph; posting it back validates it.
    let snap = http_full(
        handle.http_addr,
        "GET",
        &format!("/api/profiles/snapshot?{range}"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(snap.status, 200);
    assert_eq!(
        snap.header("content-type").as_deref(),
        Some("application/gzip")
    );
    assert!(snap
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    let mut json_text = String::new();
    flate2::read::GzDecoder::new(&snap.body[..])
        .read_to_string(&mut json_text)
        .unwrap();
    let snapshot: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(snapshot["version"], 1);
    assert_eq!(snapshot["timeline"], timeline["points"]);
    assert_eq!(snapshot["flamegraph"], flame);
    let (status, echoed) = http(
        handle.http_addr,
        "POST",
        "/api/profiles/snapshot",
        "application/gzip",
        &snap.body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&echoed).unwrap(), snapshot);
    let (status, refused) = http(
        handle.http_addr,
        "POST",
        "/api/profiles/snapshot",
        "application/json",
        b"{\"version\":2}",
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&refused));

    // A pprof from a real profiler, as multipart (what @pyroscope/nodejs sends) and raw.
    let (content_type, body) = multipart(NODE_WALL);
    let (status, body) = push(
        &handle,
        &format!(
            "name=shop.wall&from={base}&until={}&spyName=nodespy",
            base + 10
        ),
        &content_type,
        &body,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = push(
        &handle,
        &format!("name=shop.wall&from={incident}&format=pprof"),
        "application/octet-stream",
        NODE_WALL,
    )
    .await;
    assert_eq!(status, 200);
    let types = get_ok(&handle, "/api/profiles/types?service=shop").await;
    assert_eq!(
        types["types"],
        json!([
            {"type": "cpu", "unit": "nanoseconds"},
            {"type": "wall", "unit": "nanoseconds"},
            {"type": "samples", "unit": "count"},
        ])
    );
    let services = get_ok(&handle, "/api/profiles/services").await;
    assert_eq!(
        services["services"],
        json!([{"service": "shop", "types": ["cpu", "wall", "samples"]}])
    );
    let wall_range = format!("service=shop&type=wall&from={base}&to={}", incident + 60);
    let top = get_ok(&handle, &format!("/api/profiles/top?{wall_range}")).await;
    assert_eq!(top["total"], 2 * 936_000_000u64);
    assert_eq!(
        top["functions"][0]["name"], "hashLoop",
        "the Node program spends its time in hashLoop"
    );
    assert_eq!(top["functions"][0]["self"], 2 * 896_000_000u64);
    let download = http_full(
        handle.http_addr,
        "GET",
        &format!("/api/profiles/pprof?{wall_range}"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(
        pprof::decode(&download.body, 1 << 24).unwrap()[0]
            .tree
            .total(),
        2 * 936_000_000
    );

    // The CPU totals as an ordinary series: CPU seconds per minute bucket (rate = s/s).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, metrics) = get_json(&handle, "/api/services/shop/metrics").await;
        let names: Vec<&str> = metrics["metrics"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["name"].as_str()).collect())
            .unwrap_or_default();
        if names.contains(&"flowscope.profile.cpu") && names.contains(&"flowscope.profile.wall") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no flowscope.profile.* series: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, history) = get_json(
            &handle,
            &format!(
                "/api/services/shop/metrics/flowscope.profile.cpu?from={base}&to={}",
                incident + 60
            ),
        )
        .await;
        let sums: Vec<f64> = history["buckets"]
            .as_array()
            .map(|b| b.iter().filter_map(|b| b["sum"].as_f64()).collect())
            .unwrap_or_default();
        if sums == [1.0, 2.3] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flowscope.profile.cpu buckets: {history}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(socket);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_pushes_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &[
            "--max-profile-bytes",
            "4096",
            "--max-profile-decompressed-bytes",
            "65536",
            "--max-profile-labels",
            "2",
        ],
    ))
    .await
    .unwrap();
    let (status, body) = push(
        &handle,
        "name=a.cpu&format=folded",
        "text/plain",
        b"main;f notanumber\n",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("line 1"), "{body}");
    let (status, body) = push(&handle, "format=folded", "text/plain", b"main 1\n").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("name"), "{body}");
    let (status, body) = push(
        &handle,
        "name=a.cpu%7Bx%3D1%2Cy%3D2%2Cz%3D3%7D&format=folded",
        "text/plain",
        b"main 1\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = push(
        &handle,
        "name=a&format=pprof",
        "application/octet-stream",
        b"\x0a\xff\xff",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("pprof"), "{body}");
    let (status, _) = push(
        &handle,
        "name=a&format=jfr",
        "application/octet-stream",
        b"x",
    )
    .await;
    assert_eq!(status, 400);
    // Over the body limit: 413.
    let (status, body) = push(
        &handle,
        "name=a&format=folded",
        "text/plain",
        &vec![b'a'; 5000],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // A gzip bomb: small on the wire, over the decompressed limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 1 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 4096);
    let (status, body) = push(
        &handle,
        "name=a&format=pprof",
        "application/octet-stream",
        &bomb,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // Nothing was stored.
    let services = get_ok(&handle, "/api/profiles/services").await;
    assert_eq!(services["services"], json!([]));
    // Read parameters are checked.
    let (status, _) = get_json(&handle, "/api/profiles/flamegraph?service=a&type=nope").await;
    assert_eq!(status, 400);
    let (status, _) = get_json(&handle, "/api/profiles/flamegraph?type=cpu").await;
    assert_eq!(status, 400);
    let (status, _) = get_json(
        &handle,
        "/api/profiles/flamegraph?service=a&type=cpu&from=100&to=50",
    )
    .await;
    assert_eq!(status, 400);
    handle.shutdown().await.unwrap();
}

/// Over a limit a push is answered 422 naming the limit and its flag; only the excess is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_a_limit_get_422_naming_it_and_keep_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &[
            "--max-profile-stack-depth",
            "3",
            "--max-profile-label-sets",
            "1",
        ],
    ))
    .await
    .unwrap();
    let now = local::unix_now();
    let minute = now - now.rem_euclid(60) - 60;
    let q =
        |labels: &str| format!("name=deep.samples%7Bpod%3D{labels}%7D&from={minute}&format=folded");
    let (status, body) = push(
        &handle,
        &q("a"),
        "text/plain",
        b"main;a;b 2\nmain;a;b;c;d 5\n",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["refused"], json!({"stack_depth": 1}), "{body}");
    assert_eq!(body["kept"], true);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-profile-stack-depth"),
        "{body}"
    );
    let range = format!("service=deep&type=samples&from={minute}&to={}", minute + 60);
    let top = get_ok(&handle, &format!("/api/profiles/top?{range}")).await;
    assert_eq!(top["total"], 2, "{top}");
    // A second label set in the minute: refused whole, nothing of it kept.
    let (status, body) = push(&handle, &q("b"), "text/plain", b"main 4\n").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["refused"], json!({"label_sets": 4}), "{body}");
    assert_eq!(body["kept"], false);
    let top = get_ok(&handle, &format!("/api/profiles/top?{range}")).await;
    assert_eq!(top["total"], 2, "{top}");
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_pushes_cpu_and_heap_profiles_whose_incident_path_grows() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(dir.path(), &[])).await.unwrap();
    let started = local::unix_now();
    let loadgen = flowscope_cli::loadgen::LoadgenArgs {
        endpoint: format!("http://{}", handle.otlp_addr),
        rate: 200,
        duration: Some(Duration::from_secs(4)),
        traces_per_second: 0.0,
        quiet: true,
        profile_interval: Duration::from_secs(1),
        no_random_spikes: true,
        spikes: vec!["api:0s:60s".parse().unwrap()],
        ..Default::default()
    };
    let summary = flowscope_cli::loadgen::run(loadgen).await.unwrap();
    assert_eq!(summary.requests_failed, 0, "{summary}");

    let deadline = Instant::now() + DEADLINE;
    loop {
        let services = get_ok(&handle, "/api/profiles/services").await;
        let expected = ["api", "auth", "cache", "database", "queue"]
            .map(|s| json!({"service": s, "types": ["cpu", "inuse_space"]}));
        if services["services"] == json!(expected) {
            break;
        }
        assert!(Instant::now() < deadline, "{services}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The api service is in an incident from the start: its incident path leads the top table.
    let range = format!(
        "service=api&type=cpu&from={}&to={}",
        started - 60,
        local::unix_now() + 60
    );
    let top = get_ok(&handle, &format!("/api/profiles/top?{range}")).await;
    assert_eq!(
        top["functions"][0]["name"], "pool.wait_for_connection",
        "{top}"
    );
    let heap = get_ok(
        &handle,
        &format!(
            "/api/profiles/top?service=api&type=inuse_space&from={}&to={}",
            started - 60,
            local::unix_now() + 60
        ),
    )
    .await;
    assert_eq!(heap["unit"], "bytes");
    assert_eq!(
        heap["functions"][0]["name"], "response.buffer_pool.grow",
        "{heap}"
    );
    handle.shutdown().await.unwrap();
}
