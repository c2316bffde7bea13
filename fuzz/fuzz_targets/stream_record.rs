//! Stream records as the aggregator reads them off Kinesis or the stream log (`record::decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flowscope_core::record::decode(data);
});
