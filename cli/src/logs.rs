//! The process's own logs: human-readable text (the default in a terminal) or one JSON object per
//! line (`--log-format json`, env `FLOWSCOPE_LOG_FORMAT`) for log collectors, with the ids of the
//! request each line belongs to.
//!
//! Every HTTP request both local ports serve runs in a `request` span carrying a W3C trace id and
//! span id: the caller's (`traceparent` header) when it sends one, so Flowscope's lines join the
//! caller's trace, else fresh random ones. The JSON lines carry the span's fields (`trace_id`,
//! `span_id`, method, path) under `span`. (The Lambda functions log JSON through lambda_runtime's
//! subscriber when the function's `LoggingConfig.LogFormat` is `JSON`, which the template sets; its
//! lines carry the invocation's `requestId` and X-Ray trace id.)

use std::io::IsTerminal;

use axum::http::HeaderMap;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colour only on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `span`.
    Json,
}

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether log lines are JSON: then nothing else may write to stderr (a collector parses every line).
pub fn is_json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber (stderr), filtered by `RUST_LOG` or `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            // Colour codes only on a terminal: logs piped to a file or a collector stay plain text.
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The span one HTTP request runs in: `trace_id` / `span_id` of the W3C `traceparent` header when
/// it is well formed (the request's own span id is new, its parent the caller's), else random.
pub fn request_span(method: &str, path: &str, headers: &HeaderMap) -> tracing::Span {
    let (trace_id, parent_id) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent)
        .map_or_else(
            || (format!("{:032x}", rand::random::<u128>() | 1), None),
            |(trace, parent)| (trace.to_string(), Some(parent.to_string())),
        );
    let span_id = format!("{:016x}", rand::random::<u64>() | 1);
    tracing::info_span!(
        "request",
        trace_id = %trace_id,
        span_id = %span_id,
        parent_span_id = parent_id.as_deref(),
        method = %method,
        path = %path,
    )
}

/// `version-traceid-parentid-flags` with a non-zero 32-hex trace id and 16-hex parent id.
fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    (hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2))
    .then_some((trace, parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_taken_and_a_bad_one_ignored() {
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
        );
        assert_eq!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(parse_traceparent("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(parse_traceparent(""), None);
    }
}
