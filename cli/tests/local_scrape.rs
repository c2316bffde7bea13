//! Prometheus pull collection in local mode, against exporters nobody here wrote: Debian's
//! `prometheus-node-exporter` and a Python `prometheus_client` process (Debian's
//! `python3-prometheus-client`), both on 127.0.0.1 and installed by `scripts/setup.sh`. Missing
//! either fails the test with the package to install; it never skips.
//!
//! - Python: the test drives the counter's increments; Flowscope's total increase equals what the
//!   exporter reports, across a stop (`up` goes to 0) and a restart (`up` back to 1, the counter's
//!   new `_created` is a reset counted from 0).
//! - Node exporter: its own `promhttp_metric_handler_requests_total{code="200"}` rises by exactly
//!   one per scrape, so its increase in Flowscope equals the number of successful scrapes minus the
//!   first (the baseline); a textfile-collector counter written by the test goes 10 → 25 → 40 and
//!   Flowscope counts 30.
//! - Hot reload: a job added to the scrape config file is scraped without a restart; a broken file
//!   is refused and the running targets go on.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use flowscope_cli::local;
use support::wait_until;
use tokio::time::sleep;

const PYTHON: &str = "/usr/bin/python3";
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

const EXPORTER_PY: &str = r#"
import sys
from prometheus_client import Counter, start_http_server
jobs = Counter('jobs_processed', 'Jobs processed', ['queue'])
jobs.labels(queue='default')
start_http_server(int(sys.argv[1]), addr='127.0.0.1')
print('ready', flush=True)
for line in sys.stdin:
    jobs.labels(queue='default').inc(float(line))
    print('ok', flush=True)
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (scripts/setup.sh does)"
    );
}

struct PythonExporter {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl PythonExporter {
    fn start(dir: &Path, port: u16) -> PythonExporter {
        let script = dir.join("exporter.py");
        std::fs::write(&script, EXPORTER_PY).unwrap();
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting /usr/bin/python3");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the Python exporter did not start (is python3-prometheus-client installed?)"
        );
        PythonExporter {
            child,
            stdin,
            stdout,
        }
    }

