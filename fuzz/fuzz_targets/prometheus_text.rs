//! Prometheus text 0.0.4 and OpenMetrics exposition bodies, as the scraper parses a target's answer.
#![no_main]

use flowscope_core::scrape::parse::{parse, ExpositionFormat, ParseLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits::default();
    let _ = parse(data, ExpositionFormat::Text, &limits);
    let _ = parse(data, ExpositionFormat::OpenMetrics, &limits);
});
