//! Which traces are stored and shown live.
//!
//! Per service and minute, the first [`SamplingPolicy::per_minute`] traces are kept; beyond that a
//! trace is kept when its id hashes into the [`SamplingPolicy::ratio`] (so a replay, or another shard,
//! decides the same); a trace with a failed span is always kept, also when the error arrives after the
//! trace was dropped ([`promote`]).
//!
//! The minute is the trace's own (its first span's start), not the clock's, and the counts live in the
//! shard's state: decisions are a pure function of the shard's records in order, which is what makes a
//! redelivered batch decide exactly as before. Counting per shard means a stream of `n` shards keeps up
//! to `n × per_minute` traces per service and minute before the ratio applies; configure `per_minute`
//! per shard accordingly.

use std::collections::BTreeMap;

use crate::model::stable_hash;
use crate::spans::hex;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingPolicy {
    /// Traces per service and minute kept before the ratio applies.
    pub per_minute: u32,
    /// Share of the remaining traces kept, 0..=1.
    pub ratio: f64,
}

impl Default for SamplingPolicy {
    fn default() -> Self {
        SamplingPolicy {
            per_minute: 10,
            ratio: 0.1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepReason {
    /// Within the first `per_minute` traces of its service and minute.
    Quota,
    /// Its id hashed into the ratio.
    Ratio,
    /// It has a failed span.
    Error,
}

impl KeepReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepReason::Quota => "quota",
            KeepReason::Ratio => "ratio",
            KeepReason::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Keep(KeepReason),
    Drop,
}

impl Decision {
    pub fn is_kept(self) -> bool {
        matches!(self, Decision::Keep(_))
    }

    pub fn reason(self) -> Option<KeepReason> {
        match self {
            Decision::Keep(reason) => Some(reason),
            Decision::Drop => None,
        }
    }
}

/// Traces counted per (service, minute since the epoch).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quotas {
    counts: BTreeMap<(String, i64), u32>,
}

impl Quotas {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one more trace of `service` in `minute` if fewer than `limit` were counted.
    fn take(&mut self, service: &str, minute: i64, limit: u32) -> bool {
        let count = self
            .counts
            .entry((service.to_string(), minute))
            .or_insert(0);
        if *count < limit {
            *count += 1;
            true
        } else {
            false
        }
    }

    /// Forgets minutes before `minute` (their traces have all been decided).
    pub fn forget_before(&mut self, minute: i64) {
        self.counts.retain(|(_, m), _| *m >= minute);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i64, u32)> {
        self.counts
            .iter()
            .map(|((service, minute), count)| (service.as_str(), *minute, *count))
    }

    pub fn insert(&mut self, service: String, minute: i64, count: u32) {
        self.counts.insert((service, minute), count);
    }
}

/// Whether `trace_id` falls in the kept `ratio` of ids: stable across builds and platforms.
pub fn ratio_keeps(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    // Hashing (rather than reading the id's random bits) also spreads non-random ids evenly. FNV
    // alone barely moves its high bits when only the last bytes differ, hence the finalizer.
    let hash = fmix64(stable_hash(&[&hex(trace_id)]));
    (hash as f64) < ratio * (u64::MAX as f64)
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Decides a trace the first time it is seen. An error keeps it without using the quota.
pub fn decide(
    policy: &SamplingPolicy,
    quotas: &mut Quotas,
    service: &str,
    minute: i64,
    trace_id: &[u8; 16],
    has_error: bool,
) -> Decision {
    if has_error {
        Decision::Keep(KeepReason::Error)
    } else if quotas.take(service, minute, policy.per_minute) {
        Decision::Keep(KeepReason::Quota)
    } else if ratio_keeps(trace_id, policy.ratio) {
        Decision::Keep(KeepReason::Ratio)
    } else {
        Decision::Drop
    }
}

/// The decision after more spans of a decided trace arrived: a dropped trace with an error is kept.
pub fn promote(decision: Decision, has_error: bool) -> Decision {
    match decision {
        Decision::Drop if has_error => Decision::Keep(KeepReason::Error),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    fn id_ending_in(n: u32) -> [u8; 16] {
        let mut id = [0xa0u8; 16];
        id[12..].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[test]
    fn the_ratio_keeps_about_its_share_and_always_the_same_ids() {
        let kept: Vec<u32> = (0..20_000).filter(|n| ratio_keeps(&id(*n), 0.1)).collect();
        assert!(
            (1_700..2_300).contains(&kept.len()),
            "kept {} of 20000",
            kept.len()
        );
        let again: Vec<u32> = (0..20_000).filter(|n| ratio_keeps(&id(*n), 0.1)).collect();
        assert_eq!(kept, again);
        // Ids that differ only in their last bytes (sequential generators) spread as well.
        let kept = (0..20_000)
            .filter(|n| ratio_keeps(&id_ending_in(*n), 0.1))
            .count();
        assert!((1_700..2_300).contains(&kept), "kept {kept} of 20000");
        assert!(ratio_keeps(&id(1), 1.0));
        assert!(!ratio_keeps(&id(1), 0.0));
        assert!(!ratio_keeps(&id(1), f64::NAN));
    }

    #[test]
    fn quota_is_per_service_and_minute_and_errors_do_not_use_it() {
        let policy = SamplingPolicy {
            per_minute: 2,
            ratio: 0.0,
        };
        let mut quotas = Quotas::new();
        let mut decide_for = |service: &str, minute: i64, n: u32, error: bool| {
            decide(&policy, &mut quotas, service, minute, &id(n), error)
        };
        assert_eq!(
            decide_for("a", 1, 1, true),
            Decision::Keep(KeepReason::Error)
        );
        assert_eq!(
            decide_for("a", 1, 2, false),
            Decision::Keep(KeepReason::Quota)
        );
        assert_eq!(
            decide_for("a", 1, 3, false),
            Decision::Keep(KeepReason::Quota)
        );
        assert_eq!(decide_for("a", 1, 4, false), Decision::Drop);
        assert_eq!(
            decide_for("b", 1, 5, false),
            Decision::Keep(KeepReason::Quota)
        );
        assert_eq!(
            decide_for("a", 2, 6, false),
            Decision::Keep(KeepReason::Quota)
        );
    }

    #[test]
    fn a_late_error_promotes_a_dropped_trace_and_nothing_else_changes() {
        assert_eq!(
            promote(Decision::Drop, true),
            Decision::Keep(KeepReason::Error)
        );
        assert_eq!(promote(Decision::Drop, false), Decision::Drop);
        assert_eq!(
            promote(Decision::Keep(KeepReason::Quota), true),
            Decision::Keep(KeepReason::Quota)
        );
    }
}
