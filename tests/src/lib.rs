//! Shared helpers of Flowscope's end-to-end tests of the AWS path: Lambda handlers fed real Lambda
//! event shapes, Kinesis and DynamoDB on emulators (`source "$(scripts/emulators.sh env)"`), and a
//! scripted fake Kinesis endpoint on 127.0.0.1 for the failure modes emulators cannot produce.

pub mod events;
pub mod fake_kinesis;
pub mod otlp;
pub mod pusher;
pub mod shard;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use flowscope_core::auth::ApiKeys;
use flowscope_core::aws::{config, create_tables_if_missing, KinesisStream, TableNames};

/// The clear-text key the tests present; the handlers only know its hash.
pub const API_KEY: &str = "flowscope-integration-test-key";

pub fn api_keys() -> ApiKeys {
    ApiKeys::from_clear_keys([API_KEY])
}

/// A name no other run uses (the emulators are shared and long-lived).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

pub fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The emulator configuration when both DynamoDB's and Kinesis's endpoints are overridden; otherwise
/// fails `test`, so a run without emulators never reaches AWS and never passes unrun.
pub async fn emulators(test: &str) -> Option<SdkConfig> {
    if !(config::endpoint_configured("dynamodb") && config::endpoint_configured("kinesis")) {
        skip(
            test,
            "set AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_KINESIS \
             (scripts/emulators.sh start; source \"$(scripts/emulators.sh env)\")",
        );
        return None;
    }
    Some(config::load_for_emulators().await)
}

/// Fails `test`, which needs the emulators: the emulator tests are built only with the
/// `emulator-tests` feature (`scripts/aws-tests.sh`), so none is ever reported as passed unrun.
pub fn skip(test: &str, how_to_run: &str) {
    panic!("{test} needs the emulators: {how_to_run}");
}

/// A one-shard stream `<prefix>-points` (as in the default stack: every record lands in one batch)
/// and the tables `<prefix>-*`, created on the emulators for one test.
pub async fn stream_and_tables(
    config: &SdkConfig,
    prefix: &str,
) -> (Arc<KinesisStream>, TableNames) {
    let stream = KinesisStream::new(config, format!("{prefix}-points"));
    stream
        .create_if_missing(1, Duration::from_secs(60))
        .await
        .expect("create the stream");
    let tables = TableNames::with_prefix(prefix);
    create_tables_if_missing(config, &tables)
        .await
        .expect("create the tables");
    (Arc::new(stream), tables)
}
