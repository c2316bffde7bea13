//! The scheduled scraper function's core against the emulators: a Prometheus target on 127.0.0.1 is
//! scraped into Kinesis through the receiver, the shard is handed to the aggregator handler as a
//! Kinesis event, and the buckets in DynamoDB count the scraped counter exactly once — also when the
//! invocation is repeated for the same slot (the slot ledger in the state table writes nothing) and
//! when a repeat after a crash writes the slot again (the same slot time is a duplicate to the
//! cumulative tracker).
//!
//! Built only with the `emulator-tests` feature (`scripts/aws-tests.sh`).

use std::sync::{Arc, Mutex};

use flowscope_core::aggregate::aggregator::Aggregator;
use flowscope_core::alerts::RuleSet;
use flowscope_core::aws::lambda::kinesis::handle_kinesis_event;
use flowscope_core::aws::{delete_tables_if_present, DynamoAlertStore, DynamoStore};
use flowscope_core::http::ApiState;
use flowscope_core::ingest::IngestLimits;
use flowscope_core::model::Retention;
use flowscope_core::ports::StreamSource;
use flowscope_core::scrape::client::Scraper;
use flowscope_core::scrape::config::{ScrapeConfigFile, ScrapeLimits};
use flowscope_core::scrape::dynamo::DynamoSlotLedger;
use flowscope_core::scrape::scheduled::{
    run_invocation, InvocationReport, MemoryLedger, SlotLedger,
};
use flowscope_integration_tests::events::{
    api_get, dyn_ingest, json_body, kinesis_event, query_function,
};
use flowscope_integration_tests::shard::read_shard;
use flowscope_integration_tests::{
    api_keys, emulators, now_unix_s, stream_and_tables, unique, API_KEY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal Prometheus target: answers every request with the current body (text format).
async fn exporter(body: Arc<Mutex<String>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

fn exposition(jobs: u32, created: i64, depth: f64) -> String {
    format!(
        "# TYPE jobs_total counter\njobs_total {jobs}\n# TYPE jobs_created gauge\njobs_created {created}\n# TYPE queue_depth gauge\nqueue_depth {depth}\n"
    )
}

#[tokio::test]
async fn a_scraped_sample_reaches_dynamodb_through_kinesis_exactly_once_across_repeated_invocations(
) {
    let test = "a_scraped_sample_reaches_dynamodb_through_kinesis_exactly_once_across_repeated_invocations";
    let Some(config) = emulators(test).await else {
        return;
    };
    let prefix = unique("flowscope-scrape");
    let (stream, tables) = stream_and_tables(&config, &prefix).await;
    let service = unique("worker");
    let minute = now_unix_s().div_euclid(60) * 60;
    let body = Arc::new(Mutex::new(exposition(5, minute - 30, 7.0)));
    let port = exporter(body.clone()).await;
    let scrape_config = ScrapeConfigFile::parse(
        &format!(
            "scrape_configs:\n  - job_name: {service}\n    scrape_interval: 1m\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
        std::path::Path::new("/"),
        &ScrapeLimits::default(),
    )
    .unwrap();
    let ingest = dyn_ingest(stream.clone(), IngestLimits::default());
    let ledger = DynamoSlotLedger::new(&config, tables.state.clone());
    let scraper = Scraper::new().unwrap();
    async fn run(
        scrape_config: &ScrapeConfigFile,
        scraper: &Scraper,
        ingest: &flowscope_core::ingest::Ingest<dyn flowscope_core::ports::StreamSink>,
        ledger: &dyn SlotLedger,
        at: i64,
    ) -> InvocationReport {
        run_invocation(scrape_config, scraper, ingest, ledger, at, |_| async {}).await
    }

    let store = Arc::new(DynamoStore::new(&config, tables.clone()));
    let aggregator = Aggregator::new(store.clone(), Retention::default());
    let api = ApiState::new(
        store.clone(),
        Arc::new(DynamoAlertStore::new(&config, tables.alerts.clone())),
        Arc::new(RuleSet::shipped().unwrap()),
    );
    let keys = api_keys();
    let shard = stream.shard_ids().await.unwrap().remove(0);
    let aggregate_all = |expected: usize| {
        let (stream, shard, aggregator) = (stream.clone(), shard.clone(), &aggregator);
        async move {
            let records = read_shard(stream.as_ref(), &shard, expected).await;
            assert_eq!(records.len(), expected, "records in the stream");
            // Every record again each time: a Kinesis redelivery, which the watermarks absorb.
            let response = handle_kinesis_event(aggregator, None, kinesis_event(&records))
                .await
                .unwrap();
            assert!(response.batch_item_failures.is_empty());
        }
    };
    let totals = |metric: &'static str| {
        let (api, keys, service) = (&api, &keys, service.clone());
        async move {
            let now = now_unix_s();
            let response = query_function(
                api,
                keys,
                api_get(
                    &format!("/api/services/{service}/metrics/{metric}"),
                    &format!("from={}&to={}&resolution=1m", now - 3600, now + 600),
                    API_KEY,
                ),
            )
            .await;
            assert_eq!(response.status(), 200, "{}", json_body(&response));
            let history = json_body(&response);
            history["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .fold((0u64, 0.0f64), |(c, s), b| {
                    (
                        c + b["count"].as_u64().unwrap(),
                        s + b["sum"].as_f64().unwrap(),
                    )
                })
        }
    };

    // Slot 1: the counter at 5 (started 30 s before: counted whole), a gauge, `up`.
    let first = run(&scrape_config, &scraper, &ingest, &ledger, minute).await;
    assert_eq!(
        (first.scraped, first.up, first.already_done),
        (1, 1, 0),
        "{first:?}"
    );
    let records_after_first = ingest.stats().stream_records as usize;
    assert!(records_after_first >= 1);
    aggregate_all(records_after_first).await;
    assert_eq!(totals("jobs_total").await, (1, 5.0));
    assert_eq!(totals("up").await, (1, 1.0));
    assert_eq!(totals("queue_depth").await, (1, 7.0));

    // The same invocation again (EventBridge/Lambda retry): the ledger says done, nothing written.
    *body.lock().unwrap() = exposition(9, minute - 30, 8.0);
    let repeat = run(&scrape_config, &scraper, &ingest, &ledger, minute + 20).await;
    assert_eq!((repeat.scraped, repeat.already_done), (0, 1), "{repeat:?}");
    assert!(repeat.scraped_instances.is_empty(), "nothing scraped again");
    assert_eq!(ingest.stats().stream_records as usize, records_after_first);

    // A repeat after a crash before the ledger write (an empty ledger): the slot is written again,
    // and the counter still counts once (the same slot time is a duplicate to the tracker).
    let crashed = MemoryLedger::default();
    let again = run(&scrape_config, &scraper, &ingest, &crashed, minute).await;
    assert_eq!(again.scraped, 1);
    let records_after_crash = ingest.stats().stream_records as usize;
    assert!(records_after_crash > records_after_first);
    aggregate_all(records_after_crash).await;
    assert_eq!(
        totals("jobs_total").await,
        (1, 5.0),
        "the counter counted once"
    );

    // The next slot: 9 − 5 = 4 more.
    let next = run(&scrape_config, &scraper, &ingest, &ledger, minute + 60).await;
    assert_eq!((next.scraped, next.up), (1, 1), "{next:?}");
    aggregate_all(ingest.stats().stream_records as usize).await;
    assert_eq!(totals("jobs_total").await, (2, 9.0));

    stream.delete_if_present().await.unwrap();
    delete_tables_if_present(&config, &tables).await.unwrap();
}

/// Issue 13 item 5a on AWS: an instance registered with a `metrics_url` is scraped by the scheduled
/// scraper (no scrape config at all), its samples land under its service through Kinesis, and a
/// repeated invocation writes nothing more.
#[tokio::test]
async fn a_registered_instance_with_a_metrics_url_is_scraped_by_the_function() {
    use flowscope_core::aws::DynamoRegistryStore;
    use flowscope_core::ports::InstanceSource;
    use flowscope_core::registry::{Registration, Registry, RegistryLimits};
    use flowscope_core::scrape::registry_source::{
        record_scraped, registry_job, with_job, RegistryScrape,
    };

    let test = "a_registered_instance_with_a_metrics_url_is_scraped_by_the_function";
    let Some(config) = emulators(test).await else {
        return;
    };
    let prefix = unique("flowscope-scrape-reg");
    let (stream, tables) = stream_and_tables(&config, &prefix).await;
    let service = unique("billing");
    let minute = now_unix_s().div_euclid(60) * 60;
    let body = Arc::new(Mutex::new(exposition(3, minute - 30, 2.0)));
    let port = exporter(body.clone()).await;
    let registry = Registry::new(
        Arc::new(DynamoRegistryStore::new(&config, tables.registry.clone())),
        RegistryLimits::default(),
    );
    let registration = format!(
        r#"{{"service":"{service}","instance":"b-1","metrics_url":"http://127.0.0.1:{port}/metrics","lease_seconds":600}}"#
    );
    registry
        .register(
            &Registration::parse(registration.as_bytes(), &registry.limits()).unwrap(),
            now_unix_s(),
        )
        .await
        .unwrap();
    let empty = ScrapeConfigFile::parse(
        "scrape_configs: []\n",
        std::path::Path::new("/"),
        &ScrapeLimits::default(),
    )
    .unwrap();
    let settings = RegistryScrape {
        interval: std::time::Duration::from_secs(60),
        ..RegistryScrape::default()
    };
    let ingest = dyn_ingest(stream.clone(), IngestLimits::default());
    let ledger = DynamoSlotLedger::new(&config, tables.state.clone());
    let scraper = Scraper::new().unwrap();

    let job = registry_job(&registry, &settings, now_unix_s())
        .await
        .unwrap();
    let plan = with_job(&empty, job);
    assert_eq!(plan.jobs.len(), 1, "the registry job");
    let first = run_invocation(&plan, &scraper, &ingest, &ledger, minute, |_| async {}).await;
    assert_eq!(
        (first.scraped, first.up, first.failed.len()),
        (1, 1, 0),
        "{first:?}"
    );
    // The function records the scraped source on the instance, as local mode's scrape loop does.
    assert_eq!(first.scraped_instances.len(), 1, "{first:?}");
    assert_eq!(
        record_scraped(&registry, &first.scraped_instances, now_unix_s()).await,
        1,
        "a new scraped record"
    );
    let instances = registry.instances(now_unix_s()).await.unwrap();
    let instance = instances
        .iter()
        .find(|i| i.service == service && i.instance == "b-1")
        .expect("the instance is listed");
    assert_eq!(
        instance.sources,
        vec![InstanceSource::Registered, InstanceSource::Scraped],
        "{instance:?}"
    );
    let records = ingest.stats().stream_records as usize;
    let repeat = run_invocation(&plan, &scraper, &ingest, &ledger, minute + 10, |_| async {}).await;
    assert_eq!((repeat.scraped, repeat.already_done), (0, 1), "{repeat:?}");
    assert_eq!(
        ingest.stats().stream_records as usize,
        records,
        "nothing more written"
    );

    // Through the aggregator into DynamoDB, under the instance's service.
    let store = Arc::new(DynamoStore::new(&config, tables.clone()));
    let aggregator = Aggregator::new(store.clone(), Retention::default());
    let shard = stream.shard_ids().await.unwrap().remove(0);
    let read = read_shard(stream.as_ref(), &shard, records).await;
    let response = handle_kinesis_event(&aggregator, None, kinesis_event(&read))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let api = ApiState::new(
        store.clone(),
        Arc::new(DynamoAlertStore::new(&config, tables.alerts.clone())),
        Arc::new(RuleSet::shipped().unwrap()),
    );
    let now = now_unix_s();
    let response = query_function(
        &api,
        &api_keys(),
        api_get(
            &format!("/api/services/{service}/metrics/jobs_total"),
            &format!("from={}&to={}&resolution=1m", now - 3600, now + 600),
            API_KEY,
        ),
    )
    .await;
    let history = json_body(&response);
    assert_eq!(response.status(), 200, "{history}");
    let sum: f64 = history["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sum"].as_f64().unwrap())
        .sum();
    assert_eq!(sum, 3.0, "the counter, once, under {service}: {history}");

    stream.delete_if_present().await.unwrap();
    delete_tables_if_present(&config, &tables).await.unwrap();
}
