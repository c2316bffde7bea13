//! Reading SDK errors: the service's error code and a message with the whole cause chain.
//!
//! Every SDK crate uses the same smithy error types, so these helpers serve Kinesis, DynamoDB, SQS,
//! SSM and API Gateway alike.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Error codes that mean "too much, slow down" rather than "broken".
const THROTTLING_CODES: [&str; 7] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "LimitExceededException",
    "KMSThrottlingException",
    "TooManyRequestsException",
];

/// The service's error code (`ConditionalCheckFailedException`, …), when the service answered.
pub(crate) fn code<E, R>(error: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

pub(crate) fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

pub(crate) fn is_throttling<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    code(error).is_some_and(is_throttling_code)
}

/// The error with its causes ("dispatch failure: io error: connection refused"), for messages.
pub(crate) fn describe<E, R>(operation: &str, error: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!("{operation}: {}", DisplayErrorContext(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_told_apart_from_failures() {
        assert!(is_throttling_code("ProvisionedThroughputExceededException"));
        assert!(is_throttling_code("ThrottlingException"));
        assert!(!is_throttling_code("ConditionalCheckFailedException"));
        assert!(!is_throttling_code("ResourceNotFoundException"));
    }
}
