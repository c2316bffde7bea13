//! The scheduled probe function's handler (`probing::probe_rounds`, what `functions/probe`
//! runs) against the emulators: instances registered in DynamoDB Local are probed over HTTP and the
//! results reach Kinesis (kinesis-mock) as ordinary metric records of the service, one per round.
//!
//! Built only with the `emulator-tests` feature (`scripts/aws-tests.sh`); without
//! `AWS_ENDPOINT_URL` (or `_DYNAMODB` / `_KINESIS`) it fails.
#![cfg(feature = "aws")]

mod contract;

use std::sync::Arc;
use std::time::Duration;

use flowscope_core::aws::{
    config, create_tables_if_missing, delete_tables_if_present, DynamoRegistryStore, KinesisStream,
    TableNames,
};
use flowscope_core::ingest::{Ingest, IngestLimits};
use flowscope_core::model::PointData;
use flowscope_core::probing::{probe_rounds, Prober};
use flowscope_core::record::{self, RecordPayload};
use flowscope_core::registry::probe::ProbeSettings;
use flowscope_core::registry::{Registration, Registry, RegistryLimits};

/// A health endpoint that answers every probe 200.
async fn health_endpoint() -> String {
    flowscope_core::testing::http_receiver::Receiver::start(vec![200])
        .await
        .url
}

/// An address nothing listens on.
async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/healthz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_handler_writes_each_rounds_results_into_kinesis() {
    for service in ["dynamodb", "kinesis"] {
        assert!(
            config::endpoint_configured(service),
            "needs the emulators: set AWS_ENDPOINT_URL (scripts/aws-tests.sh starts them)"
        );
    }
    let config = config::load_for_emulators().await;
    let tables = TableNames {
        registry: format!("{}-registry", contract::unique("flowscope-probe")),
        ..TableNames::default()
    };
    create_tables_if_missing(&config, &tables)
        .await
        .expect("create the table");
    let stream = Arc::new(KinesisStream::new(
        &config,
        contract::unique("flowscope-probe"),
    ));
    stream
        .create_if_missing(1, Duration::from_secs(60))
        .await
        .expect("create the stream");

    let registry = Registry::new(
        Arc::new(DynamoRegistryStore::new(&config, &tables.registry)),
        RegistryLimits::default(),
    );
    let service = contract::unique("svc");
    let now = contract::now_unix_s();
    for (instance, url) in [
        ("up-1", health_endpoint().await),
        ("down-1", dead_endpoint().await),
    ] {
        let registration = Registration {
            service: service.clone(),
            instance: instance.to_string(),
            version: None,
            host: None,
            metadata: Default::default(),
            health_url: Some(url),
            metrics_url: None,
            lease_seconds: Some(600),
        };
        registry
            .register(&registration, now)
            .await
            .expect("register");
    }
    let ingest = Ingest::new(stream.clone(), IngestLimits::default());
    let prober = Prober::new(ProbeSettings {
        timeout: Duration::from_secs(2),
        ..ProbeSettings::default()
    })
    .expect("a client");

    let reports = probe_rounds(
        &registry,
        &prober,
        &ingest,
        2,
        Duration::from_millis(500),
        contract::now_unix_s,
    )
    .await;
    assert_eq!(reports.len(), 2);
    for report in reports {
        let report = report.expect("a round");
        assert_eq!(report.probed, 2);
        assert_eq!(report.up, 1);
        assert_eq!(report.ingest_status, 200);
    }

    // Each round is one record of the service, with `up` 1 for the live endpoint and 0 for the
    // dead one.
    let found = contract::read_keys(stream.as_ref(), &[service.as_str()], 2).await;
    let records = &found[service.as_str()];
    assert_eq!(records.len(), 2, "one record per round");
    for stream_record in records {
        let RecordPayload::Metrics(points) = record::decode(&stream_record.data).expect("decodes")
        else {
            panic!("a metrics record")
        };
        let mut up: Vec<(String, f64)> = points
            .iter()
            .filter(|p| p.series.key().metric == "flowscope.probe.up")
            .map(|p| {
                let PointData::Gauge(value) = p.data else {
                    panic!("a gauge")
                };
                (
                    p.series.key().attributes["service.instance.id"].clone(),
                    value,
                )
            })
            .collect();
        up.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            up,
            vec![("down-1".to_string(), 0.0), ("up-1".to_string(), 1.0)]
        );
    }
    stream.delete_if_present().await.expect("delete the stream");
    delete_tables_if_present(&config, &tables)
        .await
        .expect("delete the table");
}
