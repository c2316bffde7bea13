//! Scheduled (EventBridge, every minute): evaluate the alert rules against the buckets, notify the
//! configured sinks, push `alert` events to subscribed WebSocket clients.
//!
//! Env: `BUCKETS_TABLE`, `SERIES_TABLE`, `ALERTS_TABLE`, `CONNECTIONS_TABLE`, `WS_MANAGEMENT_ENDPOINT`;
//! sink URLs named by the rules' `url_env`; the Jira sink's `FLOWSCOPE_JIRA_*` and its token from the
//! SSM SecureString parameter named by `FLOWSCOPE_JIRA_TOKEN_PARAMETER`. Rules: the version put through `PUT /api/alert-rules` (alerts
//! table), loaded at every run; until then `infra/alert-rules.yaml`, compiled in.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use flowscope_core::alerts::{webhook, RuleSet, RuleSource};
use flowscope_core::aws::lambda::alerts::AlertsFunction;
use flowscope_core::aws::lambda::keys::secret_from_parameter;
use flowscope_core::aws::lambda::now_unix_s;
use flowscope_core::aws::{
    config, ApiGatewayPusher, DynamoAlertStore, DynamoConnections, DynamoStore, TableNames,
};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

const JIRA_TOKEN_PARAMETER: &str = "FLOWSCOPE_JIRA_TOKEN_PARAMETER";
const JIRA_TOKEN: &str = "FLOWSCOPE_JIRA_TOKEN";

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::load().await;
    let tables = TableNames::from_env();
    let metrics = Arc::new(DynamoStore::new(&config, tables.clone()));
    let alerts = Arc::new(DynamoAlertStore::new(&config, tables.alerts.clone()));
    // The rules: the version put through `PUT /api/alert-rules` (alerts table), loaded at every
    // run; the compiled-in rules until one was put.
    let source = RuleSource::new(alerts.clone(), Arc::new(RuleSet::shipped()?));
    let sink_state: Arc<dyn flowscope_core::ports::SinkStateStore> = alerts.clone();
    // The Jira token comes from the SecureString parameter named by FLOWSCOPE_JIRA_TOKEN_PARAMETER
    // (read once per cold start), else from FLOWSCOPE_JIRA_TOKEN.
    let jira_token = secret_from_parameter(&config, JIRA_TOKEN_PARAMETER).await?;
    let env = move |name: &str| match (name, &jira_token) {
        (JIRA_TOKEN, Some(token)) => Some(token.clone()),
        _ => std::env::var(name).ok(),
    };
    let function = AlertsFunction::new(
        metrics,
        alerts,
        source,
        // Jira's issue per firing service is kept in the alerts table (`pk = sink#jira`).
        Box::new(move |settings| webhook::sinks_with_state(settings, &env, sink_state.clone())),
    )?;
    let connections = DynamoConnections::from_env(&config)?;
    let pusher = ApiGatewayPusher::from_env(&config)?;
    let (function, connections, pusher) = (&function, &connections, &pusher);
    run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            let report = function.run(connections, pusher, now_unix_s()).await?;
            lambda_runtime::tracing::info!(?report, "alerts evaluated");
            Ok::<(), Error>(())
        },
    ))
    .await
}
