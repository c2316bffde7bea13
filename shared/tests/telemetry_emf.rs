//! The functions' EMF log lines are valid CloudWatch Embedded Metric Format: the document structure
//! of the specification (checked with a JSON Schema, `fixtures/emf-schema.json`) plus its rules a
//! schema cannot state — every dimension key a directive names is a string member of the root, every
//! metric it names is a number member of the root, and the line is one JSON object with nothing
//! before or after it.

use flowscope_core::ingest::IngestStatsSnapshot;
use flowscope_core::telemetry::emf::{self, EmfLine, Unit};
use serde_json::Value;

fn validate(line: &str) -> Value {
    assert!(!line.contains('\n'), "one line: {line}");
    let document: Value = serde_json::from_str(line).expect("the line is one JSON value");
    let schema: Value = serde_json::from_str(include_str!("fixtures/emf-schema.json")).unwrap();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("http://flowscope.invalid/emf.json", schema)
        .unwrap();
    let mut schemas = boon::Schemas::new();
    let index = compiler
        .compile("http://flowscope.invalid/emf.json", &mut schemas)
        .unwrap();
    if let Err(error) = schemas.validate(&document, index) {
        panic!("not EMF: {error:#}\n{line}");
    }
    for directive in document["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                let key = key.as_str().unwrap();
                assert!(
                    document[key].is_string(),
                    "dimension {key} is a root string: {line}"
                );
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(
                document[name].is_number(),
                "metric {name} is a root number: {line}"
            );
        }
    }
    document
}

#[test]
fn an_ingest_line_is_valid_emf_with_the_invocations_counts() {
    let before = IngestStatsSnapshot {
        accepted_data_points: 10,
        rejected_data_points: 1,
        stream_bytes: 100,
        ..Default::default()
    };
    let after = IngestStatsSnapshot {
        accepted_data_points: 510,
        rejected_data_points: 3,
        accepted_spans: 7,
        stream_records: 2,
        stream_bytes: 4196,
        ..Default::default()
    };
    let line = emf::ingest_line("flowscope-ingest", 1_765_000_000_123, &before, &after).to_json();
    let document = validate(&line);
    assert_eq!(document["_aws"]["Timestamp"], 1_765_000_000_123_i64);
    assert_eq!(
        document["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Flowscope"
    );
    assert_eq!(document["Function"], "flowscope-ingest");
    assert_eq!(document["AcceptedDataPoints"], 500.0);
    assert_eq!(document["RejectedDataPoints"], 2.0);
    assert_eq!(document["AcceptedSpans"], 7.0);
    assert_eq!(document["StreamBytes"], 4096.0);
    let units: Vec<&str> = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Name"] == "StreamBytes")
        .map(|m| m["Unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["Bytes"]);
}

#[test]
fn an_aggregator_line_is_valid_emf() {
    let line = emf::aggregator_line("flowscope-aggregator", emf::now_ms(), 250, 1, 0.042).to_json();
    let document = validate(&line);
    assert_eq!(document["BatchRecords"], 250.0);
    assert_eq!(document["BatchItemFailures"], 1.0);
    assert_eq!(document["BatchDuration"], 0.042);
}

#[test]
fn non_finite_values_and_metrics_past_the_directive_limit_are_left_out() {
    let mut line = EmfLine::new("f", 0).metric("Nan", Unit::Count, f64::NAN);
    for i in 0..150 {
        line = line.metric(&format!("M{i}"), Unit::Count, i as f64);
    }
    let document = validate(&line.to_json());
    assert!(document.get("Nan").is_none());
    assert_eq!(
        document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .len(),
        emf::MAX_METRICS
    );
}

#[test]
#[should_panic(expected = "not EMF")]
fn the_schema_refuses_a_line_without_a_timestamp() {
    validate(
        r#"{"_aws":{"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"A","Unit":"Count"}]}]},"A":1}"#,
    );
}
