//! Stored bucket items of the embedded store (a damaged or foreign file), and the quantile sketch
//! inside them; a decoded item round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowscope_core::embedded::store::fuzz_bucket_item(data);
    if let Ok(sketch) = flowscope_core::sketch::Sketch::from_bytes(data) {
        let _ = sketch.quantile(0.99);
        let _ = flowscope_core::sketch::Sketch::from_bytes(&sketch.to_bytes());
    }
});
