//! Pull (issue 14 item 2): a registry instance whose metadata has a `pprof_url` is asked for
//! `{pprof_url}/profile?seconds=N` and `{pprof_url}/heap` on the pull interval, here by a tiny HTTP
//! server serving a real pprof file (written by `@datadog/pprof`, the fixture of
//! `local_profiles.rs`) and a heap profile; both land in the per-minute trees under the instance's
//! service with `instance=<id>`, and repeated pulls of the same answer in a minute merge once.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use flowscope_cli::local;
use flowscope_core::profiles::pprof;
use flowscope_core::profiles::tree::StackTree;
use flowscope_core::profiles::ProfileType;
use serde_json::{json, Value};
use support::{args_with, get_json, http, wait_until};

const NODE_WALL: &[u8] = include_bytes!("../../shared/tests/fixtures/profiles/node-wall.pb.gz");

#[derive(Default)]
struct Served {
    cpu: AtomicUsize,
    heap: AtomicUsize,
    seconds: std::sync::Mutex<Vec<String>>,
}

async fn pprof_server(served: Arc<Served>) -> std::net::SocketAddr {
    let mut heap = StackTree::new();
    heap.add_named_stack(&["main", "cache", "grow"], 4096);
    let heap = pprof::encode(&heap, ProfileType::InuseSpace, 0, 0).unwrap();
    let app = Router::new()
        .route(
            "/debug/pprof/profile",
            get(
                |State(s): State<Arc<Served>>,
                 Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    s.cpu.fetch_add(1, Ordering::SeqCst);
                    if let Some(seconds) = q.get("seconds") {
                        s.seconds.lock().unwrap().push(seconds.clone());
                    }
                    NODE_WALL.to_vec()
                },
            ),
        )
        .route(
            "/debug/pprof/heap",
            get(move |State(s): State<Arc<Served>>| async move {
                s.heap.fetch_add(1, Ordering::SeqCst);
                heap.clone()
            }),
        )
        .with_state(served);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_pprof_urls_are_pulled_into_the_per_minute_trees() {
    let served = Arc::new(Served::default());
    let addr = pprof_server(served.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &[
            "--profile-pull-interval",
            "1s",
            "--profile-pull-seconds",
            "1",
        ],
    ))
    .await
    .unwrap();
    let registration = json!({
        "service": "pulled", "instance": "p-1",
        "metadata": {"pprof_url": format!("http://{addr}/debug/pprof/")},
        "lease_seconds": 60,
    });
    let (status, body) = http(
        handle.http_addr,
        "POST",
        "/api/registry/instances",
        "application/json",
        registration.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    wait_until(
        Duration::from_secs(20),
        "pulled wall and heap profiles",
        || async {
            let (status, body) = get_json(&handle, "/api/profiles/types?service=pulled").await;
            let types: Vec<String> = body["types"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|t| t["type"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let done = status == 200
                && types.contains(&"wall".to_string())
                && types.contains(&"inuse_space".to_string())
                && served.cpu.load(Ordering::SeqCst) >= 2;
            (done, body.to_string())
        },
    )
    .await;
    assert!(served.heap.load(Ordering::SeqCst) >= 1);
    assert!(served.seconds.lock().unwrap().iter().all(|s| s == "1"));

    let now = local::unix_now();
    let range = format!("service=pulled&from={}&to={}", now - 600, now + 60);
    // The same answer pulled several times in a minute is merged once per minute.
    let (_, timeline) = get_json(
        &handle,
        &format!("/api/profiles/timeline?{range}&type=wall"),
    )
    .await;
    let points = timeline["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{timeline}");
    for point in points {
        assert_eq!(point["total"], 936_000_000u64, "{timeline}");
    }
    let (_, top) = get_json(
        &handle,
        &format!("/api/profiles/top?{range}&type=wall&labels=instance=p-1"),
    )
    .await;
    let hash: Vec<&Value> = top["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "hashLoop")
        .collect();
    // Once per minute pulled (a minute may have been added since the timeline was read).
    let self_ns = hash[0]["self"].as_u64().unwrap();
    assert!(
        self_ns >= 896_000_000 && self_ns.is_multiple_of(896_000_000),
        "{top}"
    );
    let (_, heap) = get_json(
        &handle,
        &format!("/api/profiles/top?{range}&type=inuse_space"),
    )
    .await;
    assert_eq!(heap["functions"][0]["name"], "grow", "{heap}");
    handle.shutdown().await.unwrap();
}