    fn inc(&mut self, by: u32) {
        writeln!(self.stdin, "{by}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok");
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(count, sum, min)` of a metric of a service over every 1m bucket of the last hour; zeros while
/// it is unknown.
async fn get_json(http: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = support::http(http, "GET", path, "application/json", b"").await;
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

async fn totals(http: SocketAddr, service: &str, metric: &str) -> (u64, f64, Option<f64>) {
    let now = local::unix_now();
    let (status, body) = get_json(
        http,
        &format!(
            "/api/services/{service}/metrics/{metric}?resolution=1m&from={}&to={}",
            now - 3600,
            now + 120
        ),
    )
    .await;
    if status == 404 {
        return (0, 0.0, None);
    }
    assert_eq!(status, 200, "{service}/{metric}: {body}");
    let buckets = body["buckets"].as_array().cloned().unwrap_or_default();
    buckets.iter().fold((0, 0.0, None), |(count, sum, min), b| {
        let bmin = b["min"].as_f64();
        (
            count + b["count"].as_u64().unwrap_or(0),
            sum + b["sum"].as_f64().unwrap_or(0.0),
            match (min, bmin) {
                (Some(a), Some(b)) => Some(f64::min(a, b)),
                (a, b) => a.or(b),
            },
        )
    })
}

/// The exporter's own value of `name{labels}` in its exposition (what "the exporter reports").
fn exported_value(port: u16, sample: &str) -> f64 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).unwrap();
    body.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("{sample} not in the exposition:\n{body}"))
}

fn write_config(path: &Path, python_port: u16, node_port: Option<u16>) {
    let mut yaml = format!(
        r#"# A prometheus.yml as Prometheus users write it; keys Flowscope does not read are warnings.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 15s
rule_files: []
scrape_configs:
  - job_name: python
    static_configs:
      - targets: ['127.0.0.1:{python_port}']
        labels: {{env: test}}
"#
    );
    if let Some(node_port) = node_port {
        yaml.push_str(
            r#"  - job_name: node
    file_sd_configs:
      - files: ['node-*.json']
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: '.*/node-(.*)\.json'
        target_label: source
"#,
        );
        std::fs::write(
            path.parent().unwrap().join("node-local.json"),
            format!(r#"[{{"targets": ["127.0.0.1:{node_port}"], "labels": {{"env": "test"}}}}]"#),
        )
        .unwrap();
    }
    // Written beside and renamed over, as editors and config management do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_are_scraped_with_exact_increases_up_and_hot_reload() {
    require(PYTHON, "python3 (with python3-prometheus-client)");
    require(NODE_EXPORTER, "prometheus-node-exporter");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let textfiles = dir.path().join("textfiles");
    std::fs::create_dir(&textfiles).unwrap();
    let write_textfile = |value: u32| {
        let tmp = textfiles.join("flowscope.prom.tmp");
        std::fs::write(
            &tmp,
            format!("# HELP textfile_events_total Events.\n# TYPE textfile_events_total counter\ntextfile_events_total {value}\n"),
        )
        .unwrap();
        std::fs::rename(&tmp, textfiles.join("flowscope.prom")).unwrap();
    };
    write_textfile(10);

    let python_port = free_port();
    let mut python = PythonExporter::start(dir.path(), python_port);
    let node_port = free_port();
    let _node = Killed(
        Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                textfiles.display()
            ))
            .arg("--collector.loadavg")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus-node-exporter"),
    );

    // Only the Python job at first: the node job arrives by hot reload.
    write_config(&config, python_port, None);
    let data = dir.path().join("data");
    let handle = local::start(support::args_with(
        &data,
        &[
            "--scrape-config",
            config.to_str().unwrap(),
            "--scrape-reload-interval",
            "500ms",
        ],
    ))
    .await
    .unwrap();
    let http = handle.http_addr;

    // The Python counter: exposed at 0 with `_created` of its start, then +5 and +7.
    wait_until(Duration::from_secs(30), "python up = 1", || async move {
        let up = totals(http, "python", "up").await;
        (up.0 >= 1 && up.1 >= 1.0, format!("{up:?}"))
    })
    .await;
    wait_until(
        Duration::from_secs(30),
        "the counter's first point",
        || async move {
            let c = totals(http, "python", "jobs_processed_total").await;
            (c.0 >= 1, format!("{c:?}"))
        },
    )
    .await;
    python.inc(5);
    python.inc(7);
    let reported = exported_value(python_port, "jobs_processed_total{queue=\"default\"}");
    assert_eq!(reported, 12.0);
    wait_until(
        Duration::from_secs(30),
        "an increase of 12",
        || async move {
            let c = totals(http, "python", "jobs_processed_total").await;
            (c.1 == 12.0, format!("{c:?}"))
        },
    )
    .await;

    // Stop it: `up` goes to 0; restart it on the same port: back to 1, its counter counted from 0.
    python.stop();
    wait_until(Duration::from_secs(30), "python up = 0", || async move {
        let up = totals(http, "python", "up").await;
        (up.2 == Some(0.0), format!("{up:?}"))
    })
    .await;
    let (_, up_sum_while_down, _) = totals(http, "python", "up").await;
    let mut python = PythonExporter::start(dir.path(), python_port);
    wait_until(
        Duration::from_secs(30),
        "python up = 1 again",
        || async move {
            let up = totals(http, "python", "up").await;
            (up.1 > up_sum_while_down, format!("{up:?}"))
        },
    )
    .await;
    python.inc(3);
    wait_until(
        Duration::from_secs(30),
        "12 before the restart + 3 after",
        || async move {
            let c = totals(http, "python", "jobs_processed_total").await;
            (c.1 == 15.0, format!("{c:?}"))
        },
    )
    .await;

    // A broken file is refused; the Python target goes on being scraped.
    std::fs::write(&config, "scrape_configs:\n  - job_name: [\n").unwrap();
    let (before, _, _) = totals(http, "python", "up").await;
    wait_until(Duration::from_secs(30), "scrapes go on", || async move {
        let up = totals(http, "python", "up").await;
        (up.0 >= before + 3, format!("{up:?}"))
    })
    .await;

    // Hot reload: the node exporter's job (file SD) is added without a restart.
    write_config(&config, python_port, Some(node_port));
    wait_until(Duration::from_secs(30), "node up = 1", || async move {
        let up = totals(http, "node", "up").await;
        (up.1 >= 2.0, format!("{up:?}"))
    })
    .await;
    // The baseline (10) is in; 25 and 40 follow: an increase of 30.
    write_textfile(25);
    wait_until(Duration::from_secs(30), "textfile +15", || async move {
        let c = totals(http, "node", "textfile_events_total").await;
        (c.1 == 15.0, format!("{c:?}"))
    })
    .await;
    write_textfile(40);
    wait_until(Duration::from_secs(30), "textfile +30", || async move {
        let c = totals(http, "node", "textfile_events_total").await;
        (c.1 == 30.0, format!("{c:?}"))
    })
    .await;
    // One handler request per scrape: increase = successful scrapes − the baseline scrape.
    wait_until(
        Duration::from_secs(30),
        "promhttp requests = scrapes − 1",
        || async move {
            let requests = totals(http, "node", "promhttp_metric_handler_requests_total").await;
            let up = totals(http, "node", "up").await;
            (
                requests.1 >= 3.0 && requests.1 == up.1 - 1.0,
                format!("requests {requests:?}, up {up:?}"),
            )
        },
    )
    .await;
    let (status, services) = get_json(http, "/api/services").await;
    assert_eq!(status, 200);
    let text = services.to_string();
    assert!(
        text.contains("\"node\"") && text.contains("\"python\""),
        "{text}"
    );

    python.stop();
    handle.shutdown().await.unwrap();
}

fn rules_file(rules: &str) -> String {
    format!(
        "version: 1\nsettings:\n  evaluation_delay: 5s\nnotifications:\n  group_wait: 10s\n  sinks: []\nrules:\n{rules}"
    )
}

const NEVER_RULE: &str = "  - name: never\n    metric: nothing.here\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 1\n    critical: 2\n";
const DEPTH_RULE: &str = "  - name: deep-queue\n    metric: queue.depth\n    aggregation: avg\n    window: 1m\n    condition: above\n    warning: 50\n    critical: 80\n";

/// Hot reload of the alert rules file: a rule added to the file fires without a restart (a file
/// that does not validate is refused: `RulesWatch`'s unit test in cli/src/local/alerting.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_rule_added_to_the_file_fires_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rules_file(NEVER_RULE)).unwrap();
    let handle = local::start(support::args_with(
        &dir.path().join("data"),
        &["--alert-rules", rules.to_str().unwrap()],
    ))
    .await
    .unwrap();
    let http = handle.http_addr;
    let alerts = || async move {
        let (status, body) = get_json(http, "/api/alerts").await;
        assert_eq!(status, 200, "{body}");
        body["alerts"].as_array().cloned().unwrap_or_default()
    };
    // Points of a deep queue every second, so that the last whole minute holds some whatever the
    // minute boundary.
    let sender = {
        let otlp = handle.otlp_addr;
        tokio::spawn(async move {
            loop {
                let (status, _) = support::http(
                    otlp,
                    "POST",
                    "/v1/metrics",
                    "application/x-protobuf",
                    &support::gauge_request("orders", "queue.depth", 100.0),
                )
                .await;
                assert_eq!(status, 200);
                sleep(Duration::from_secs(1)).await;
            }
        })
    };
    std::fs::write(&rules, rules_file(&format!("{NEVER_RULE}{DEPTH_RULE}"))).unwrap();
    wait_until(
        Duration::from_secs(150),
        "deep-queue firing",
        || async move {
            let active = alerts().await;
            let fired = active
                .iter()
                .any(|a| a["rule"] == "deep-queue" && a["status"] == "firing");
            (fired, format!("{active:?}"))
        },
    )
    .await;
    sender.abort();
    handle.shutdown().await.unwrap();
}
