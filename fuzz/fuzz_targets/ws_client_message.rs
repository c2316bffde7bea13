//! WebSocket client messages (subscribe, resume, ping …) as `$default` parses them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<flowscope_core::live::ClientMessage>(text);
    }
});
