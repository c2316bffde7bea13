//! Prometheus's own configuration syntax for scraping, so that a user's `prometheus.yml` works as is.
//!
//! Read: `global.scrape_interval`, `global.scrape_timeout`, and per `scrape_configs[]` entry
//! `job_name`, `scrape_interval`, `scrape_timeout`, `metrics_path`, `scheme`, `params`,
//! `honor_timestamps`, `static_configs` (`targets`, `labels`), `file_sd_configs` (`files` with `*`
//! globs in the file name, `refresh_interval`), `http_sd_configs` (`url`, `refresh_interval`),
//! `relabel_configs` (actions `replace`, `keep`, `drop`, `labelmap`, `labeldrop`, `labelkeep`) and the
//! per-job limits `sample_limit`, `label_limit`, `label_name_length_limit`,
//! `label_value_length_limit`, `body_size_limit`. Every other key (`rule_files`, `alerting`,
//! `remote_write`, `metric_relabel_configs`, `basic_auth`, …) is reported as a warning naming its
//! path and ignored. A file that is not valid YAML, or a known key with a bad value (a duration, a
//! regex, a duplicate `job_name`), is refused with its line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};

use super::mapping::TargetLabels;
use super::parse::ParseLimits;

/// Defaults when neither the job nor `global` says: the issue's 30 s interval, Prometheus's 10 s
/// timeout (never above the interval).
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// File and HTTP service discovery re-read interval (Prometheus: 5 m and 60 s).
pub const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(300);
pub const DEFAULT_HTTP_SD_REFRESH: Duration = Duration::from_secs(60);

/// Why a configuration was refused; `Display` gives `FILE:LINE:COLUMN: message` when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location.map(|(l, c)| format!("{l}:{c}: ")).unwrap_or_default())]
pub struct ConfigError {
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    fn plain(message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: None,
            message: message.into(),
        }
    }
}

/// Overall limits that also serve as ceilings for the per-job ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeLimits {
    pub parse: ParseLimits,
    /// Bytes of one scrape's answer (uncompressed); beyond it the scrape fails.
    pub max_body_bytes: usize,
}

impl Default for ScrapeLimits {
    fn default() -> Self {
        ScrapeLimits {
            parse: ParseLimits::default(),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    scrape_configs: Vec<RawScrapeConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawGlobal {
    #[serde(default, deserialize_with = "duration")]
    scrape_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    scrape_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawScrapeConfig {
    job_name: String,
    #[serde(default, deserialize_with = "duration")]
    scrape_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    scrape_timeout: Option<Duration>,
    #[serde(default)]
    metrics_path: Option<String>,
    #[serde(default)]
    scheme: Option<Scheme>,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    honor_timestamps: Option<bool>,
    #[serde(default)]
    static_configs: Vec<RawGroup>,
    #[serde(default)]
    file_sd_configs: Vec<RawFileSd>,
    #[serde(default)]
    http_sd_configs: Vec<RawHttpSd>,
    #[serde(default)]
    relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    sample_limit: Option<usize>,
    #[serde(default)]
    label_limit: Option<usize>,
    #[serde(default)]
    label_name_length_limit: Option<usize>,
    #[serde(default)]
    label_value_length_limit: Option<usize>,
    #[serde(default, deserialize_with = "byte_size")]
    body_size_limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A target group as static configs, file SD and HTTP SD give it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TargetGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawFileSd {
    files: Vec<String>,
    #[serde(default, deserialize_with = "duration")]
    refresh_interval: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawHttpSd {
    url: String,
    #[serde(default, deserialize_with = "duration")]
    refresh_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    #[default]
    Replace,
    Keep,
    Drop,
    Labelmap,
    Labeldrop,
    Labelkeep,
}

/// One `relabel_configs` entry, its regex compiled (anchored, as Prometheus anchors it).
#[derive(Debug, Clone, Deserialize)]
pub struct RelabelConfig {
    #[serde(default)]
    source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    separator: String,
    #[serde(default)]
    target_label: Option<String>,
    #[serde(default = "default_regex", deserialize_with = "anchored_regex")]
    regex: regex::Regex,
    #[serde(default = "default_replacement")]
    replacement: String,
    #[serde(default)]
    action: RelabelAction,
}

fn default_separator() -> String {
    ";".to_string()
}
fn default_replacement() -> String {
    "$1".to_string()
}
fn default_regex() -> regex::Regex {
    #[allow(clippy::unwrap_used)] // a constant pattern
    regex::Regex::new("^(?:(.*))$").unwrap()
}

fn anchored_regex<'de, D: Deserializer<'de>>(d: D) -> Result<regex::Regex, D::Error> {
    let pattern = String::deserialize(d)?;
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| serde::de::Error::custom(format!("invalid regex {pattern:?}: {e}")))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    // Prometheus durations (`15s`, `1m30s`, `500ms`) are humantime's too.
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({e}): write e.g. 15s, 1m or 500ms"
        ))
    })?;
    if parsed.is_zero() {
        return Err(serde::de::Error::custom(format!(
            "duration {text:?} must be above zero"
        )));
    }
    Ok(Some(parsed))
}

/// `body_size_limit`: Prometheus's units (`10MB`, `512KiB`, bytes as a number).
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(usize),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Number(n) => return Ok(Some(n)),
        Raw::Text(t) => t,
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        _ => {
            return Err(serde::de::Error::custom(format!(
                "invalid size {text:?} (use e.g. 10MB)"
            )))
        }
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid size {text:?}")))
}

