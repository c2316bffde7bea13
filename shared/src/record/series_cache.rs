//! A process-wide cache of series identities, shared by the receiver (OTLP attributes → series) and
//! record decoding (series tables → series): points of a series seen before (every export of a
//! steady workload) share its [`SeriesRef`] instead of rebuilding it — no owned strings, no
//! attribute map, no FNV pass over the key per point or series-table entry — and the receiver's and
//! the aggregator's points of one series share one key in memory.
//!
//! An optimisation only: a lookup hashes the borrowed strings (order-independently, as the key's
//! attribute map is sorted) and **verifies** the cached key against them — same service, metric and
//! attribute pairs, no repeated attribute key — before reusing it, so a hash collision or a hostile
//! request costs a miss, never a wrong series. It holds at most [`SERIES_CACHE_ENTRIES`] identities
//! and is emptied when full (a workload with more series than that is served as before, without the
//! cache's help).

use std::hash::{BuildHasher, Hasher};
use std::sync::{LazyLock, Mutex, MutexGuard};

use crate::model::{SeriesRef, Unit};

/// Most identities the cache holds (a few MB when full: a key is a few hundred bytes).
pub const SERIES_CACHE_ENTRIES: usize = 16_384;
/// Series with more attributes than this are not cached (verifying them costs what building does).
const MAX_CACHED_ATTRIBUTES: usize = 32;

pub(crate) struct SeriesCache {
    series: foldhash::HashMap<u64, SeriesRef>,
    units: foldhash::HashMap<Box<str>, Unit>,
    seed: foldhash::fast::FixedState,
}

static CACHE: LazyLock<Mutex<SeriesCache>> = LazyLock::new(|| {
    Mutex::new(SeriesCache {
        series: foldhash::HashMap::default(),
        units: foldhash::HashMap::default(),
        seed: foldhash::fast::FixedState::with_seed(0x5e71_e5ca_c4e0),
    })
});

/// The cache, locked. A poisoned lock only means another thread panicked while holding it: the
/// maps still hold verified entries only, so they are used as they are.
pub(crate) fn lock() -> MutexGuard<'static, SeriesCache> {
    CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SeriesCache {
    /// The series of `service`, `metric` and the attribute `pairs` (in any order), from the cache
    /// when it holds exactly that key; else `build()`'s, which must be that key (then cached).
    pub(crate) fn series<'a, I>(
        &mut self,
        service: &str,
        metric: &str,
        pairs: I,
        build: impl FnOnce() -> SeriesRef,
    ) -> SeriesRef
    where
        I: ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
    {
        if pairs.len() > MAX_CACHED_ATTRIBUTES {
            return build();
        }
        let hash = self.hash_of(service, metric, pairs.clone());
        if let Some(cached) = self.series.get(&hash) {
            if is_key(cached, service, metric, pairs) {
                return cached.clone();
            }
        }
        let built = build();
        if self.series.len() >= SERIES_CACHE_ENTRIES {
            self.series.clear();
        }
        self.series.insert(hash, built.clone());
        built
    }

    /// The shared [`Unit`] spelled `unit`.
    pub(crate) fn unit(&mut self, unit: &str) -> Unit {
        if let Some(cached) = self.units.get(unit) {
            return cached.clone();
        }
        let built = Unit::from(unit);
        if self.units.len() >= SERIES_CACHE_ENTRIES {
            self.units.clear();
        }
        self.units.insert(unit.into(), built.clone());
        built
    }

    /// Service and metric hashed in order, plus the sum of the pairs' own hashes (the same for the
    /// pairs in any order, as the key's sorted map is).
    fn hash_of<'a>(
        &self,
        service: &str,
        metric: &str,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> u64 {
        let strings = |a: &str, b: &str| {
            let mut hasher = self.seed.build_hasher();
            hasher.write(a.as_bytes());
            // A byte that cannot appear in UTF-8 keeps ("ab","c") and ("a","bc") apart.
            hasher.write_u8(0xff);
            hasher.write(b.as_bytes());
            hasher.finish()
        };
        pairs.fold(strings(service, metric), |hash, (k, v)| {
            hash.wrapping_add(strings(k, v))
        })
    }
}

/// Whether `series` is exactly the key `service`, `metric` and `pairs` make: the same service and
/// metric, as many attributes, each pair in the key's map, and no attribute key repeated (a repeated
/// key keeps one value in the map, so the pairs would name a smaller key).
fn is_key<'a>(
    series: &SeriesRef,
    service: &str,
    metric: &str,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
) -> bool {
    series.service == service
        && series.metric == metric
        && series.attributes.len() == pairs.len()
        && pairs.clone().enumerate().all(|(i, (k, v))| {
            series.attributes.get(k).is_some_and(|cached| cached == v)
                && pairs.clone().take(i).all(|(earlier, _)| earlier != k)
        })
}
