//! Stored bucket items of the embedded store (a damaged or foreign file), and the quantile sketch
//! inside them; a decoded item round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `Sketch::from_bytes` catches a panic of the third-party DDSketch decoder and reports the
    // bytes as malformed. libfuzzer-sys's panic hook aborts before any unwinding, which would
    // report that handled panic as a crash: print instead. A panic nobody catches still reaches
    // libfuzzer-sys's own catch_unwind around this closure, which aborts (a crash).
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    flowscope_core::embedded::store::fuzz_bucket_item(data);
    if let Ok(sketch) = flowscope_core::sketch::Sketch::from_bytes(data) {
        let _ = sketch.quantile(0.99);
        let _ = flowscope_core::sketch::Sketch::from_bytes(&sketch.to_bytes());
    }
});
