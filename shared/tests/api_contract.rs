//! The pinned contract: `docs/openapi.json` and the WebSocket JSON Schemas are what the code
//! generates (`flowscope_core::http::contract`). A handler or type changed without regenerating
//! them fails here, with the command that regenerates them (`scripts/contract.sh`, which also
//! regenerates the dashboard's types from the new document).

use std::path::PathBuf;

use flowscope_core::http::contract::{openapi_json, websocket_schemas};

const REGENERATE: &str = "scripts/contract.sh";

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

/// With `FLOWSCOPE_UPDATE_CONTRACT=1` (what `scripts/contract.sh` sets) writes the file; otherwise
/// fails when the committed one differs, naming the first differing line.
fn check(name: &str, generated: &str) {
    let path = repo_file(name);
    if std::env::var_os("FLOWSCOPE_UPDATE_CONTRACT").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let line = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "{name} differs from what the code generates (first difference at line {}):\n  committed: {}\n  generated: {}\n\
         The API or WebSocket contract changed. If that is intended, regenerate the contract and the \
         dashboard's types with:\n\n    {REGENERATE}\n\nand commit the result (the dashboard must still build).",
        line + 1,
        committed.lines().nth(line).unwrap_or("<end of file>"),
        generated.lines().nth(line).unwrap_or("<end of file>"),
    );
}

#[test]
fn openapi_document_is_what_the_handlers_generate() {
    check("docs/openapi.json", &openapi_json());
}

#[test]
fn websocket_schemas_are_what_the_message_types_generate() {
    let (client, server) = websocket_schemas();
    check("docs/websocket.client.schema.json", &client);
    check("docs/websocket.server.schema.json", &server);
}

/// Validates `text` (one message as sent) against a committed WebSocket schema.
fn validate_message(schema_file: &str, text: &str) {
    let path = repo_file(schema_file);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V2020_12);
    let location = format!("http://flowscope.invalid/{schema_file}");
    compiler.add_resource(&location, schema).unwrap();
    let mut schemas = boon::Schemas::new();
    let index = compiler.compile(&location, &mut schemas).unwrap();
    let message: serde_json::Value = serde_json::from_str(text).unwrap();
    if let Err(error) = schemas.validate(&message, index) {
        panic!("{schema_file}: {error:#}\n{text}");
    }
}

