//! Flags and environment of `flowscope local`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use flowscope_core::auth::ApiKeys;
use flowscope_core::cardinality::SeriesLimits;
use flowscope_core::model::Retention;

#[derive(clap::Args, Debug, Clone)]
pub struct LocalArgs {
    /// Address of the OTLP/HTTP receiver.
    #[arg(long, env = "FLOWSCOPE_OTLP_ADDR", default_value = "127.0.0.1:4318")]
    pub otlp_addr: SocketAddr,
    /// Address of the dashboard, query API and WebSocket (the local API Gateway).
    #[arg(long, env = "FLOWSCOPE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Where the stream log and the store live; data survives restarts.
    #[arg(long, env = "FLOWSCOPE_DATA_DIR", default_value = ".flowscope")]
    pub data_dir: PathBuf,
    /// The built dashboard (`npm run build` in dashboard/).
    #[arg(
        long,
        env = "FLOWSCOPE_DASHBOARD_DIR",
        default_value = "dashboard/dist"
    )]
    pub dashboard_dir: PathBuf,
    /// Shards of the embedded stream (parallel aggregation lanes).
    #[arg(long, env = "FLOWSCOPE_SHARDS", default_value_t = 4)]
    pub shards: u32,
    /// Largest OTLP request body accepted, in bytes (compressed size).
    #[arg(long, env = "FLOWSCOPE_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Require this token on WebSocket connections (`?token=`); the served dashboard is given it.
    #[arg(long, env = "FLOWSCOPE_TOKEN")]
    pub token: Option<String>,
    /// Use the AWS adapters (Kinesis, DynamoDB, API Gateway management) against `AWS_ENDPOINT_URL`
    /// — emulators, LocalStack or a real account — instead of the embedded ones. Needs a build
    /// with `--features aws`.
    #[arg(long, env = "FLOWSCOPE_AWS")]
    pub aws: bool,
    /// With `--aws`: prefix of the stream and table names (`<prefix>-points`, `<prefix>-buckets`, …).
    #[arg(long, env = "FLOWSCOPE_AWS_PREFIX", default_value = "flowscope-local")]
    pub aws_prefix: String,
    /// Alert rules (YAML). Default: `infra/alert-rules.yaml` when it exists, else the built-in
    /// copy of the shipped defaults.
    #[arg(long, env = "FLOWSCOPE_ALERT_RULES")]
    pub alert_rules: Option<PathBuf>,
    /// Active series a service may have; points of further new series are refused (partial success).
    #[arg(long, env = "FLOWSCOPE_MAX_SERIES_PER_SERVICE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_series_per_service: u32,
    /// Active series one metric of a service may have.
    #[arg(long, env = "FLOWSCOPE_MAX_SERIES_PER_METRIC", default_value_t = 2_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_series_per_metric: u32,
    /// A series not seen for this long stops counting against the series limits (e.g. 1h, 30m).
    #[arg(long, env = "FLOWSCOPE_SERIES_ACTIVE_WINDOW", default_value = "1h")]
    pub series_active_window: String,
    /// Retention of 1-minute buckets (e.g. 7d, 12h).
    #[arg(long, env = "FLOWSCOPE_RETENTION_1M", default_value = "7d")]
    pub retention_1m: String,
    /// Retention of 5-minute buckets.
    #[arg(long, env = "FLOWSCOPE_RETENTION_5M", default_value = "30d")]
    pub retention_5m: String,
    /// Retention of 1-hour buckets.
    #[arg(long, env = "FLOWSCOPE_RETENTION_1H", default_value = "365d")]
    pub retention_1h: String,
}

impl LocalArgs {
    pub fn retention(&self) -> anyhow::Result<Retention> {
        Ok(Retention {
            one_minute_seconds: parse_duration_seconds(&self.retention_1m)
                .context("--retention-1m")?,
            five_minutes_seconds: parse_duration_seconds(&self.retention_5m)
                .context("--retention-5m")?,
            one_hour_seconds: parse_duration_seconds(&self.retention_1h)
                .context("--retention-1h")?,
        })
    }

    pub fn series_limits(&self) -> anyhow::Result<SeriesLimits> {
        Ok(SeriesLimits {
            max_series_per_service: self.max_series_per_service,
            max_series_per_metric: self.max_series_per_metric,
            active_window_seconds: parse_duration_seconds(&self.series_active_window)
                .context("--series-active-window")?,
        })
    }

    pub fn ws_keys(&self) -> anyhow::Result<ApiKeys> {
        Ok(match &self.token {
            Some(token) if !token.is_empty() => ApiKeys::from_clear_keys([token.as_str()]),
            _ => ApiKeys::default(),
        })
    }
}

/// `45s`, `90m`, `12h`, `7d`, `1y` → seconds.
pub fn parse_duration_seconds(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 45s, 90m, 12h, 7d or 1y"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "y" => 365 * 86_400,
        _ => anyhow::bail!("{text:?} is not a duration like 45s, 90m, 12h, 7d or 1y"),
    };
    anyhow::ensure!(n > 0, "duration {text:?} must be positive");
    Ok(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_nonsense() {
        assert_eq!(parse_duration_seconds("45s").unwrap(), 45);
        assert_eq!(parse_duration_seconds("7d").unwrap(), 7 * 86_400);
        assert_eq!(parse_duration_seconds("1y").unwrap(), 365 * 86_400);
        assert!(parse_duration_seconds("7").is_err());
        assert!(parse_duration_seconds("d").is_err());
        assert!(parse_duration_seconds("0h").is_err());
        assert!(parse_duration_seconds("3w").is_err());
    }
}
