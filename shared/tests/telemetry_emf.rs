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

/// The CloudWatch dashboard in `template.yaml` charts only metrics the functions' EMF lines emit:
/// a renamed metric would otherwise leave an empty chart that nobody notices.
#[test]
fn the_template_dashboard_charts_only_metrics_the_functions_emit() {
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../template.yaml")).expect("template.yaml parses");
    let body = match &template["Resources"]["PipelineDashboard"]["Properties"]["DashboardBody"] {
        serde_yaml_ng::Value::Tagged(tagged) => tagged.value.as_str().map(str::to_owned),
        other => other.as_str().map(str::to_owned),
    }
    .expect("PipelineDashboard has a DashboardBody string");
    // `${Ref}` substitutions are resolved at deploy time; any string stands in for them here.
    let body = without_substitutions(&body);
    let dashboard: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");

    let emitted: Vec<String> = [
        emf::ingest_line(
            "i",
            0,
            &IngestStatsSnapshot::default(),
            &IngestStatsSnapshot::default(),
        ),
        emf::aggregator_line("a", 0, 1, 0, 0.1),
    ]
    .iter()
    .flat_map(|line| {
        let v: Value = serde_json::from_str(&line.to_json()).unwrap();
        v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    })
    .collect();

    let mut charted = 0;
    for widget in dashboard["widgets"].as_array().unwrap() {
        let mut namespace = String::new();
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            match row[0].as_str().unwrap() {
                "..." => continue,
                "." => {}
                ns => namespace = ns.to_string(),
            }
            if namespace == emf::NAMESPACE {
                let name = row[1].as_str().unwrap();
                assert!(
                    name == "." || emitted.iter().any(|e| e == name),
                    "the dashboard charts {}/{name}, which no EMF line emits (emitted: {emitted:?})",
                    emf::NAMESPACE
                );
                charted += 1;
            }
        }
    }
    assert!(
        charted >= 5,
        "the dashboard charts the EMF metrics ({charted})"
    );
}

fn without_substitutions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push_str("ref");
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
