//! Running totals of a load-generator run, the progress line and the final summary.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Counters shared by the tick loop and the delivery workers.
#[derive(Debug, Default)]
pub struct Stats {
    points_sent: AtomicU64,
    spans_sent: AtomicU64,
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    /// Requests never sent because their service's queue was full (the receiver is too slow).
    requests_dropped: AtomicU64,
    retries: AtomicU64,
    /// Data points in answers 429/503 (backpressure), once per such answer.
    points_refused: AtomicU64,
    bytes_sent: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What was delivered in one accepted request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub points: u64,
    pub spans: u64,
    pub bytes: u64,
    pub retries: u64,
}

impl Stats {
    pub fn record_ok(&self, delivered: Delivered) {
        self.points_sent
            .fetch_add(delivered.points, Ordering::Relaxed);
        self.spans_sent
            .fetch_add(delivered.spans, Ordering::Relaxed);
        self.bytes_sent
            .fetch_add(delivered.bytes, Ordering::Relaxed);
        self.retries.fetch_add(delivered.retries, Ordering::Relaxed);
        self.requests_ok.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_failure(&self, error: String) {
        self.requests_failed.fetch_add(1, Ordering::Relaxed);
        self.set_last_error(error);
    }

    /// `points` were answered 429 or 503 (`refusals` times): the receiver pushed back.
    pub fn record_refused(&self, points: u64, refusals: u64) {
        self.points_refused
            .fetch_add(points.saturating_mul(refusals), Ordering::Relaxed);
    }

    pub fn record_dropped(&self, reason: String) {
        self.requests_dropped.fetch_add(1, Ordering::Relaxed);
        self.set_last_error(reason);
    }

    fn set_last_error(&self, error: String) {
        // A poisoned lock only means another thread panicked mid-write; the text is still usable.
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some(error);
    }

    pub fn snapshot(&self, elapsed: Duration) -> LoadgenSummary {
        LoadgenSummary {
            elapsed,
            points_sent: self.points_sent.load(Ordering::Relaxed),
            spans_sent: self.spans_sent.load(Ordering::Relaxed),
            requests_ok: self.requests_ok.load(Ordering::Relaxed),
            requests_failed: self.requests_failed.load(Ordering::Relaxed),
            requests_dropped: self.requests_dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            points_refused: self.points_refused.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Totals of a run, for the final summary and for benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadgenSummary {
    pub elapsed: Duration,
    /// Metric data points in requests the receiver accepted.
    pub points_sent: u64,
    /// Spans in requests the receiver accepted.
    pub spans_sent: u64,
    pub requests_ok: u64,
    /// Requests rejected or lost after retries.
    pub requests_failed: u64,
    /// Requests skipped because the receiver could not keep up. Cumulative metrics lose nothing:
    /// the next export carries the totals.
    pub requests_dropped: u64,
    pub retries: u64,
    /// Data points in requests answered 429/503 (backpressure: the receiver asked to come back
    /// after `Retry-After`), counted once per such answer; a request accepted on a later attempt
    /// is in `points_sent` too.
    pub points_refused: u64,
    /// Body bytes accepted (after gzip, when on).
    pub bytes_sent: u64,
    pub last_error: Option<String>,
}

impl LoadgenSummary {
    pub fn points_per_second(&self) -> f64 {
        per_second(self.points_sent, self.elapsed)
    }

    /// The one-line progress report; `recent_rate` is points/s over the last interval.
    pub fn progress_line(&self, recent_rate: f64) -> String {
        let mut line = format!(
            "[{:>6.1}s] points {} ({:.0}/s) | requests ok {} failed {}",
            self.elapsed.as_secs_f64(),
            self.points_sent,
            recent_rate,
            self.requests_ok,
            self.requests_failed,
        );
        if self.requests_dropped > 0 {
            line.push_str(&format!(" dropped {}", self.requests_dropped));
        }
        if self.points_refused > 0 {
            line.push_str(&format!(" | points refused {}", self.points_refused));
        }
        line.push_str(&format!(" | spans {}", self.spans_sent));
        if let Some(error) = &self.last_error {
            line.push_str(&format!(" | last error: {}", one_line(error, 120)));
        }
        line
    }
}

impl fmt::Display for LoadgenSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "loadgen summary")?;
        writeln!(f, "  elapsed          {:.1}s", self.elapsed.as_secs_f64())?;
        writeln!(
            f,
            "  points sent      {} ({:.0}/s)",
            self.points_sent,
            self.points_per_second()
        )?;
        writeln!(
            f,
            "  spans sent       {} ({:.0}/s)",
            self.spans_sent,
            per_second(self.spans_sent, self.elapsed)
        )?;
        writeln!(
            f,
            "  requests         ok {} failed {} dropped {} (retries {})",
            self.requests_ok, self.requests_failed, self.requests_dropped, self.retries
        )?;
        writeln!(
            f,
            "  points refused   {} ({:.0}/s; answered 429/503, retried after Retry-After)",
            self.points_refused,
            per_second(self.points_refused, self.elapsed)
        )?;
        writeln!(
            f,
            "  bytes sent       {} ({:.1} KiB/s)",
            self.bytes_sent,
            per_second(self.bytes_sent, self.elapsed) / 1024.0
        )?;
        write!(
            f,
            "  last error       {}",
            self.last_error.as_deref().unwrap_or("none")
        )
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Error texts can hold newlines (response bodies); the progress line must stay one line.
fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_and_the_last_error_is_kept() {
        let stats = Stats::default();
        let delivered = Delivered {
            points: 400,
            spans: 0,
            bytes: 1000,
            retries: 1,
        };
        stats.record_ok(delivered);
        stats.record_ok(Delivered {
            spans: 30,
            ..Delivered::default()
        });
        stats.record_failure("HTTP 400 after 1 attempt(s): bad\nbody".to_owned());
        stats.record_dropped("queue full".to_owned());
        stats.record_refused(400, 2);
        let summary = stats.snapshot(Duration::from_secs(2));
        assert_eq!(
            summary.points_refused, 800,
            "each 503 answer counts its points"
        );
        assert_eq!(summary.points_sent, 400);
        assert_eq!(summary.spans_sent, 30);
        assert_eq!(summary.requests_ok, 2);
        assert_eq!(summary.requests_failed, 1);
        assert_eq!(summary.requests_dropped, 1);
        assert_eq!(summary.retries, 1);
        assert_eq!(summary.points_per_second(), 200.0);
        assert_eq!(summary.last_error.as_deref(), Some("queue full"));
    }

    #[test]
    fn the_progress_line_is_one_line_with_every_total() {
        let summary = LoadgenSummary {
            elapsed: Duration::from_secs(3),
            points_sent: 6000,
            spans_sent: 600,
            requests_ok: 30,
            requests_failed: 2,
            last_error: Some("HTTP 503\nretry later".to_owned()),
            ..LoadgenSummary::default()
        };
        let line = summary.progress_line(2000.0);
        assert!(!line.contains('\n'));
        for expected in [
            "3.0s",
            "6000",
            "2000/s",
            "ok 30",
            "failed 2",
            "spans 600",
            "HTTP 503",
        ] {
            assert!(
                line.contains(expected),
                "{expected:?} missing from {line:?}"
            );
        }
        assert!(summary
            .to_string()
            .contains("points sent      6000 (2000/s)"));
    }
}
