//! AWS adapters of the ports: Kinesis ([`kinesis::KinesisStream`]), DynamoDB
//! ([`dynamodb::DynamoStore`], [`dynamodb::DynamoConnections`], [`dynamodb::DynamoTraceStore`],
//! [`dynamodb::DynamoAlertStore`]) and the API Gateway management API
//! ([`apigw::ApiGatewayPusher`]), plus the Lambda event plumbing ([`lambda`], feature `lambda`).
//!
//! Nothing here names an endpoint: [`config::load`] honours `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>`, so the same code talks to AWS, LocalStack, DynamoDB Local and
//! kinesis-mock.

pub mod apigw;
pub mod config;
pub mod dynamodb;
mod errors;
pub mod kinesis;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod retry;

pub use apigw::ApiGatewayPusher;
pub use dynamodb::{
    create_tables_if_missing, delete_tables_if_present, DynamoAlertStore, DynamoConnections,
    DynamoLiveEvents, DynamoRegistryStore, DynamoSeriesAdmission, DynamoStore, DynamoTraceStore,
    TableNames,
};
pub use kinesis::KinesisStream;
pub use retry::RetryPolicy;