/// A job, ready to resolve targets from its sources.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    pub job_name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub metrics_path: String,
    pub scheme: Scheme,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_timestamps: bool,
    pub static_groups: Vec<TargetGroup>,
    pub file_sd: Vec<FileSd>,
    pub http_sd: Vec<HttpSd>,
    pub relabel: Vec<RelabelConfig>,
    pub limits: ScrapeLimits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSd {
    pub files: Vec<PathBuf>,
    pub refresh_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSd {
    pub url: String,
    pub refresh_interval: Duration,
}

/// A parsed configuration and what in it was ignored.
#[derive(Debug, Clone)]
pub struct ScrapeConfigFile {
    pub jobs: Vec<ScrapeJob>,
    /// `path: unknown key, ignored` lines.
    pub warnings: Vec<String>,
}

impl ScrapeConfigFile {
    /// Reads and checks a file; relative `file_sd_configs` paths are taken from the file's folder.
    pub fn load(path: &Path, ceilings: &ScrapeLimits) -> Result<ScrapeConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::plain(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        ScrapeConfigFile::parse(&text, base, ceilings)
    }

    pub fn parse(
        text: &str,
        base_dir: &Path,
        ceilings: &ScrapeLimits,
    ) -> Result<ScrapeConfigFile, ConfigError> {
        // serde_ignored reports every key the structs below do not read, with its path; errors keep
        // serde_yaml_ng's line and column (no `#[serde(flatten)]`, which would buffer and lose them).
        let mut warnings = Vec::new();
        let raw: RawFile =
            serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(text), |path| {
                let path = path.to_string().replace("?.", "");
                warnings.push(format!("{path}: not supported, ignored"))
            })
            .map_err(|e: serde_yaml_ng::Error| {
                let reported = e.location().map(|l| (l.line(), l.column()));
                ConfigError {
                    location: refine_location(text, reported, &e.to_string()),
                    message: e.to_string(),
                }
            })?;
        let global = raw.global.unwrap_or_default();
        let global_interval = global.scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL);
        let global_timeout = global.scrape_timeout.unwrap_or(DEFAULT_SCRAPE_TIMEOUT);
        let mut jobs: Vec<ScrapeJob> = Vec::new();
        for (i, job) in raw.scrape_configs.into_iter().enumerate() {
            let at = format!("scrape_configs[{i}] ({:?})", job.job_name);
            let locate = |message: String| ConfigError {
                location: text_location(text, &job.job_name),
                message: format!("{at}: {message}"),
            };
            if job.job_name.is_empty() {
                return Err(locate("job_name is empty".to_string()));
            }
            if jobs.iter().any(|j| j.job_name == job.job_name) {
                return Err(locate("duplicate job_name".to_string()));
            }
            let interval = job.scrape_interval.unwrap_or(global_interval);
            let timeout = job.scrape_timeout.unwrap_or(global_timeout.min(interval));
            if timeout > interval {
                return Err(locate(format!(
                    "scrape_timeout {} is longer than scrape_interval {}",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                )));
            }
            let metrics_path = job.metrics_path.unwrap_or_else(|| "/metrics".to_string());
            if !metrics_path.starts_with('/') {
                return Err(locate(format!(
                    "metrics_path {metrics_path:?} must start with '/'"
                )));
            }
            let mut file_sd = Vec::new();
            for sd in job.file_sd_configs {
                file_sd.push(FileSd {
                    files: sd.files.iter().map(|p| base_dir.join(p)).collect(),
                    refresh_interval: sd.refresh_interval.unwrap_or(DEFAULT_FILE_SD_REFRESH),
                });
            }
            let mut http_sd = Vec::new();
            for (h, sd) in job.http_sd_configs.into_iter().enumerate() {
                if !(sd.url.starts_with("http://") || sd.url.starts_with("https://")) {
                    return Err(locate(format!(
                        "http_sd_configs[{h}].url must start with http:// or https://"
                    )));
                }
                http_sd.push(HttpSd {
                    url: sd.url,
                    refresh_interval: sd.refresh_interval.unwrap_or(DEFAULT_HTTP_SD_REFRESH),
                });
            }
            for (r, relabel) in job.relabel_configs.iter().enumerate() {
                let needs_target = relabel.action == RelabelAction::Replace;
                if needs_target && relabel.target_label.is_none() {
                    return Err(locate(format!(
                        "relabel_configs[{r}]: action replace needs target_label"
                    )));
                }
            }
            // A job's limit can lower the flag's, never raise it (0 means "no limit of its own").
            let lower = |job: Option<usize>, ceiling: usize| match job {
                Some(n) if n > 0 => n.min(ceiling),
                _ => ceiling,
            };
            let limits = ScrapeLimits {
                parse: ParseLimits {
                    max_samples: lower(job.sample_limit, ceilings.parse.max_samples),
                    max_labels_per_sample: lower(
                        job.label_limit,
                        ceilings.parse.max_labels_per_sample,
                    ),
                    max_label_name_bytes: lower(
                        job.label_name_length_limit,
                        ceilings.parse.max_label_name_bytes,
                    ),
                    max_label_value_bytes: lower(
                        job.label_value_length_limit,
                        ceilings.parse.max_label_value_bytes,
                    ),
                },
                max_body_bytes: lower(job.body_size_limit, ceilings.max_body_bytes),
            };
            jobs.push(ScrapeJob {
                job_name: job.job_name,
                interval,
                timeout,
                metrics_path,
                scheme: job.scheme.unwrap_or(Scheme::Http),
                params: job.params,
                honor_timestamps: job.honor_timestamps.unwrap_or(true),
                static_groups: job
                    .static_configs
                    .into_iter()
                    .map(|g| TargetGroup {
                        targets: g.targets,
                        labels: g.labels,
                    })
                    .collect(),
                file_sd,
                http_sd,
                relabel: job.relabel_configs,
                limits,
            });
        }
        Ok(ScrapeConfigFile { jobs, warnings })
    }
}

