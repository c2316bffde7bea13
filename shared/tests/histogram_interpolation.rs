//! Explicit-bounds histograms interpolate within their buckets (issue 15 item 4): p50/p95/p99 of a
//! histogram point read close to the exact quantiles of the values the SDK recorded into it, instead
//! of snapping to one value per bucket. And exponential histograms still give p99 within 2%.
//!
//! Exact reference: `sorted[floor(q · (n − 1))]`, the rank the sketch answers (see
//! `aggregate_sketch_accuracy.rs`). `cargo test -p flowscope-core --test histogram_interpolation --
//! --nocapture` prints the table that `docs/quantiles.md` quotes (with the previous placement, one
//! value per bucket, beside it).

use flowscope_core::aggregate::contribution;
use flowscope_core::model::{PointData, Temporality};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const N: usize = 10_000;
const QS: [f64; 3] = [0.5, 0.95, 0.99];
/// The OpenTelemetry SDKs' default explicit bucket boundaries (milliseconds).
const SDK_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Latency-like distributions in milliseconds, 10k values each, seeded.
fn distributions() -> Vec<(&'static str, Vec<f64>)> {
    let mut rng = StdRng::seed_from_u64(15);
    let lognormal = (0..N)
        .map(|_| (40f64.ln() + 1.0 * normal(&mut rng)).exp())
        .collect();
    let exponential = (0..N)
        .map(|_| -100.0 * (1.0 - rng.random::<f64>()).ln())
        .collect();
    let uniform = (0..N).map(|_| rng.random_range(1.0..900.0)).collect();
    let bimodal = (0..N)
        .map(|i| {
            if i % 10 == 0 {
                (600.0 + 80.0 * normal(&mut rng)).max(1.0)
            } else {
                (30.0 + 8.0 * normal(&mut rng)).max(1.0)
            }
        })
        .collect();
    vec![
        ("lognormal (median 40)", lognormal),
        ("exponential (mean 100)", exponential),
        ("uniform 1..900", uniform),
        ("bimodal 30 / 600", bimodal),
    ]
}

/// What an SDK exports for `values` with explicit `bounds` (delta temporality, min/max/sum set).
fn explicit_point(values: &[f64], bounds: &[f64]) -> PointData {
    let mut counts = vec![0u64; bounds.len() + 1];
    for v in values {
        // A value v goes into the first bucket whose bound is ≥ v (buckets are (b[i-1], b[i]]).
        let i = bounds.partition_point(|b| b < v);
        counts[i] += 1;
    }
    PointData::Histogram {
        temporality: Temporality::Delta,
        count: values.len() as u64,
        sum: Some(values.iter().sum()),
        min: values.iter().copied().reduce(f64::min),
        max: values.iter().copied().reduce(f64::max),
        bounds: bounds.to_vec(),
        bucket_counts: counts,
    }
}

/// The placement before interpolation (one value per bucket: the midpoint of finite bounds, the
/// open-ended ones at min / max), kept here only to print the before/after comparison.
fn previous_placement(values: &[f64], bounds: &[f64]) -> flowscope_core::sketch::Sketch {
    let PointData::Histogram {
        bucket_counts,
        min,
        max,
        ..
    } = explicit_point(values, bounds)
    else {
        unreachable!()
    };
    let mut sketch = flowscope_core::sketch::Sketch::new();
    for (i, n) in bucket_counts.iter().enumerate() {
        let lower = i.checked_sub(1).map(|j| bounds[j]);
        let upper = bounds.get(i).copied();
        let at = match (lower, upper) {
            (Some(lo), Some(hi)) => lo + (hi - lo) / 2.0,
            (None, Some(hi)) => min.filter(|m| *m <= hi).unwrap_or(hi),
            (Some(lo), None) => max.filter(|m| *m > lo).unwrap_or(lo),
            (None, None) => unreachable!(),
        };
        let (lo, hi) = (min.unwrap(), max.unwrap());
        sketch.add_n(at.clamp(lo, hi), *n);
    }
    sketch
}

/// The bucket `(lower, upper]` of `bounds` that holds `value`.
fn bucket_of(value: f64, bounds: &[f64]) -> (f64, f64) {
    let i = bounds.partition_point(|b| *b < value);
    let lower = i.checked_sub(1).map_or(f64::NEG_INFINITY, |j| bounds[j]);
    let upper = bounds.get(i).copied().unwrap_or(f64::INFINITY);
    (lower, upper)
}

