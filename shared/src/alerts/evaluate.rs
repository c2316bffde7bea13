//! Pure evaluation: bucket statistics of a window → the rule's value → the severity it is at.
//!
//! Nothing here reads a store or a clock; the engine passes windows of buckets and `now` in.

use crate::domain::bucket_view::rate;
use crate::domain::stats::BucketStats;
use crate::model::{MetricKind, Resolution};

use super::rules::{Aggregation, AnomalySettings, Condition, Rule};
use super::state::{Baseline, Severity};

/// Window bounds `[start, end)` for a rule evaluated at `now`: whole 1m buckets ending at the
/// minute boundary at or before `now - delay` (younger data may still be in flight).
pub fn window(now: i64, delay_s: i64, window_s: i64) -> (i64, i64) {
    let end = Resolution::OneMinute.bucket_start(now - delay_s);
    (end - window_s, end)
}

/// One series' buckets in the window, merged.
#[derive(Debug, Clone)]
pub struct SeriesWindow {
    pub kind: MetricKind,
    pub stats: BucketStats,
}

/// The value of `aggregation` over several series' windows (merged: exact for count/sum/min/max,
/// quantiles from the merged sketches, rate summed over series). `None` when no series has any
/// observation in the window.
pub fn aggregate(aggregation: Aggregation, windows: &[SeriesWindow], window_s: i64) -> Option<f64> {
    let windows: Vec<&SeriesWindow> = windows.iter().filter(|w| !w.stats.is_empty()).collect();
    if windows.is_empty() {
        return None;
    }
    if aggregation == Aggregation::Rate {
        // Rate depends on each series' kind (a counter's sum vs. a histogram's count), so it is summed
        // per series rather than taken from merged stats. Buckets are 1m wide; the window may be wider.
        let per_minute: f64 = windows
            .iter()
            .map(|w| rate(w.kind, Resolution::OneMinute, &w.stats) * 60.0)
            .sum();
        return Some(per_minute / window_s as f64);
    }
    let mut merged = BucketStats::new();
    for w in &windows {
        merged.merge(&w.stats);
    }
    match aggregation {
        Aggregation::Avg => merged.avg(),
        Aggregation::Min => merged.min,
        Aggregation::Max => merged.max,
        Aggregation::Sum => Some(merged.sum),
        Aggregation::Count => Some(merged.count as f64),
        Aggregation::P50 => merged.quantile(0.5),
        Aggregation::P95 => merged.quantile(0.95),
        Aggregation::P99 => merged.quantile(0.99),
        Aggregation::Rate => None,
    }
}

/// `numerator / denominator`; a missing numerator is zero for aggregations where "nothing
/// happened" means zero. `None` when the denominator is missing or zero.
pub fn ratio(
    aggregation: Aggregation,
    numerator: Option<f64>,
    denominator: Option<f64>,
) -> Option<f64> {
    let denominator = denominator.filter(|d| *d != 0.0)?;
    let numerator = match numerator {
        Some(n) => n,
        None if aggregation.zero_when_empty() => 0.0,
        None => return None,
    };
    Some(numerator / denominator)
}

/// Whether `value` is on the alerting side of `threshold`, with the threshold moved `relax` toward
/// the safe side (hysteresis while the alert already fires at that level).
fn breaches(condition: Condition, value: f64, threshold: f64, relax: f64) -> bool {
    match condition {
        Condition::Above | Condition::Outside => value > threshold - relax,
        Condition::Below => value < threshold + relax,
    }
}

/// The severity `value` is at. `firing` is the severity the alert fires at now (if it does): levels up
/// to it hold until the value is `hysteresis` past their threshold on the safe side.
pub fn level(
    condition: Condition,
    warning: Option<f64>,
    critical: Option<f64>,
    hysteresis: f64,
    value: f64,
    firing: Option<Severity>,
) -> Option<Severity> {
    let relax = |severity: Severity| {
        if firing.is_some_and(|f| severity <= f) {
            hysteresis
        } else {
            0.0
        }
    };
    if critical.is_some_and(|t| breaches(condition, value, t, relax(Severity::Critical))) {
        return Some(Severity::Critical);
    }
    if warning.is_some_and(|t| breaches(condition, value, t, relax(Severity::Warning))) {
        return Some(Severity::Warning);
    }
    None
}

/// A threshold rule's level for `value`.
pub fn threshold_level(rule: &Rule, value: f64, firing: Option<Severity>) -> Option<Severity> {
    level(
        rule.condition,
        rule.warning,
        rule.critical,
        rule.hysteresis,
        value,
        firing,
    )
}

