//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, parsed line by line.
//!
//! Hand-written, because no crate fits (checked 2026-12): `prometheus-parse` 0.2.5 splits label sets
//! on `,` and `=` and matches them with `[^}]+`, so escaped quotes, commas, `=` or `}` inside label
//! values break it, and it knows neither `# UNIT`, `_created`, exemplars nor `# EOF`;
//! `openmetrics-parser` 0.5 handles both formats but is LGPL-3.0 (Flowscope is Apache-2.0 and links
//! statically, into Lambda zips too) and refuses a whole exposition for one bad line of a format
//! that Prometheus itself reads leniently. The grammar is small (one sample per line), so a careful
//! parser with bounded work per byte is less risk than either.
//!
//! What it accepts, as Prometheus does: `# HELP`, `# TYPE`, `# UNIT` (OpenMetrics), other comments
//! ignored; `name{label="value",…} value [timestamp]` with `\\`, `\"` and `\n` escapes in label
//! values, a trailing comma in a label set, `NaN`/`+Inf`/`-Inf`; OpenMetrics exemplars (`# {…} v`)
//! are skipped; `# EOF` ends an OpenMetrics body. Timestamps are milliseconds (text format) or
//! seconds with a fraction (OpenMetrics). Prometheus 3's quoted UTF-8 names are read too: a metric
//! name quoted before the label set (`"my.metric"{…}`) or as its first item (`{"my.metric", …}`),
//! quoted label names (`"label.x"="v"`), and quoted names in `# HELP`/`# TYPE`/`# UNIT`; quoted
//! names take the label-value escapes, may not be empty and count against the label-name limit.
//!
//! Errors name the line and column (1-based, column in bytes) and every limit is checked before the
//! data is kept, so a hostile body costs at most its (already bounded) size.

use std::fmt;

/// Which format the body is in (from the `Content-Type` of the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// `text/plain; version=0.0.4` (and anything not OpenMetrics).
    Text,
    /// `application/openmetrics-text`.
    OpenMetrics,
}

impl ExpositionFormat {
    pub fn from_content_type(content_type: Option<&str>) -> ExpositionFormat {
        match content_type {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                ExpositionFormat::OpenMetrics
            }
            _ => ExpositionFormat::Text,
        }
    }
}

/// A family's declared type (`# TYPE`); samples without one are [`MetricType::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    fn parse(word: &str) -> Option<MetricType> {
        Some(match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "untyped" | "unknown" => MetricType::Unknown,
            _ => return None,
        })
    }

    /// Sample name suffixes that belong to a family of this type.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            MetricType::Summary => &["_sum", "_count", "_created"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[],
        }
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The full sample name (`http_requests_total`, `latency_bucket`).
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Unix milliseconds, when the exposition carries one.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: what `# TYPE`/`# HELP`/`# UNIT` say about a name, and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: MetricType,
    pub help: Option<String>,
    pub unit: Option<String>,
    pub samples: Vec<Sample>,
}

/// What one scrape may hold; beyond any of these the scrape fails (as Prometheus's
/// `sample_limit`/`label_limit`/`label_*_length_limit` fail it), nothing of it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    pub max_samples: usize,
    pub max_labels_per_sample: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_samples: 50_000,
            max_labels_per_sample: 64,
            max_label_name_bytes: 256,
            max_label_value_bytes: 4096,
        }
    }
}

/// Why a body was not read; `line`/`column` are 1-based (column in bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}:{column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("line {line}: {message}")]
    Limit { line: usize, message: String },
    #[error("the body is not UTF-8 (byte {0})")]
    NotUtf8(usize),
}

/// A parsed exposition: families in the order they appeared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
    /// Samples in all families.
    pub sample_count: usize,
}

/// Parses a whole body.
pub fn parse(
    body: &[u8],
    format: ExpositionFormat,
    limits: &ParseLimits,
) -> Result<Exposition, ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| ParseError::NotUtf8(e.valid_up_to()))?;
    let mut out = Exposition::default();
    let mut saw_eof = false;
    let last_line = text.split('\n').count();
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if saw_eof {
            if line.is_empty() && index + 1 == last_line {
                break;
            }
            return Err(syntax(line_no, 1, "content after # EOF"));
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if format == ExpositionFormat::OpenMetrics && comment.trim() == "EOF" {
                saw_eof = true;
                continue;
            }
            comment_line(&mut out, comment, line_no, line.len() - comment.len() + 1)?;
            continue;
        }
        let offset = line.len() - trimmed.len();
        let sample = sample_line(trimmed, format, limits, line_no, offset)?;
        if out.sample_count >= limits.max_samples {
            return Err(ParseError::Limit {
                line: line_no,
                message: format!(
                    "more than {} samples in one scrape (sample limit)",
                    limits.max_samples
                ),
            });
        }
        out.sample_count += 1;
        add_sample(&mut out.families, sample);
    }
    Ok(out)
}

