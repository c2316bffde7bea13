//! Flags of the query routes' circuit breaker and stale-answer cache (issue 15 item 7b): see
//! `flowscope_core::http::breaker` and `flowscope_core::http::caching`.

use std::time::Duration;

use flowscope_core::http::breaker::BreakerSettings;

#[derive(clap::Args, Debug, Clone)]
pub struct QueryStoreArgs {
    /// One store read of a query may take this long; then it fails (and counts against the breaker).
    #[arg(long, env = "FLOWSCOPE_QUERY_STORE_TIMEOUT", default_value = "2s",
          value_parser = positive_duration)]
    pub query_store_timeout: Duration,
    /// Failed store reads in a row that open the circuit breaker (queries then answer from recent
    /// results, marked stale, without calling the store).
    #[arg(long, env = "FLOWSCOPE_QUERY_BREAKER_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub query_breaker_failures: u32,
    /// How long the breaker stays open before half-open probes; doubles while probes fail, up to
    /// `--query-breaker-open-max`.
    #[arg(long, env = "FLOWSCOPE_QUERY_BREAKER_OPEN", default_value = "5s",
          value_parser = positive_duration)]
    pub query_breaker_open: Duration,
    #[arg(long, env = "FLOWSCOPE_QUERY_BREAKER_OPEN_MAX", default_value = "60s",
          value_parser = positive_duration)]
    pub query_breaker_open_max: Duration,
    /// Recent query answers kept to serve, marked stale, while the store fails (0: none).
    #[arg(long, env = "FLOWSCOPE_QUERY_STALE_ENTRIES", default_value_t = 256,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    pub query_stale_entries: usize,
    /// Bytes of those answers at most.
    #[arg(long, env = "FLOWSCOPE_QUERY_STALE_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=4 * 1024 * 1024 * 1024))]
    pub query_stale_bytes: usize,
}

impl QueryStoreArgs {
    pub fn breaker(&self) -> BreakerSettings {
        BreakerSettings {
            timeout: self.query_store_timeout,
            consecutive_failures: self.query_breaker_failures,
            open_for: self.query_breaker_open,
            open_for_max: self.query_breaker_open_max,
            ..BreakerSettings::default()
        }
    }
}

/// A humantime duration from 1 ms to 1 h.
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_millis(1) || duration > Duration::from_secs(3600) {
        return Err(format!("{text} is outside 1ms … 1h"));
    }
    Ok(duration)
}
