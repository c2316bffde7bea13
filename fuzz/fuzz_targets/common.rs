// Shared by the OTLP targets: the receiver's default limits at a fixed clock.
use flowscope_core::model::Retention;
use flowscope_core::otlp::{PointLimits, TimeLimit};

pub fn limits() -> PointLimits {
    PointLimits {
        time: TimeLimit {
            now_unix_nano: 1_765_000_000_000_000_000,
            max_skew_nanos: 300_000_000_000,
            retention: Retention::default(),
        },
        max_attributes: 128,
        max_attribute_value_bytes: 4096,
        max_items_per_request: 100_000,
    }
}