/// serde_yaml_ng places errors raised by a field's own deserializer (a bad duration, regex or size)
/// at the start of the enclosing mapping; those messages quote the bad value (`invalid duration
/// "5 parsecs"`), so the value itself is looked up from there on to point at its line and column.
fn refine_location(
    text: &str,
    reported: Option<(usize, usize)>,
    message: &str,
) -> Option<(usize, usize)> {
    let (line, _) = reported?;
    let quoted = message
        .find("invalid ")
        .and_then(|at| message[at..].split_once('"'))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value)
        .filter(|v| !v.is_empty());
    let Some(value) = quoted else {
        return reported;
    };
    for (i, candidate) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        if let Some(col) = candidate.find(value) {
            return Some((i + 1, col + 1));
        }
    }
    reported
}

/// Where `job_name: <name>` is written (1-based line and column), for errors found after parsing.
fn text_location(text: &str, job_name: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        if let Some(col) = line.find("job_name") {
            let rest = &line[col..];
            if rest.contains(job_name) {
                return Some((i + 1, col + 1));
            }
        }
    }
    None
}

/// One target to scrape: where, how often, and the labels its samples get.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub job_name: String,
    pub url: String,
    pub labels: TargetLabels,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_timestamps: bool,
    pub limits: ScrapeLimits,
}

