//! Alert rule files (YAML), as `--alert-rules` and the rules API read them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = flowscope_core::alerts::rules::RuleSet::parse(text, "fuzz.yaml");
        let _ = flowscope_core::alerts::rules::parse_duration(text);
    }
});
