//! The sketch behind p50/p95/p99 stays within its 1% relative-accuracy promise on realistic data.
//!
//! Rank definition: DDSketch (`sketches-ddsketch`) answers quantile `q` of `n` values with the bin
//! holding the value of 0-based rank `floor(q · (n − 1))` in sorted order, so the exact reference is
//! `sorted[floor(q · (n − 1))]`.

use flowscope_core::aggregate::BucketStats;
use flowscope_core::sketch::{Sketch, RELATIVE_ACCURACY};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const N: usize = 200_000;
const QUANTILES: [f64; 10] = [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999];

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// Lognormal latencies in milliseconds (median ~40 ms, long right tail), via Box–Muller.
fn lognormal(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
            let u2: f64 = rng.random::<f64>();
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (40f64.ln() + 1.2 * normal).exp()
        })
        .collect()
}

fn assert_within_accuracy(name: &str, values: &[f64]) {
    let mut sketch = Sketch::new();
    for v in values {
        sketch.add(*v);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(sketch.count(), values.len() as u64);
    for q in QUANTILES {
        let exact = exact_quantile(&sorted, q);
        let estimate = sketch.quantile(q).unwrap();
        let error = (estimate - exact).abs() / exact.abs();
        // A hair of slack for float rounding at the exact edge of a bin.
        assert!(
            error <= RELATIVE_ACCURACY + 1e-9,
            "{name}: q={q} exact={exact} estimate={estimate} relative error={error}"
        );
    }
}

#[test]
fn lognormal_latencies_quantiles_are_within_one_percent() {
    let mut rng = StdRng::seed_from_u64(7);
    assert_within_accuracy("lognormal", &lognormal(&mut rng, N));
}

#[test]
fn uniform_values_quantiles_are_within_one_percent() {
    let mut rng = StdRng::seed_from_u64(11);
    let values: Vec<f64> = (0..N).map(|_| rng.random_range(0.5..5000.0)).collect();
    assert_within_accuracy("uniform", &values);
}

#[test]
fn values_spanning_nine_decades_are_within_one_percent() {
    // 1 µs .. 1000 s in seconds: the range the sketch is configured for without collapsing bins.
    let mut rng = StdRng::seed_from_u64(13);
    let values: Vec<f64> = (0..N)
        .map(|_| 10f64.powf(rng.random_range(-6.0..3.0)))
        .collect();
    assert_within_accuracy("log-uniform", &values);
}

#[test]
fn merged_bucket_quantiles_keep_the_accuracy_of_a_single_sketch() {
    let mut rng = StdRng::seed_from_u64(17);
    let values = lognormal(&mut rng, N);
    // 60 one-second buckets merged into one: what a 1m bucket built from many batches holds.
    let mut merged = BucketStats::new();
    for chunk in values.chunks(N / 60) {
        let mut part = BucketStats::new();
        for v in chunk {
            part.observe(*v);
        }
        merged.merge(&part);
    }
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    for q in [0.5, 0.95, 0.99] {
        let exact = exact_quantile(&sorted, q);
        let error = (merged.quantile(q).unwrap() - exact).abs() / exact;
        assert!(error <= RELATIVE_ACCURACY + 1e-9, "q={q} error={error}");
    }
    assert_eq!(merged.min, sorted.first().copied());
    assert_eq!(merged.max, sorted.last().copied());
}