impl Target {
    /// Identity for the scrape loop: a target whose URL and labels are unchanged keeps its loop.
    pub fn key(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}|{}|{}", self.job_name, self.url, labels.join(","))
    }
}

/// Where target groups come from. Static configs, file SD and HTTP SD implement it; the service
/// registry (instances registered with a metrics URL) can implement it too and be added per job.
#[async_trait]
pub trait ScrapeTargetSource: Send + Sync {
    /// The groups as of now; an error keeps the previous groups of this source in force.
    async fn groups(&self) -> Result<Vec<TargetGroup>, String>;
    /// How often to ask again (static sources: never, `None`).
    fn refresh_interval(&self) -> Option<Duration>;
    fn describe(&self) -> String;
}

pub struct StaticSource(pub Vec<TargetGroup>);

#[async_trait]
impl ScrapeTargetSource for StaticSource {
    async fn groups(&self) -> Result<Vec<TargetGroup>, String> {
        Ok(self.0.clone())
    }
    fn refresh_interval(&self) -> Option<Duration> {
        None
    }
    fn describe(&self) -> String {
        "static_configs".to_string()
    }
}

/// `file_sd_configs`: JSON or YAML files of target groups; `*` in a file name is a glob.
pub struct FileSource(pub FileSd);

#[async_trait]
impl ScrapeTargetSource for FileSource {
    async fn groups(&self) -> Result<Vec<TargetGroup>, String> {
        let mut out = Vec::new();
        for pattern in &self.0.files {
            for path in expand_glob(pattern)? {
                let text = tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                // YAML is a superset of JSON: one parser reads both.
                let mut groups: Vec<TargetGroup> = serde_yaml_ng::from_str(&text).map_err(|e| {
                    let at = e
                        .location()
                        .map(|l| format!(":{}:{}", l.line(), l.column()))
                        .unwrap_or_default();
                    format!("{}{at}: {e}", path.display())
                })?;
                for group in &mut groups {
                    group
                        .labels
                        .insert("__meta_filepath".into(), path.display().to_string());
                }
                out.extend(groups);
            }
        }
        Ok(out)
    }
    fn refresh_interval(&self) -> Option<Duration> {
        Some(self.0.refresh_interval)
    }
    fn describe(&self) -> String {
        format!("file_sd_configs {:?}", self.0.files)
    }
}

