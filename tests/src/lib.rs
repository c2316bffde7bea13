//! Shared helpers of Flowscope's end-to-end tests of the AWS path: Lambda handlers fed real Lambda
//! event shapes, Kinesis and DynamoDB on emulators (`source "$(scripts/emulators.sh env)"`), and a
//! scripted fake Kinesis endpoint on 127.0.0.1 for the failure modes emulators cannot produce.

pub mod events;
pub mod fake_kinesis;
pub mod otlp;
pub mod pusher;

use std::io::Write;

use aws_config::SdkConfig;
use flowscope_core::auth::ApiKeys;
use flowscope_core::aws::config;

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
/// prints that `test` was skipped and returns `None`, so a run without emulators never reaches AWS.
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

/// Set (to anything) where the emulators must be there, e.g. CI's emulator stage: a missing
/// endpoint then fails the test instead of skipping it.
pub const REQUIRE_EMULATORS: &str = "FLOWSCOPE_REQUIRE_EMULATORS";

/// Says on the terminal that `test` did not run, or fails it when [`REQUIRE_EMULATORS`] is set.
pub fn skip(test: &str, how_to_run: &str) {
    if std::env::var_os(REQUIRE_EMULATORS).is_some() {
        panic!("{test} needs the emulators ({REQUIRE_EMULATORS} is set): {how_to_run}");
    }
    // Straight to the terminal: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {how_to_run}");
}