fn syntax(line: usize, column: usize, message: impl Into<String>) -> ParseError {
    ParseError::Syntax {
        line,
        column,
        message: message.into(),
    }
}

/// `# HELP name text`, `# TYPE name type`, `# UNIT name unit`; any other comment is ignored.
fn comment_line(
    out: &mut Exposition,
    comment: &str,
    line_no: usize,
    column: usize,
) -> Result<(), ParseError> {
    let rest = comment.trim_start_matches([' ', '\t']);
    let (keyword, rest) = split_word(rest);
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Ok(());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (name, rest): (std::borrow::Cow<'_, str>, &str) = match rest.strip_prefix('"') {
        // Prometheus 3: `# TYPE "my.metric" counter`.
        Some(quoted_name) => {
            let mut c = Cursor {
                line: quoted_name,
                pos: 0,
                line_no,
                offset: column,
            };
            let name = quoted(&mut c, "metric name")?;
            (name.into(), &quoted_name[c.pos..])
        }
        None => {
            let (name, rest) = split_word(rest);
            if !is_metric_name(name) {
                return Err(syntax(
                    line_no,
                    column,
                    format!("# {keyword} needs a valid metric name, found {name:?}"),
                ));
            }
            (name.into(), rest)
        }
    };
    if name.is_empty() || (!rest.is_empty() && !rest.starts_with([' ', '\t'])) {
        return Err(syntax(
            line_no,
            column,
            format!("# {keyword} needs a valid metric name, found {name:?}"),
        ));
    }
    let name = name.as_ref();
    let value = rest.trim_start_matches([' ', '\t']);
    let family = family_for_metadata(&mut out.families, name);
    match keyword {
        "HELP" => family.help = Some(unescape_help(value)),
        "UNIT" => {
            let unit = value.trim_end();
            if !unit.is_empty() {
                family.unit = Some(unit.to_string());
            }
        }
        _ => {
            let word = value.trim_end();
            let kind = MetricType::parse(word)
                .ok_or_else(|| syntax(line_no, column, format!("unknown metric type {word:?}")))?;
            if !family.samples.is_empty() {
                return Err(syntax(
                    line_no,
                    column,
                    format!("# TYPE for {name:?} after its samples"),
                ));
            }
            family.kind = kind;
        }
    }
    Ok(())
}

/// The family metadata for `name` goes to: the last family when it has that name and no samples
/// yet, else a new one.
fn family_for_metadata<'a>(families: &'a mut Vec<Family>, name: &str) -> &'a mut Family {
    let reuse = families
        .last()
        .is_some_and(|f| f.name == name && f.samples.is_empty());
    if !reuse {
        families.push(Family {
            name: name.to_string(),
            kind: MetricType::Unknown,
            help: None,
            unit: None,
            samples: Vec::new(),
        });
    }
    let last = families.len() - 1;
    &mut families[last]
}

/// A sample joins the last family when its name is the family's name or the name plus a suffix
/// of the family's type; otherwise it starts an untyped family of its own name.
fn add_sample(families: &mut Vec<Family>, sample: Sample) {
    if let Some(family) = families.last_mut() {
        let belongs = sample.name == family.name
            || sample
                .name
                .strip_prefix(family.name.as_str())
                .is_some_and(|suffix| family.kind.suffixes().contains(&suffix));
        if belongs {
            family.samples.push(sample);
            return;
        }
    }
    families.push(Family {
        name: sample.name.clone(),
        kind: MetricType::Unknown,
        help: None,
        unit: None,
        samples: vec![sample],
    });
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A cursor over one line that reports columns.
struct Cursor<'a> {
    line: &'a str,
    pos: usize,
    line_no: usize,
    /// Bytes before `line` in the original line (leading whitespace).
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        syntax(self.line_no, self.offset + self.pos + 1, message)
    }

    fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    fn skip_blanks(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}")))
        }
    }
}

