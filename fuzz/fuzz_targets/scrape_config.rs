//! Scrape configuration files (Prometheus `scrape_configs` YAML), as `--scrape-config` reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = flowscope_core::scrape::config::ScrapeConfigFile::parse(
            text,
            std::path::Path::new("/nonexistent"),
            &flowscope_core::scrape::config::ScrapeLimits::default(),
        );
    }
});
