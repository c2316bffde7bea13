//! Flags of `flowscope loadgen` and the small parsers they need.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};

use super::model::{PlannedSpike, SpikePlan};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318";
pub const DEFAULT_RATE: u64 = 2000;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_SEED: u64 = 1;
pub const DEFAULT_TRACES_PER_SECOND: f64 = 20.0;

#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct LoadgenArgs {
    /// Base URL of the OTLP/HTTP receiver; `/v1/metrics` and `/v1/traces` are appended.
    #[arg(
        long,
        env = "FLOWSCOPE_OTLP_ENDPOINT",
        default_value = DEFAULT_ENDPOINT
    )]
    pub endpoint: String,
    /// Metric data points per second across all five services; the tick and the number of
    /// series per request are derived from it.
    #[arg(long, default_value_t = DEFAULT_RATE, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// How long to run (e.g. `60s`, `5m`, `1h`); runs until Ctrl-C when absent.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Preferred tick: each service sends one metrics request per tick. Lengthened when `--rate`
    /// is too low to fill one request, shortened when one request would grow too large.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Seed of every random choice (spikes, trends, traffic, traces): same seed, same run.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Schedule an incident `SERVICE[:START[:DURATION]]` (e.g. `api:30s:90s`; start defaults to
    /// 0s, duration to 60s): 5× latency and a fifth of requests failing. Repeatable.
    #[arg(long = "spike", value_name = "SERVICE[:START[:DURATION]]")]
    pub spikes: Vec<PlannedSpike>,
    /// Only the `--spike` incidents: no random ones (which otherwise hit each service every ~7 min).
    #[arg(long)]
    pub no_random_spikes: bool,
    /// Compress request bodies with gzip (`Content-Encoding: gzip`).
    #[arg(long)]
    pub gzip: bool,
    /// Traces sampled per second (each spans all five services).
    #[arg(long, default_value_t = DEFAULT_TRACES_PER_SECOND, value_parser = parse_non_negative)]
    pub traces_per_second: f64,
    /// Extra request header `K=V`, repeatable (e.g. `--header x-api-key=secret`).
    #[arg(long = "header", value_name = "K=V")]
    pub headers: Vec<HeaderArg>,
    /// No progress line and no final summary on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Benchmark shape instead of the simulated services: this many gauge series, one point each per
    /// `--interval` (10 services, 100 series per metric); `--rate` and traces are ignored.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub gauge_series: Option<u64>,
    /// With `--gauge-series`: also send the same samples in Prometheus text format to this
    /// VictoriaMetrics base URL (`/api/v1/import/prometheus`), for side-by-side memory comparisons.
    #[arg(long, value_name = "URL", requires = "gauge_series")]
    pub prometheus_import: Option<String>,
    /// With `--gauge-series`: every interval sends N series never sent before (the label value
    /// carries the interval's number), an abuse shape for memory bounds; without it the same N
    /// series are sent again each interval.
    #[arg(long, requires = "gauge_series")]
    pub new_series_each_interval: bool,
    /// How often each simulated service pushes a CPU and a heap profile (folded) to `/ingest`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub profile_interval: Duration,
    /// Send no profiles.
    #[arg(long)]
    pub no_profiles: bool,
}

/// The same defaults as the command line, for starting the load generator in-process (tests):
/// `LoadgenArgs { endpoint, duration: Some(..), ..LoadgenArgs::default() }`.
impl Default for LoadgenArgs {
    fn default() -> Self {
        LoadgenArgs {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            rate: DEFAULT_RATE,
            duration: None,
            interval: DEFAULT_INTERVAL,
            seed: DEFAULT_SEED,
            spikes: Vec::new(),
            no_random_spikes: false,
            gzip: false,
            traces_per_second: DEFAULT_TRACES_PER_SECOND,
            headers: Vec::new(),
            quiet: false,
            gauge_series: None,
            prometheus_import: None,
            new_series_each_interval: false,
            profile_interval: Duration::from_secs(10),
            no_profiles: false,
        }
    }
}