/// A path whose file name may hold `*` wildcards (Prometheus allows them only there).
fn expand_glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains('*') {
        return Ok(vec![pattern.to_path_buf()]);
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| wildcard_match(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Target labels for one address of a group, relabeled; `None` when relabeling drops the target.
pub fn resolve_target(
    job: &ScrapeJob,
    address: &str,
    group_labels: &BTreeMap<String, String>,
) -> Option<Target> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert("job".into(), job.job_name.clone());
    labels.insert("__address__".into(), address.to_string());
    labels.insert("__scheme__".into(), job.scheme.as_str().to_string());
    labels.insert("__metrics_path__".into(), job.metrics_path.clone());
    labels.insert(
        "__scrape_interval__".into(),
        humantime::format_duration(job.interval).to_string(),
    );
    labels.insert(
        "__scrape_timeout__".into(),
        humantime::format_duration(job.timeout).to_string(),
    );
    for (name, values) in &job.params {
        if let Some(first) = values.first() {
            labels.insert(format!("__param_{name}"), first.clone());
        }
    }
    for (k, v) in group_labels {
        labels.insert(k.clone(), v.clone());
    }
    for rule in &job.relabel {
        if !relabel(rule, &mut labels) {
            return None;
        }
    }
    let address = labels.get("__address__").filter(|a| !a.is_empty())?.clone();
    labels
        .entry("instance".into())
        .or_insert_with(|| address.clone());
    let scheme = labels
        .get("__scheme__")
        .cloned()
        .unwrap_or_else(|| "http".into());
    let path = labels
        .get("__metrics_path__")
        .cloned()
        .unwrap_or_else(|| "/metrics".into());
    let mut query: Vec<String> = Vec::new();
    for (name, values) in &job.params {
        let override_value = labels.get(&format!("__param_{name}"));
        for (i, value) in values.iter().enumerate() {
            let v = if i == 0 {
                override_value.unwrap_or(value)
            } else {
                value
            };
            query.push(format!("{}={}", encode_query(name), encode_query(v)));
        }
    }
    let url = if query.is_empty() {
        format!("{scheme}://{address}{path}")
    } else {
        format!("{scheme}://{address}{path}?{}", query.join("&"))
    };
    let final_labels: Vec<(String, String)> = labels
        .into_iter()
        .filter(|(k, v)| !k.starts_with("__") && !v.is_empty())
        .collect();
    Some(Target {
        job_name: job.job_name.clone(),
        url,
        labels: TargetLabels {
            labels: final_labels,
        },
        interval: job.interval,
        timeout: job.timeout,
        honor_timestamps: job.honor_timestamps,
        limits: job.limits,
    })
}

fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Applies one rule; false when the target is dropped.
fn relabel(rule: &RelabelConfig, labels: &mut BTreeMap<String, String>) -> bool {
    let source = || {
        rule.source_labels
            .iter()
            .map(|l| labels.get(l).map(String::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&rule.separator)
    };
    match rule.action {
        RelabelAction::Keep => rule.regex.is_match(&source()),
        RelabelAction::Drop => !rule.regex.is_match(&source()),
        RelabelAction::Replace => {
            let value = source();
            if let (Some(captures), Some(target)) =
                (rule.regex.captures(&value), &rule.target_label)
            {
                let mut name = String::new();
                captures.expand(target, &mut name);
                let mut replaced = String::new();
                captures.expand(&rule.replacement, &mut replaced);
                if super::parse::is_label_name(&name) {
                    if replaced.is_empty() {
                        labels.remove(&name);
                    } else {
                        labels.insert(name, replaced);
                    }
                }
            }
            true
        }
        RelabelAction::Labelmap => {
            let mut added = Vec::new();
            for (k, v) in labels.iter() {
                if let Some(captures) = rule.regex.captures(k) {
                    let mut name = String::new();
                    captures.expand(&rule.replacement, &mut name);
                    added.push((name, v.clone()));
                }
            }
            labels.extend(added);
            true
        }
        RelabelAction::Labeldrop => {
            labels.retain(|k, _| !rule.regex.is_match(k));
            true
        }
        RelabelAction::Labelkeep => {
            labels.retain(|k, _| rule.regex.is_match(k));
            true
        }
    }
}

/// Every target of a job from the groups its sources returned, deduplicated by identity.
pub fn resolve_targets(job: &ScrapeJob, groups: &[TargetGroup]) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for group in groups {
        for address in &group.targets {
            if let Some(target) = resolve_target(job, address, &group.labels) {
                if !out.iter().any(|t| t.key() == target.key()) {
                    out.push(target);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScrapeConfigFile, ConfigError> {
        ScrapeConfigFile::parse(text, Path::new("/etc/prometheus"), &ScrapeLimits::default())
    }

    const EXAMPLE: &str = r#"
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels: {monitor: codelab}
rule_files: [rules.yml]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:9100', '127.0.0.1:9101']
        labels: {env: prod}
    relabel_configs:
      - source_labels: [__address__]
        regex: '(.*):9101'
        action: drop
      - source_labels: [env]
        target_label: tier
        replacement: 'tier-$1'
  - job_name: blackbox
    scrape_interval: 5s
    scrape_timeout: 2s
    metrics_path: /probe
    params: {module: [http_2xx]}
    basic_auth: {username: u}
    file_sd_configs:
      - files: ['targets/*.json']
    static_configs:
      - targets: ['https://example.org']
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:9115
      - regex: 'env'
        action: labeldrop
"#;

    #[test]
    fn a_prometheus_yml_reads_with_warnings_for_what_is_ignored() {
        let file = parse(EXAMPLE).unwrap();
        assert_eq!(
            file.warnings,
            [
                "global.evaluation_interval: not supported, ignored",
                "global.external_labels: not supported, ignored",
                "rule_files: not supported, ignored",
                "scrape_configs.1.basic_auth: not supported, ignored",
            ]
        );
        let node = &file.jobs[0];
        assert_eq!(node.interval, Duration::from_secs(15));
        assert_eq!(node.timeout, Duration::from_secs(10));
        let targets = resolve_targets(node, &node.static_groups);
        assert_eq!(targets.len(), 1, "9101 is dropped");
        assert_eq!(targets[0].url, "http://127.0.0.1:9100/metrics");
        assert_eq!(
            targets[0].labels.labels,
            [
                ("env".to_string(), "prod".to_string()),
                ("instance".to_string(), "127.0.0.1:9100".to_string()),
                ("job".to_string(), "node".to_string()),
                ("tier".to_string(), "tier-prod".to_string()),
            ]
        );
        let blackbox = &file.jobs[1];
        assert_eq!(
            blackbox.file_sd[0].files,
            [PathBuf::from("/etc/prometheus/targets/*.json")]
        );
        let targets = resolve_targets(blackbox, &blackbox.static_groups);
        assert_eq!(
            targets[0].url,
            "http://127.0.0.1:9115/probe?module=http_2xx"
        );
        assert_eq!(targets[0].labels.instance(), "https://example.org");
    }

    #[test]
    fn bad_files_are_refused_with_line_and_column() {
        let err = parse("scrape_configs:\n  - job_name: a\n    scrape_interval: 5 parsecs\n")
            .unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(3), "{err}");
        let err = parse("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: '(('\n        action: keep\n")
            .unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(4), "{err}");
        assert!(err.to_string().contains("invalid regex"), "{err}");
        let err = parse("scrape_configs:\n  - job_name: a\n  - job_name: a\n").unwrap_err();
        assert!(err.to_string().contains("duplicate job_name"), "{err}");
        assert!(err.location.is_some());
        let err = parse("scrape_configs: [\n").unwrap_err();
        assert!(err.location.is_some(), "{err}");
        let err = parse(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn job_limits_only_lower_the_flags() {
        let file = parse("scrape_configs:\n  - job_name: a\n    sample_limit: 10\n    body_size_limit: 1MB\n  - job_name: b\n    sample_limit: 999999999\n").unwrap();
        assert_eq!(file.jobs[0].limits.parse.max_samples, 10);
        assert_eq!(file.jobs[0].limits.max_body_bytes, 1 << 20);
        assert_eq!(
            file.jobs[1].limits.parse.max_samples,
            ScrapeLimits::default().parse.max_samples
        );
    }

    #[test]
    fn relabel_keep_labelmap_labelkeep() {
        let file = parse(
            r#"
scrape_configs:
  - job_name: a
    static_configs:
      - targets: [h1:1, h2:2]
        labels: {__meta_team: core, keep: "yes"}
    relabel_configs:
      - source_labels: [__address__]
        regex: 'h1:.*'
        action: keep
      - regex: '__meta_(.+)'
        action: labelmap
      - regex: '(job|instance|team|__.*)'
        action: labelkeep
"#,
        )
        .unwrap();
        let job = &file.jobs[0];
        let targets = resolve_targets(job, &job.static_groups);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].labels.get("team"), Some("core"));
        assert_eq!(targets[0].labels.get("keep"), None);
        assert_eq!(targets[0].url, "http://h1:1/metrics");
    }

    #[tokio::test]
    async fn file_sd_reads_json_and_yaml_through_a_glob() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets": ["127.0.0.1:1"], "labels": {"x": "1"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b.json"), "- targets: ['127.0.0.1:2']\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), "not read").unwrap();
        let source = FileSource(FileSd {
            files: vec![dir.path().join("*.json")],
            refresh_interval: DEFAULT_FILE_SD_REFRESH,
        });
        let groups = source.groups().await.unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].labels.get("x").map(String::as_str), Some("1"));
        std::fs::write(dir.path().join("d.json"), "[{\"targets\": [1,").unwrap();
        let err = source.groups().await.unwrap_err();
        assert!(err.contains("d.json:2:1:"), "{err}");
    }
}