#[test]
fn explicit_histogram_quantiles_interpolate_within_their_buckets() {
    let mut after_total = 0.0;
    let mut before_total = 0.0;
    println!("| distribution | q | exact | before (one value per bucket) | after (interpolated) |");
    println!("|---|---|---|---|---|");
    for (name, values) in distributions() {
        let stats = contribution(&explicit_point(&values, &SDK_BOUNDS));
        let previous = previous_placement(&values, &SDK_BOUNDS);
        println!(
            "| {name} | sketch bytes | | {} | {} |",
            previous.to_bytes().len(),
            stats.sketch.to_bytes().len()
        );
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        // count/sum/min/max stay the point's own.
        assert_eq!(stats.count, N as u64);
        assert_eq!(stats.min, sorted.first().copied());
        assert_eq!(stats.max, sorted.last().copied());
        assert_eq!(stats.sketch.count(), N as u64);
        for q in QS {
            let exact = exact_quantile(&sorted, q);
            let after = stats.quantile(q).unwrap();
            let before = previous.quantile(q).unwrap();
            let after_error = (after - exact).abs() / exact;
            let before_error = (before - exact).abs() / exact;
            println!(
                "| {name} | p{} | {exact:.1} | {before:.1} ({:+.1}%) | {after:.1} ({:+.1}%) |",
                q * 100.0,
                (before - exact) * 100.0 / exact,
                (after - exact) * 100.0 / exact,
            );
            after_total += after_error;
            before_total += before_error;
            // Never outside the bucket that holds the exact value (+ the sketch's 1%).
            let (lower, upper) = bucket_of(exact, &SDK_BOUNDS);
            assert!(
                after >= lower.max(stats.min.unwrap()) * 0.99 - 1e-9
                    && after <= upper.min(stats.max.unwrap()) * 1.01 + 1e-9,
                "{name} p{q}: {after} outside ({lower}, {upper}] holding exact {exact}"
            );
        }
    }
    let cases = (4 * QS.len()) as f64;
    println!(
        "mean relative error: before {:.1}%, after {:.1}%",
        before_total * 100.0 / cases,
        after_total * 100.0 / cases
    );
    assert!(
        after_total < before_total / 2.0,
        "interpolation at least halves the mean error ({after_total} vs {before_total})"
    );
}

#[test]
fn quantiles_move_smoothly_as_latency_grows_instead_of_snapping_to_bounds() {
    // The incident in the issue: latency rising through the (250, 500] bucket. p95 must follow it,
    // not sit on one value per bucket.
    let mut rng = StdRng::seed_from_u64(3);
    let mut seen = Vec::new();
    for step in 0..10 {
        let centre = 280.0 + 20.0 * step as f64;
        let values: Vec<f64> = (0..2000)
            .map(|_| (centre + 10.0 * normal(&mut rng)).max(1.0))
            .collect();
        let stats = contribution(&explicit_point(&values, &SDK_BOUNDS));
        let p95 = stats.quantile(0.95).unwrap();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let exact = exact_quantile(&sorted, 0.95);
        assert!(
            (p95 - exact).abs() / exact <= 0.15,
            "step {step}: p95 {p95} vs exact {exact}"
        );
        seen.push(p95);
    }
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "p95 rises with every step: {seen:?}"
    );
}

/// Exponential bucket index of `value > 0` at `scale`: bucket i holds (base^i, base^(i+1)].
fn exponential_index(value: f64, scale: i32) -> i64 {
    ((value.log2() * 2f64.powi(scale)).ceil() - 1.0) as i64
}

/// The exponential histogram of `values` at `scale`, as an SDK exports it (delta, min/max/sum set).
fn exponential_point(values: &[f64], scale: i32) -> PointData {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(*v), b.max(*v)));
    let offset = exponential_index(lo, scale);
    let mut counts = vec![0u64; (exponential_index(hi, scale) - offset + 1) as usize];
    for v in values {
        counts[(exponential_index(*v, scale) - offset) as usize] += 1;
    }
    PointData::ExponentialHistogram {
        temporality: Temporality::Delta,
        count: values.len() as u64,
        sum: Some(values.iter().sum()),
        min: Some(lo),
        max: Some(hi),
        scale,
        zero_count: 0,
        positive_offset: offset as i32,
        positive_counts: counts,
        negative_offset: 0,
        negative_counts: Vec::new(),
    }
}

#[test]
fn exponential_histograms_keep_p99_within_their_bucket_width_and_two_percent_from_scale_6() {
    for (name, values) in distributions() {
        // The scale an SDK with its default 160 buckets picks for this range, and finer ones.
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(*v), b.max(*v)));
        let mut sdk_scale = 20;
        while exponential_index(hi, sdk_scale) - exponential_index(lo, sdk_scale) >= 160 {
            sdk_scale -= 1;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for scale in [sdk_scale, 6, 8] {
            let stats = contribution(&exponential_point(&values, scale));
            // Geometric midpoints: at most √base − 1 off, plus the sketch's 1%.
            let bound = (2f64.powf(2f64.powi(-scale)).sqrt() - 1.0) + 0.01 + 1e-9;
            for q in QS {
                let exact = exact_quantile(&sorted, q);
                let got = stats.quantile(q).unwrap();
                let error = (got - exact).abs() / exact;
                println!(
                    "exponential {name} scale {scale}: p{} exact {exact:.2} got {got:.2} ({:+.2}%)",
                    q * 100.0,
                    (got - exact) * 100.0 / exact
                );
                assert!(
                    error <= bound,
                    "{name} scale {scale} p{q}: {got} vs {exact}"
                );
                if q == 0.99 && scale >= 6 {
                    assert!(error <= 0.02, "{name} scale {scale}: p99 {got} vs {exact}");
                }
            }
        }
    }
}