impl LoadgenArgs {
    pub fn spike_plan(&self) -> SpikePlan {
        SpikePlan {
            random: !self.no_random_spikes,
            planned: self.spikes.clone(),
        }
    }
}

/// One `--header K=V`, validated as an HTTP header when the flag is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderArg {
    pub name: HeaderName,
    pub value: HeaderValue,
}

impl FromStr for HeaderArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("expected K=V, got {s:?}"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid header name {:?}", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("invalid value for header {name}"))?;
        Ok(HeaderArg { name, value })
    }
}

impl fmt::Display for HeaderArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are often secrets (API keys): never print them.
        write!(f, "{}=<redacted>", self.name)
    }
}

/// Parses `250ms`, `30s`, `5m`, `2h`, `1d`, or a bare number of seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (try 500ms, 30s, 5m, 1h)"))?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("duration {text:?} is out of range"))
}

fn parse_non_negative(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("expected a number >= 0, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    #[test]
    fn durations_accept_the_documented_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-3s").is_err());
    }

    #[test]
    fn headers_parse_as_key_value_and_reject_garbage() {
        let header: HeaderArg = "x-api-key=s3cret".parse().unwrap();
        assert_eq!(header.name.as_str(), "x-api-key");
        assert_eq!(header.value.to_str().unwrap(), "s3cret");
        assert!(!header.to_string().contains("s3cret"));
        assert!("no-equals-sign".parse::<HeaderArg>().is_err());
        assert!("bad header=1".parse::<HeaderArg>().is_err());
    }

    #[test]
    fn flags_parse_with_defaults_and_repeatable_headers() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--rate",
            "500",
            "--duration",
            "10s",
            "--header",
            "a=1",
            "--header",
            "b=2",
            "--gzip",
        ])
        .unwrap();
        assert_eq!(cli.args.rate, 500);
        assert_eq!(cli.args.duration, Some(Duration::from_secs(10)));
        assert_eq!(cli.args.interval, Duration::from_secs(1));
        assert_eq!(cli.args.headers.len(), 2);
        assert!(cli.args.gzip);
        assert!(Cli::try_parse_from(["loadgen", "--rate", "0"]).is_err());

        // In-process callers get exactly what the command line gives without flags.
        let plain = Cli::try_parse_from(["loadgen"]).unwrap().args;
        assert_eq!(
            LoadgenArgs {
                endpoint: plain.endpoint.clone(),
                ..LoadgenArgs::default()
            },
            plain
        );
        assert!(Cli::try_parse_from(["loadgen", "--traces-per-second", "-1"]).is_err());
    }

    #[test]
    fn spikes_parse_with_defaults_and_bad_ones_name_the_problem() {
        use crate::loadgen::model::ServiceName;
        let cli = Cli::try_parse_from([
            "loadgen",
            "--spike",
            "api:30s:90s",
            "--spike",
            "cache",
            "--no-random-spikes",
        ])
        .unwrap();
        let plan = cli.args.spike_plan();
        assert!(!plan.random);
        assert_eq!(
            plan.planned,
            vec![
                PlannedSpike {
                    service: ServiceName::Api,
                    start: Duration::from_secs(30),
                    duration: Duration::from_secs(90),
                },
                PlannedSpike {
                    service: ServiceName::Cache,
                    start: Duration::ZERO,
                    duration: Duration::from_secs(60),
                },
            ]
        );
        assert!(
            Cli::try_parse_from(["loadgen"])
                .unwrap()
                .args
                .spike_plan()
                .random
        );
        for bad in ["checkout", "api:soon", "api:0s:0s", "api:1s:2s:3s"] {
            let error = Cli::try_parse_from(["loadgen", "--spike", bad])
                .unwrap_err()
                .to_string();
            assert!(error.contains("--spike"), "{bad}: {error}");
        }
        let error = Cli::try_parse_from(["loadgen", "--spike", "checkout"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("one of auth, api, database, cache, queue"),
            "{error}"
        );
    }
}
