//! OTLP profiles (issue 14, `POST /v1development/profiles` on the OTLP port): a dictionary-based
//! `ExportProfilesServiceRequest` (string, function, location and stack tables; an inlined frame; a
//! cpu profile and an eBPF-style `samples`/`count` profile with a cpu period) merges into the same
//! per-minute trees as Pyroscope pushes, in protobuf (gzip) and JSON; a redelivered request changes
//! nothing; a profile type Flowscope does not keep is counted in the partial success; malformed and
//! oversized bodies get 400 / 413 with a reason.

mod support;

use std::io::Write;

use flowscope_cli::local::{self, LocalHandle};
use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::profiles::v1development::{
    Function, Line, Location, Profile, ProfilesDictionary, ResourceProfiles, Sample, ScopeProfiles,
    Stack, ValueType,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;
use support::{args_with, get_json, http};

const STRINGS: &[&str] = &[
    "",
    "cpu",
    "nanoseconds",
    "main",
    "handle",
    "render",
    "db.query",
    "app.go",
    "samples",
    "count",
    "mutex",
    "escape",
];

fn request(service: &str, minute: i64) -> ExportProfilesServiceRequest {
    let function = |name: i32| Function {
        name_strindex: name,
        filename_strindex: 7,
        ..Default::default()
    };
    let location = |functions: &[i32]| Location {
        lines: functions
            .iter()
            .map(|f| Line {
                function_index: *f,
                line: 10,
                column: 0,
            })
            .collect(),
        ..Default::default()
    };
    let dictionary = ProfilesDictionary {
        string_table: STRINGS.iter().map(|s| s.to_string()).collect(),
        // Index 0 of every table is the zero value.
        function_table: vec![
            Function::default(),
            function(3),
            function(4),
            function(5),
            function(6),
            function(11),
        ],
        location_table: vec![
            Location::default(),
            location(&[1]),
            location(&[2]),
            location(&[3]),
            // `escape` inlined into `db.query`: innermost first.
            location(&[5, 4]),
        ],
        // Leaf first.
        stack_table: vec![
            Stack::default(),
            Stack {
                location_indices: vec![3, 2, 1],
            },
            Stack {
                location_indices: vec![4, 2, 1],
            },
        ],
        ..Default::default()
    };
    let time = (minute as u64 + 5) * 1_000_000_000;
    let sample = |stack: i32, value: i64| Sample {
        stack_index: stack,
        values: vec![value],
        ..Default::default()
    };
    let cpu = Profile {
        sample_type: Some(ValueType {
            type_strindex: 1,
            unit_strindex: 2,
        }),
        samples: vec![
            sample(1, 30_000_000),
            sample(2, 10_000_000),
            sample(1, 20_000_000),
        ],
        time_unix_nano: time,
        duration_nano: 10_000_000_000,
        ..Default::default()
    };
    // What the OpenTelemetry eBPF profiler sends: sample counts with a cpu period.
    let ebpf = Profile {
        sample_type: Some(ValueType {
            type_strindex: 8,
            unit_strindex: 9,
        }),
        period_type: Some(ValueType {
            type_strindex: 1,
            unit_strindex: 2,
        }),
        period: 10_000_000,
        samples: vec![sample(2, 3)],
        time_unix_nano: time,
        ..Default::default()
    };
    let mutex = Profile {
        sample_type: Some(ValueType {
            type_strindex: 10,
            unit_strindex: 9,
        }),
        samples: vec![sample(1, 4)],
        time_unix_nano: time,
        ..Default::default()
    };
    ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_profiles: vec![ScopeProfiles {
                profiles: vec![cpu, ebpf, mutex],
                ..Default::default()
            }],
            ..Default::default()
        }],
        dictionary: Some(dictionary),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

async fn post(handle: &LocalHandle, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http(
        handle.otlp_addr,
        "POST",
        "/v1development/profiles",
        content_type,
        body,
    )
    .await
}

async fn top(handle: &LocalHandle, service: &str, minute: i64) -> Value {
    let (status, body) = get_json(
        handle,
        &format!(
            "/api/profiles/top?service={service}&type=cpu&from={minute}&to={}",
            minute + 60
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn self_of(top: &Value, name: &str) -> u64 {
    top["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .map_or(0, |f| f["self"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_profiles_merge_into_the_per_minute_trees() {
    let dir = tempfile::tempdir().unwrap();
    let handle = local::start(args_with(
        dir.path(),
        &[
            "--max-profile-bytes",
            "65536",
            "--max-profile-decompressed-bytes",
            "262144",
        ],
    ))
    .await
    .unwrap();
    let now = local::unix_now();
    let minute = now - now.rem_euclid(60) - 60;

    // Protobuf, gzip.
    let body = gzip(&request("otel-svc", minute).encode_to_vec());
    let gzip_protobuf = "application/x-protobuf\r\nContent-Encoding: gzip";
    let (status, answer) = post(&handle, gzip_protobuf, &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer = ExportProfilesServiceResponse::decode(&answer[..]).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_profiles, 1);
    assert!(partial.error_message.contains("mutex"), "{partial:?}");
    let expect = |top: &Value| {
        // cpu: render 50 ms, escape (inlined in db.query) 10 ms; eBPF: 3 × 10 ms on escape.
        assert_eq!(top["total"], 90_000_000u64, "{top}");
        assert_eq!(self_of(top, "render"), 50_000_000);
        assert_eq!(self_of(top, "escape"), 40_000_000);
        assert_eq!(self_of(top, "db.query"), 0);
    };
    expect(&top(&handle, "otel-svc", minute).await);
    // Redelivered: merged once.
    let (status, _) = post(&handle, gzip_protobuf, &body).await;
    assert_eq!(status, 200);
    expect(&top(&handle, "otel-svc", minute).await);

    // JSON.
    let json = serde_json::to_vec(&request("otel-json", minute)).unwrap();
    let (status, answer) = post(&handle, "application/json", &json).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedProfiles"], 1, "{answer}");
    expect(&top(&handle, "otel-json", minute).await);

    // Malformed: 400 with a reason; a stack index out of range names it.
    let (status, answer) = post(&handle, "application/x-protobuf", b"\x0a\xff\xff").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&answer).contains("ExportProfilesServiceRequest"));
    let mut bad = request("otel-bad", minute);
    bad.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 99;
    let (status, answer) = post(&handle, "application/x-protobuf", &bad.encode_to_vec()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&answer).contains("stack index 99"));
    let (status, _) = post(&handle, "text/plain", b"x").await;
    assert_eq!(status, 415);
    // Over the body limit, and a gzip bomb: 413.
    let (status, _) = post(&handle, "application/x-protobuf", &vec![0u8; 70_000]).await;
    assert_eq!(status, 413);
    let bomb = gzip(&vec![0u8; 1 << 20]);
    let (status, _) = post(&handle, gzip_protobuf, &bomb).await;
    assert_eq!(status, 413);
    handle.shutdown().await.unwrap();
}