/// The messages the server really writes (including the hand-written envelope of a live flush and
/// the separately tagged alert event) validate against the committed schemas; so do the client's.
#[test]
fn websocket_messages_as_sent_validate_against_the_committed_schemas() {
    use flowscope_core::alerts::state::{
        AlertStatus, AlertTransition, Labels, Reason, Severity, TransitionKind,
    };
    use flowscope_core::alerts::AlertEvent;
    use flowscope_core::live::wire::{
        encode_flush_update, ClientMessage, LiveSeries, LiveUpdate, ServerMessage, SharedSeries,
    };
    use flowscope_core::model::{MetricKind, Resolution};
    use flowscope_core::query::BucketView;
    use flowscope_core::registry::score::HealthEvent;
    use flowscope_core::traces::wire::{TraceEvent, TraceHop};

    let update = LiveUpdate {
        series: SharedSeries::new(LiveSeries {
            series_id: "0f3a9c0000000001".into(),
            service: "api".into(),
            metric: "http.server.request.duration".into(),
            attributes: [("route".to_string(), "/users".to_string())].into(),
            kind: MetricKind::Histogram,
            unit: "ms".into(),
        }),
        resolution: Resolution::OneMinute,
        bucket: BucketView {
            start: 1_764_000_000,
            count: 120,
            sum: 4200.5,
            min: Some(3.1),
            max: Some(880.0),
            avg: Some(35.0),
            p50: Some(22.0),
            p95: None,
            p99: None,
            rate: 2.0,
        },
    };
    let flush = encode_flush_update(42, 1_764_000_000_123_456, &[&update], 120 * 1024);
    assert_eq!(flush.texts.len(), 1);
    let trace = TraceEvent {
        trace_id: "d80944f2a1adae5710fd9dc23ee9de80".into(),
        root_service: "api".into(),
        root_name: Some("POST /orders".into()),
        start_unix_ms: 1_795_527_202_019.77,
        duration_ms: 142.9,
        error: false,
        reason: Some("quota".into()),
        hops: vec![TraceHop {
            from: "api".into(),
            to: "auth".into(),
            kind: "call".into(),
            to_kind: "service".into(),
            offset_ms: 1.2,
            duration_ms: 11.8,
            error: false,
        }],
    };
    let mut labels = Labels::new();
    labels.insert("service".into(), "checkout".into());
    let alert = AlertEvent::from_transition(&AlertTransition {
        fingerprint: "00000000000000ff".into(),
        rule: "high-latency".into(),
        labels,
        kind: TransitionKind::Firing,
        status: AlertStatus::Firing,
        previous_status: AlertStatus::Pending,
        severity: Some(Severity::Critical),
        previous_severity: None,
        value: Some(1234.5),
        reason: Some(Reason::Threshold),
        at: 1_700_000_000,
        summary: "p95 is 1234.5 ms".into(),
        by: None,
    });
    let server = [
        flush.texts[0].clone(),
        ServerMessage::Hello {
            connection_id: "c1".into(),
            seq: 41,
        }
        .to_json(),
        ServerMessage::Snapshot {
            seq: 42,
            part: 1,
            parts: 1,
            updates: vec![update.clone()],
        }
        .to_json(),
        ServerMessage::Trace {
            seq: 42,
            traces: vec![trace],
        }
        .to_json(),
        ServerMessage::Pong.to_json(),
        ServerMessage::Error {
            message: "bad".into(),
        }
        .to_json(),
        alert.to_json(),
        registry_event(true).to_json(),
        registry_event(false).to_json(),
        HealthEvent::new("api", &health(Some(72.5)), 1_733_370_000).to_json(),
        HealthEvent::new("api", &health(None), 1_733_370_000).to_json(),
    ];
    for text in &server {
        validate_message("docs/websocket.server.schema.json", text);
    }
    let client = [
        ClientMessage::Subscribe {
            services: vec!["api".into()],
            metrics: vec![],
            last_seq: Some(41),
        },
        ClientMessage::Ping,
    ];
    for message in &client {
        validate_message(
            "docs/websocket.client.schema.json",
            &serde_json::to_string(message).unwrap(),
        );
    }
}

/// A `registry` event as the registry builds it: with the merged instance, or `null` once no
/// source knows it.
fn registry_event(with_current: bool) -> flowscope_core::registry::RegistryEvent {
    use flowscope_core::ports::registry::InstanceSource;
    use flowscope_core::registry::{
        InstanceView, LeaseView, RegistryAction, RegistryEvent, RegistryEventType,
    };
    let current = InstanceView {
        service: "api".into(),
        instance: "a-1".into(),
        version: Some("1.2.0".into()),
        host: None,
        sources: vec![InstanceSource::Otlp, InstanceSource::Registered],
        metadata: [("zone".to_string(), "eu-1".to_string())].into(),
        health_url: Some("http://127.0.0.1:9/healthz".into()),
        metrics_url: None,
        first_seen: 1_733_369_000,
        last_seen: 1_733_370_000,
        lease: Some(LeaseView {
            ttl_seconds: 30,
            expires_at: 1_733_370_030,
        }),
    };
    RegistryEvent {
        kind: RegistryEventType::Registry,
        action: if with_current {
            RegistryAction::Registered
        } else {
            RegistryAction::Expired
        },
        service: "api".into(),
        instance: "a-1".into(),
        source: InstanceSource::Registered,
        current: with_current.then_some(current),
        at: 1_733_370_000,
    }
}

fn health(score: Option<f64>) -> flowscope_core::registry::score::HealthScore {
    use flowscope_core::registry::score::{HealthScore, HealthStatus, ScoreInputs};
    HealthScore {
        score,
        status: if score.is_some() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Unknown
        },
        reasons: vec!["p95 probe latency 1.2 s".into()],
        inputs: ScoreInputs {
            probe_availability: Some(1.0),
            probe_p95_s: Some(1.2),
            last_telemetry: None,
            firing_critical: 0,
            firing_warning: 0,
            pending: 0,
        },
    }
}