/// Spacing of baseline samples: one per 1m window end.
const SAMPLE_INTERVAL_S: f64 = 60.0;

/// The EWMA weight of one sample for a half-life.
fn alpha(half_life_s: i64) -> f64 {
    1.0 - 0.5f64.powf(SAMPLE_INTERVAL_S / half_life_s.max(1) as f64)
}

/// σ used for scores: never below `min_stddev`, nor below 1% of |mean| (a flat signal has σ = 0).
fn effective_stddev(baseline: &Baseline, settings: &AnomalySettings) -> f64 {
    baseline
        .variance
        .max(0.0)
        .sqrt()
        .max(settings.min_stddev)
        .max(0.01 * baseline.mean.abs())
        .max(f64::MIN_POSITIVE)
}

/// How far `value` is from the baseline in σ, counted positive in the rule's direction.
pub fn deviation(
    baseline: &Baseline,
    value: f64,
    condition: Condition,
    settings: &AnomalySettings,
) -> f64 {
    let z = (value - baseline.mean) / effective_stddev(baseline, settings);
    match condition {
        Condition::Above => z,
        Condition::Below => -z,
        Condition::Outside => z.abs(),
    }
}

/// Folds the window ending at `window_end` into the baseline (once per window end) and scores it
/// against the baseline as it was before. Samples before `warmup_samples` are folded in unscored.
pub fn sample_baseline(
    baseline: Option<Baseline>,
    value: Option<f64>,
    window_end: i64,
    condition: Condition,
    settings: &AnomalySettings,
) -> Baseline {
    let mut baseline = baseline.unwrap_or(Baseline {
        mean: 0.0,
        variance: 0.0,
        samples: 0,
        last_sample_end: i64::MIN,
        last_score: None,
    });
    if window_end <= baseline.last_sample_end {
        return baseline;
    }
    baseline.last_sample_end = window_end;
    let Some(value) = value.filter(|v| v.is_finite()) else {
        // A minute without data neither moves the baseline nor scores.
        baseline.last_score = None;
        return baseline;
    };
    baseline.last_score = (baseline.samples >= u64::from(settings.warmup_samples))
        .then(|| deviation(&baseline, value, condition, settings));
    if baseline.samples == 0 {
        baseline.mean = value;
        baseline.variance = 0.0;
    } else {
        // Incremental EWMA of mean and variance (Finch, "Incremental calculation of weighted mean
        // and variance", 2009). While there are few samples, weight 1/n makes it the plain mean and
        // variance, so the first sample does not bias the baseline for hours.
        let a = alpha(settings.half_life_s).max(1.0 / (baseline.samples + 1) as f64);
        let diff = value - baseline.mean;
        let increment = a * diff;
        baseline.mean += increment;
        baseline.variance = (1.0 - a) * (baseline.variance + diff * increment);
    }
    baseline.samples += 1;
    baseline
}