fn sample_line(
    line: &str,
    format: ExpositionFormat,
    limits: &ParseLimits,
    line_no: usize,
    offset: usize,
) -> Result<Sample, ParseError> {
    let mut c = Cursor {
        line,
        pos: 0,
        line_no,
        offset,
    };
    let mut name: Option<String> = None;
    if c.peek() == Some(b'"') {
        // Prometheus 3: `"my.metric"{…} v`.
        c.pos += 1;
        name = Some(quoted_name(&mut c, limits, "metric name")?);
    } else {
        let bare = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
        if !bare.is_empty() {
            if !is_metric_name(bare) {
                return Err(c.err("expected a metric name"));
            }
            name = Some(bare.to_string());
        }
    }
    let mut labels = Vec::new();
    if c.peek() == Some(b'{') {
        c.pos += 1;
        let (in_braces, set) = label_set(&mut c, limits, name.is_none())?;
        labels = set;
        if in_braces.is_some() {
            name = in_braces;
        }
    }
    let Some(name) = name else {
        return Err(c.err("expected a metric name"));
    };
    if c.skip_blanks() == 0 {
        return Err(c.err("expected a space before the value"));
    }
    let value_text = c.take_while(|b| b != b' ' && b != b'\t');
    let value = parse_float(value_text)
        .ok_or_else(|| c.err(format!("invalid sample value {value_text:?}")))?;
    c.skip_blanks();
    let mut timestamp_ms = None;
    if c.peek().is_some_and(|b| b != b'#') {
        let text = c.take_while(|b| b != b' ' && b != b'\t');
        timestamp_ms = Some(
            parse_timestamp(text, format)
                .ok_or_else(|| c.err(format!("invalid timestamp {text:?}")))?,
        );
        c.skip_blanks();
    }
    match c.peek() {
        None => {}
        // An OpenMetrics exemplar: ` # {labels} value [timestamp]`; checked for shape, not kept.
        Some(b'#') if format == ExpositionFormat::OpenMetrics => {
            c.pos += 1;
            c.skip_blanks();
            c.expect(b'{', "'{' opening an exemplar's labels")?;
            label_set(&mut c, limits, false)?;
            c.skip_blanks();
            let v = c.take_while(|b| b != b' ' && b != b'\t');
            parse_float(v).ok_or_else(|| c.err(format!("invalid exemplar value {v:?}")))?;
        }
        Some(_) => return Err(c.err(format!("unexpected text {:?}", c.rest()))),
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// A sample's labels, in the order written.
type Labels = Vec<(String, String)>;

/// After `{`: `name="value"` pairs separated by commas (a trailing comma allowed) up to `}`. Label
/// names may be quoted; with `metric_name_allowed`, a quoted string first and alone (no `=`) is the
/// metric name (Prometheus 3), returned first.
fn label_set(
    c: &mut Cursor<'_>,
    limits: &ParseLimits,
    metric_name_allowed: bool,
) -> Result<(Option<String>, Labels), ParseError> {
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut metric_name = None;
    let mut first = true;
    loop {
        c.skip_blanks();
        if c.peek() == Some(b'}') {
            c.pos += 1;
            return Ok((metric_name, labels));
        }
        let name_column = c.offset + c.pos + 1;
        let name: String = if c.peek() == Some(b'"') {
            c.pos += 1;
            let quoted = quoted_name(c, limits, "label name")?;
            c.skip_blanks();
            if first && metric_name_allowed && matches!(c.peek(), Some(b',' | b'}')) {
                metric_name = Some(quoted);
                first = false;
                if c.peek() == Some(b',') {
                    c.pos += 1;
                }
                continue;
            }
            quoted
        } else {
            let bare = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !is_label_name(bare) {
                return Err(c.err("expected a label name"));
            }
            bare.to_string()
        };
        first = false;
        let name = name.as_str();
        if name.len() > limits.max_label_name_bytes {
            return Err(ParseError::Limit {
                line: c.line_no,
                message: format!(
                    "label name of {} bytes at column {name_column}, over the limit of {} bytes",
                    name.len(),
                    limits.max_label_name_bytes
                ),
            });
        }
        c.skip_blanks();
        c.expect(b'=', "'=' after a label name")?;
        c.skip_blanks();
        c.expect(b'"', "'\"' opening a label value")?;
        let value = quoted(c, "label value")?;
        if value.len() > limits.max_label_value_bytes {
            return Err(ParseError::Limit {
                line: c.line_no,
                message: format!(
                    "label {name:?} has a value of {} bytes, over the limit of {} bytes",
                    value.len(),
                    limits.max_label_value_bytes
                ),
            });
        }
        if labels.iter().any(|(k, _)| k == name) {
            return Err(syntax(
                c.line_no,
                name_column,
                format!("label {name:?} appears twice"),
            ));
        }
        if labels.len() >= limits.max_labels_per_sample {
            return Err(ParseError::Limit {
                line: c.line_no,
                message: format!(
                    "more than {} labels on one sample (label limit)",
                    limits.max_labels_per_sample
                ),
            });
        }
        labels.push((name.to_string(), value));
        c.skip_blanks();
        match c.peek() {
            Some(b',') => c.pos += 1,
            Some(b'}') => {}
            _ => return Err(c.err("expected ',' or '}' after a label value")),
        }
    }
}

/// After the opening quote of a quoted metric or label name: the name, unescaped, not empty and
/// within the label-name limit.
fn quoted_name(c: &mut Cursor<'_>, limits: &ParseLimits, what: &str) -> Result<String, ParseError> {
    let column = c.offset + c.pos;
    let name = quoted(c, what)?;
    if name.is_empty() {
        return Err(syntax(c.line_no, column, format!("an empty quoted {what}")));
    }
    if name.len() > limits.max_label_name_bytes {
        return Err(ParseError::Limit {
            line: c.line_no,
            message: format!(
                "quoted {what} of {} bytes at column {column}, over the limit of {} bytes",
                name.len(),
                limits.max_label_name_bytes
            ),
        });
    }
    Ok(name)
}

/// After the opening quote: the text up to the closing quote, unescaped.
fn quoted(c: &mut Cursor<'_>, what: &str) -> Result<String, ParseError> {
    let mut out = String::new();
    let rest = c.rest();
    let mut chars = rest.char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '"' => {
                c.pos += i + 1;
                return Ok(out);
            }
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((j, other)) => {
                    c.pos += j;
                    return Err(c.err(format!("invalid escape '\\{other}' in a {what}")));
                }
                None => break,
            },
            other => out.push(other),
        }
    }
    c.pos = c.line.len();
    Err(c.err(format!("unterminated {what}")))
}

