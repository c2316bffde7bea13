//! OTLP/HTTP Protobuf bodies of all three signals, as the receiver decodes them (metrics in chunks,
//! as `Ingest` does), and gzip-compressed ones through the receiver's decompression bound.
#![no_main]

use flowscope_core::otlp::{self, Format};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let format = Format::Protobuf;
    let limits = common::limits();
    if let Ok(mut chunked) = otlp::decode_metrics_in_chunks(format, data, limits, 64) {
        while chunked.next_chunk() {
            let _ = flowscope_core::record::encode_metrics(&chunked.decoded.points);
        }
        let _ = chunked.finish();
    }
    if let Ok(spans) = otlp::decode_traces(format, data, limits) {
        let _ = flowscope_core::record::encode_spans(&spans.spans);
    }
    let _ = otlp::decode_logs(format, data);
    let _ = otlp::decompress(Some("gzip"), data, 1 << 20);
});