/// An anomaly rule's level from the last scored sample.
pub fn anomaly_level(
    rule: &Rule,
    score: Option<f64>,
    firing: Option<Severity>,
) -> Option<Severity> {
    let score = score?;
    // Scores are signed in the rule's direction, so compare them as "above k σ".
    level(
        Condition::Above,
        rule.warning,
        rule.critical,
        rule.hysteresis,
        score,
        firing,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_of(kind: MetricKind, values: &[f64]) -> SeriesWindow {
        let mut stats = BucketStats::new();
        for v in values {
            stats.observe(*v);
        }
        SeriesWindow { kind, stats }
    }

    #[test]
    fn window_ends_at_the_last_whole_minute_before_the_delay() {
        // 1_000_015 - 10 = 1_000_005, whose minute starts at 999_960.
        assert_eq!(window(1_000_015, 10, 300), (999_660, 999_960));
        assert_eq!(window(1_000_030, 10, 60), (999_960, 1_000_020));
    }

    #[test]
    fn rate_sums_counter_increase_and_histogram_counts_per_second() {
        let counter = window_of(MetricKind::Counter, &[300.0, 300.0]);
        let histogram = window_of(MetricKind::Histogram, &[5.0; 120]);
        let rate = aggregate(Aggregation::Rate, &[counter, histogram], 300).unwrap();
        // 600 increase + 120 observations over 300 s.
        assert!((rate - 2.4).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn empty_windows_have_no_value_and_missing_numerators_count_as_zero() {
        assert_eq!(aggregate(Aggregation::Avg, &[], 60), None);
        assert_eq!(
            aggregate(Aggregation::Sum, &[window_of(MetricKind::Gauge, &[])], 60),
            None
        );
        assert_eq!(ratio(Aggregation::Rate, None, Some(10.0)), Some(0.0));
        assert_eq!(ratio(Aggregation::Avg, None, Some(10.0)), None);
        assert_eq!(ratio(Aggregation::Rate, Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(Aggregation::Rate, Some(1.0), Some(4.0)), Some(0.25));
    }

    #[test]
    fn levels_respect_direction_and_hysteresis_holds_only_the_firing_level() {
        let (w, c) = (Some(500.0), Some(1000.0));
        assert_eq!(level(Condition::Above, w, c, 50.0, 400.0, None), None);
        assert_eq!(
            level(Condition::Above, w, c, 50.0, 600.0, None),
            Some(Severity::Warning)
        );
        assert_eq!(
            level(Condition::Above, w, c, 50.0, 1001.0, None),
            Some(Severity::Critical)
        );
        // Firing at warning: 480 holds (threshold relaxed to 450), 440 does not.
        assert_eq!(
            level(Condition::Above, w, c, 50.0, 480.0, Some(Severity::Warning)),
            Some(Severity::Warning)
        );
        assert_eq!(
            level(Condition::Above, w, c, 50.0, 440.0, Some(Severity::Warning)),
            None
        );
        // Critical is not reached through the warning's hysteresis.
        assert_eq!(
            level(Condition::Above, w, c, 50.0, 980.0, Some(Severity::Warning)),
            Some(Severity::Warning)
        );
        // Below: throughput 100 / 50.
        let (w, c) = (Some(100.0), Some(50.0));
        assert_eq!(
            level(Condition::Below, w, c, 10.0, 40.0, None),
            Some(Severity::Critical)
        );
        assert_eq!(
            level(Condition::Below, w, c, 10.0, 105.0, Some(Severity::Warning)),
            Some(Severity::Warning)
        );
        assert_eq!(level(Condition::Below, w, c, 10.0, 115.0, None), None);
    }

    #[test]
    fn early_samples_give_the_plain_mean_and_variance_not_a_biased_ewma() {
        let settings = AnomalySettings {
            half_life_s: 3600,
            warmup_samples: 0,
            min_stddev: 0.0,
        };
        let mut baseline = None;
        for (i, v) in [98.0, 102.0, 100.0, 96.0, 104.0].iter().enumerate() {
            baseline = Some(sample_baseline(
                baseline,
                Some(*v),
                60 * i as i64,
                Condition::Outside,
                &settings,
            ));
        }
        let b = baseline.unwrap();
        assert!((b.mean - 100.0).abs() < 1e-9, "{}", b.mean);
        // Population variance of the five values: (4 + 4 + 0 + 16 + 16) / 5.
        assert!((b.variance - 8.0).abs() < 1e-9, "{}", b.variance);
    }

    #[test]
    fn baseline_samples_once_per_window_end_and_scores_against_the_past() {
        let settings = AnomalySettings {
            half_life_s: 600,
            warmup_samples: 5,
            min_stddev: 0.0,
        };
        let mut baseline = None;
        for (i, v) in [100.0, 102.0, 98.0, 101.0, 99.0, 100.0].iter().enumerate() {
            let b = sample_baseline(
                baseline,
                Some(*v),
                60 * i as i64,
                Condition::Outside,
                &settings,
            );
            if i < 5 {
                assert_eq!(b.last_score, None, "warming up at sample {i}");
            }
            baseline = Some(b);
        }
        let b = baseline.unwrap();
        assert!((b.mean - 100.0).abs() < 1.5, "{}", b.mean);
        // Same window end again: nothing changes.
        assert_eq!(
            sample_baseline(
                Some(b),
                Some(1e6),
                b.last_sample_end,
                Condition::Outside,
                &settings
            ),
            b
        );
        let spiked = sample_baseline(
            Some(b),
            Some(200.0),
            b.last_sample_end + 60,
            Condition::Outside,
            &settings,
        );
        assert!(spiked.last_score.unwrap() > 5.0, "{:?}", spiked.last_score);
        let dipped = sample_baseline(
            Some(b),
            Some(0.0),
            b.last_sample_end + 60,
            Condition::Above,
            &settings,
        );
        assert!(
            dipped.last_score.unwrap() < 0.0,
            "above-only rules score dips negative"
        );
    }
}