/// Go's `strconv.ParseFloat` as Prometheus uses it: decimal or exponent notation, `NaN`, `±Inf`.
pub fn parse_float(text: &str) -> Option<f64> {
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    match unsigned.to_ascii_lowercase().as_str() {
        "nan" => return Some(f64::NAN),
        "inf" | "infinity" => {
            return Some(if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        _ => {}
    }
    // Rust's parser also takes forms Go refuses ("1." is fine in both); only digits, '.', 'e' and
    // signs reach it.
    if !unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse().ok()
}

/// Text format: integer milliseconds; OpenMetrics: seconds, possibly with a fraction.
fn parse_timestamp(text: &str, format: ExpositionFormat) -> Option<i64> {
    match format {
        ExpositionFormat::Text => text.parse::<i64>().ok(),
        ExpositionFormat::OpenMetrics => {
            let seconds = parse_float(text)?;
            let ms = (seconds * 1000.0).round();
            (ms.is_finite() && ms.abs() < 9.0e15).then_some(ms as i64)
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        };
        f.write_str(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> Exposition {
        parse(
            body.as_bytes(),
            ExpositionFormat::Text,
            &ParseLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn text_format_families_escapes_and_timestamps() {
        let e = text(concat!(
            "# HELP http_requests_total The total \\\\ number\\n of requests.\n",
            "# TYPE http_requests_total counter\n",
            "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n",
            "http_requests_total{method=\"post\",code=\"400\",} 3 1395066363000\n",
            "\n",
            "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n",
            "  metric_without_timestamp_and_labels 12.47\n",
            "weird{a=\"}{,=\"} -Inf\n",
        ));
        assert_eq!(e.sample_count, 5);
        let counter = &e.families[0];
        assert_eq!(counter.kind, MetricType::Counter);
        assert_eq!(
            counter.help.as_deref(),
            Some("The total \\ number\n of requests.")
        );
        assert_eq!(counter.samples.len(), 2);
        assert_eq!(counter.samples[0].timestamp_ms, Some(1395066363000));
        assert_eq!(counter.samples[1].label("code"), Some("400"));
        let msdos = &e.families[1];
        assert_eq!(msdos.kind, MetricType::Unknown);
        assert_eq!(msdos.samples[0].label("path"), Some("C:\\DIR\\FILE.TXT"));
        assert_eq!(
            msdos.samples[0].label("error"),
            Some("Cannot find file:\n\"FILE.TXT\"")
        );
        assert_eq!(e.families[3].samples[0].label("a"), Some("}{,="));
        assert_eq!(e.families[3].samples[0].value, f64::NEG_INFINITY);
    }

    #[test]
    fn prometheus_3_quoted_metric_and_label_names() {
        let e = text(concat!(
            "# HELP \"my.requests\" Requests, by \"route.name\".\n",
            "# TYPE \"my.requests\" counter\n",
            "{\"my.requests\", \"route.name\"=\"/a\", code=\"200\"} 7\n",
            "{\"my.requests\",\"route.name\"=\"/b\",} 3 1395066363000\n",
            "\"my.requests\"{\"route.name\"=\"/c\"} 1\n",
            "# TYPE \"odd \\\"name\\\"\" gauge\n",
            "{\"odd \\\"name\\\"\"} 2\n",
            "\"bare.no.labels\" 5\n",
            "plain{\"dotted.label\"=\"x\"} 9\n",
        ));
        assert_eq!(e.sample_count, 6);
        let requests = &e.families[0];
        assert_eq!(requests.name, "my.requests");
        assert_eq!(requests.kind, MetricType::Counter);
        assert_eq!(
            requests.help.as_deref(),
            Some("Requests, by \"route.name\".")
        );
        assert_eq!(requests.samples.len(), 3);
        assert_eq!(requests.samples[0].label("route.name"), Some("/a"));
        assert_eq!(requests.samples[0].label("code"), Some("200"));
        assert_eq!(requests.samples[1].timestamp_ms, Some(1395066363000));
        assert_eq!(requests.samples[2].label("route.name"), Some("/c"));
        assert_eq!(e.families[1].name, "odd \"name\"");
        assert_eq!(e.families[1].kind, MetricType::Gauge);
        assert_eq!(e.families[2].name, "bare.no.labels");
        assert_eq!(e.families[2].samples[0].value, 5.0);
        assert_eq!(e.families[3].samples[0].label("dotted.label"), Some("x"));
    }

    #[test]
    fn malformed_quoted_names_are_refused_with_their_position() {
        let fail = |body: &str| {
            parse(
                body.as_bytes(),
                ExpositionFormat::Text,
                &ParseLimits::default(),
            )
            .unwrap_err()
            .to_string()
        };
        // Two metric names, an empty one, a name not first, an unterminated one, a label with no value.
        assert!(
            fail("\"a.b\"{\"c.d\"} 1\n").contains("line 1:"),
            "a name already given"
        );
        assert!(fail("{\"\"} 1\n").contains("empty quoted"));
        assert!(fail("{x=\"1\", \"m\"} 1\n").contains("'='"));
        assert!(fail("{\"my.metric} 1\n").contains("unterminated"));
        assert!(fail("{\"m\", \"l.x\"} 1\n").contains("'='"));
        assert!(fail("{} 1\n").contains("expected a metric name"));
        assert!(fail("# TYPE \"m.x counter\n").contains("unterminated"));
        assert!(fail("# TYPE \"m.x\"counter\n").contains("valid metric name"));
        let long = format!("{{\"{}\"}} 1\n", "n".repeat(300));
        assert!(
            fail(&long).contains("over the limit of 256 bytes"),
            "{}",
            fail(&long)
        );
        // Escapes other than the three are refused in names as in values.
        assert!(fail("{\"a\\tb\"} 1\n").contains("invalid escape"));
    }

    #[test]
    fn histogram_and_summary_samples_join_their_family() {
        let e = text(concat!(
            "# TYPE rpc histogram\n",
            "rpc_bucket{le=\"0.1\"} 1\n",
            "rpc_bucket{le=\"+Inf\"} 3\n",
            "rpc_sum 0.9\n",
            "rpc_count 3\n",
            "# TYPE q summary\n",
            "q{quantile=\"0.5\"} 4\n",
            "q_sum 10\n",
            "q_count 2\n",
            "q_created 1.7e9\n",
            "other 1\n",
        ));
        assert_eq!(e.families.len(), 3);
        assert_eq!(e.families[0].samples.len(), 4);
        assert_eq!(e.families[1].samples.len(), 4);
        assert_eq!(e.families[2].name, "other");
    }

    #[test]
    fn openmetrics_unit_created_exemplar_and_eof() {
        let e = parse(
            concat!(
                "# TYPE foo_seconds counter\n",
                "# UNIT foo_seconds seconds\n",
                "# HELP foo_seconds Time.\n",
                "foo_seconds_total{a=\"b\"} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n",
                "foo_seconds_created{a=\"b\"} 1520430000.123\n",
                "# EOF\n",
            )
            .as_bytes(),
            ExpositionFormat::OpenMetrics,
            &ParseLimits::default(),
        )
        .unwrap();
        let f = &e.families[0];
        assert_eq!(f.unit.as_deref(), Some("seconds"));
        assert_eq!(f.samples.len(), 2);
        assert_eq!(f.samples[0].timestamp_ms, Some(1520879607789));
        let after_eof = parse(
            b"a 1\n# EOF\nb 2\n",
            ExpositionFormat::OpenMetrics,
            &ParseLimits::default(),
        );
        assert!(matches!(after_eof, Err(ParseError::Syntax { line: 3, .. })));
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse(
            b"ok 1\nbad{a=\"x} 1\n",
            ExpositionFormat::Text,
            &ParseLimits::default(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "line 2:12: unterminated label value");
        let err = parse(
            b"a{b=\"c\" d=\"e\"} 1\n",
            ExpositionFormat::Text,
            &ParseLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1:9: expected ',' or '}' after a label value"
        );
        let err = parse(b"a 1x\n", ExpositionFormat::Text, &ParseLimits::default()).unwrap_err();
        assert_eq!(err.to_string(), "line 1:5: invalid sample value \"1x\"");
        let err = parse(
            b"# TYPE a countr\n",
            ExpositionFormat::Text,
            &ParseLimits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown metric type"), "{err}");
    }

    #[test]
    fn limits_fail_the_scrape() {
        let limits = ParseLimits {
            max_samples: 2,
            max_labels_per_sample: 2,
            max_label_name_bytes: 4,
            max_label_value_bytes: 3,
        };
        let over = |body: &str| parse(body.as_bytes(), ExpositionFormat::Text, &limits);
        assert!(over("a 1\nb 2\n").is_ok());
        assert!(matches!(
            over("a 1\nb 2\nc 3\n"),
            Err(ParseError::Limit { line: 3, .. })
        ));
        assert!(matches!(
            over("a{x=\"1\",y=\"2\",z=\"3\"} 1\n"),
            Err(ParseError::Limit { .. })
        ));
        assert!(matches!(
            over("a{abcde=\"1\"} 1\n"),
            Err(ParseError::Limit { .. })
        ));
        assert!(matches!(
            over("a{x=\"1234\"} 1\n"),
            Err(ParseError::Limit { .. })
        ));
    }

    #[test]
    fn floats_as_go_parses_them() {
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float("1.5e3"), Some(1500.0));
        assert_eq!(parse_float("0x10"), None);
        assert_eq!(parse_float(""), None);
        assert_eq!(parse_float("1_000"), None);
    }

    /// Garbage never panics and never takes more than linear work: random bytes, random
    /// mutations of a valid body, and truncations at every byte.
    #[test]
    fn random_garbage_is_refused_or_read_never_panics() {
        let valid = concat!(
            "# HELP x_total Help \\n text\n# TYPE x_total counter\n",
            "x_total{a=\"b\\\"c\",d=\"\\\\\"} 1.5e3 1700000000000\n",
            "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n",
            "# UNIT u_seconds seconds\nu_seconds 3 # {t=\"1\"} 2\n# EOF\n",
        )
        .as_bytes();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let limits = ParseLimits::default();
        for cut in 0..valid.len() {
            for format in [ExpositionFormat::Text, ExpositionFormat::OpenMetrics] {
                let _ = parse(&valid[..cut], format, &limits);
            }
        }
        let alphabet = b"{}\"\\=, #\n\t_aZ09.+-eEInfNa";
        for round in 0..20_000 {
            let mut body = valid.to_vec();
            let edits = 1 + (next() % 8) as usize;
            for _ in 0..edits {
                let at = (next() as usize) % body.len();
                match next() % 3 {
                    0 => body[at] = alphabet[(next() as usize) % alphabet.len()],
                    1 => body.insert(at, (next() & 0xff) as u8),
                    _ => {
                        body.remove(at);
                    }
                }
                if body.is_empty() {
                    body.push(b'a');
                }
            }
            let format = if round % 2 == 0 {
                ExpositionFormat::Text
            } else {
                ExpositionFormat::OpenMetrics
            };
            if let Ok(e) = parse(&body, format, &limits) {
                let counted: usize = e.families.iter().map(|f| f.samples.len()).sum();
                assert_eq!(counted, e.sample_count);
            }
        }
        for _ in 0..2_000 {
            let len = (next() % 200) as usize;
            let body: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
            let _ = parse(&body, ExpositionFormat::Text, &limits);
        }
    }
}
