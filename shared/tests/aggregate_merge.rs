//! Buckets merge exactly, in any order and through rollups: what lets many batches, shards and
//! resolutions add up to the same numbers.

use flowscope_core::testing::points;

use flowscope_core::aggregate::{rollup, BucketStats};
use flowscope_core::model::Resolution;
use points::fingerprint;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Values k/1024 (exact in binary, sums stay exact), some negative, some zero.
fn dataset(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(-2_000i64..200_000) as f64 / 1024.0)
        .collect()
}

fn aggregate(values: &[f64]) -> BucketStats {
    let mut stats = BucketStats::new();
    for v in values {
        stats.observe(*v);
    }
    stats
}

#[test]
fn random_splits_merged_in_any_order_equal_direct_aggregation() {
    let mut rng = StdRng::seed_from_u64(3);
    let values = dataset(&mut rng, 50_000);
    let direct = aggregate(&values);

    for round in 0..5 {
        // Random cut points → uneven parts, including empty ones.
        let mut cuts: Vec<usize> = (0..20)
            .map(|_| rng.random_range(0..=values.len()))
            .collect();
        cuts.extend([0, values.len()]);
        cuts.sort_unstable();
        let mut parts: Vec<BucketStats> = cuts
            .windows(2)
            .map(|w| aggregate(&values[w[0]..w[1]]))
            .collect();
        parts.shuffle(&mut rng);

        // Left fold in one shuffled order …
        let mut folded = BucketStats::new();
        for part in &parts {
            folded.merge(part);
        }
        // … and a pairwise tree in another.
        parts.shuffle(&mut rng);
        while parts.len() > 1 {
            let right = parts.pop().unwrap();
            let mut left = parts.pop().unwrap();
            left.merge(&right);
            parts.insert(0, left);
        }
        let tree = parts.pop().unwrap();

        for merged in [&folded, &tree] {
            assert_eq!(merged.count, direct.count, "round {round}");
            assert_eq!(merged.sum, direct.sum, "round {round}");
            assert_eq!(merged.min, direct.min, "round {round}");
            assert_eq!(merged.max, direct.max, "round {round}");
            for q in [0.0, 0.01, 0.5, 0.95, 0.99, 1.0] {
                assert_eq!(
                    merged.quantile(q),
                    direct.quantile(q),
                    "round {round} q={q}"
                );
            }
            assert_eq!(fingerprint(merged), fingerprint(&direct), "round {round}");
        }
    }
}

#[test]
fn rollup_one_minute_to_five_minutes_to_one_hour_equals_direct_aggregation() {
    let mut rng = StdRng::seed_from_u64(5);
    let base: i64 = 1_700_000_000 - 1_700_000_000 % 3600;
    // Three hours of timestamped values.
    let observations: Vec<(i64, f64)> = (0..30_000)
        .map(|_| {
            (
                base + rng.random_range(0..3 * 3600),
                rng.random_range(0i64..500_000) as f64 / 1024.0,
            )
        })
        .collect();
    let direct = |resolution: Resolution| -> Vec<(i64, BucketStats)> {
        let mut buckets: std::collections::BTreeMap<i64, BucketStats> = Default::default();
        for (t, v) in &observations {
            buckets
                .entry(resolution.bucket_start(*t))
                .or_default()
                .observe(*v);
        }
        buckets.into_iter().collect()
    };
    let mut minutes = direct(Resolution::OneMinute);
    minutes.shuffle(&mut rng); // the query layer may hand them over in any order

    let five = rollup(&minutes, Resolution::FiveMinutes);
    let hour_from_five = rollup(&five, Resolution::OneHour);
    let hour_from_minutes = rollup(&minutes, Resolution::OneHour);

    let same = |a: &[(i64, BucketStats)], b: &[(i64, BucketStats)]| {
        assert_eq!(a.len(), b.len());
        for ((sa, a), (sb, b)) in a.iter().zip(b) {
            assert_eq!(sa, sb);
            assert_eq!(fingerprint(a), fingerprint(b), "bucket {sa}");
        }
    };
    same(&five, &direct(Resolution::FiveMinutes));
    same(&hour_from_five, &direct(Resolution::OneHour));
    same(&hour_from_minutes, &direct(Resolution::OneHour));
    assert_eq!(hour_from_five.len(), 3);
    assert!(five.windows(2).all(|w| w[0].0 < w[1].0), "oldest first");
}
