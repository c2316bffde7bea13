//! Flowscope's figures about itself on AWS: CloudWatch Embedded Metric Format log lines ([`emf`]),
//! the counterpart of local mode's `GET /metrics` (`cli/src/local/metrics.rs`). One JSON line per
//! invocation carries all of an invocation's figures; CloudWatch extracts them from the log group,
//! with no API call per metric.

pub mod emf;
