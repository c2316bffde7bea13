//! Bounded retries with exponential backoff and full jitter, for the partial failures the SDK does not
//! retry by itself (failed entries of PutRecords, unprocessed items of DynamoDB batch calls, version
//! conflicts).

use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// No new attempt starts after this much time since the first one.
    pub max_elapsed: Duration,
    /// Upper bound of the first backoff; doubles every attempt.
    pub base_delay: Duration,
    /// Upper bound of any single backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Sized for a synchronous caller (the ingest request path): about two seconds at most.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_elapsed: Duration::from_secs(2),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(800),
        }
    }
}

impl RetryPolicy {
    /// Tracks one operation's attempts against this policy.
    pub fn start(&self) -> Attempts {
        Attempts {
            policy: *self,
            started: Instant::now(),
            made: 0,
        }
    }

    /// "Full jitter" backoff before retry number `retry` (1-based): uniform in
    /// `0..=min(max_delay, base_delay * 2^(retry-1))`, so concurrent writers spread out instead of
    /// retrying in lock-step against the same throttled shard or partition.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=ceiling_us))
    }
}

/// The attempts made so far for one operation.
#[derive(Debug)]
pub struct Attempts {
    policy: RetryPolicy,
    started: Instant,
    made: u32,
}

impl Attempts {
    /// Call before each attempt. The first call returns true at once; later calls sleep for the backoff
    /// and return true, or return false (without sleeping) when the attempts or the time are used up.
    pub async fn next(&mut self) -> bool {
        if self.made == 0 {
            self.made = 1;
            return true;
        }
        if self.made >= self.policy.max_attempts {
            return false;
        }
        let delay = self.policy.backoff(self.made);
        if self.started.elapsed() + delay > self.policy.max_elapsed {
            return false;
        }
        tokio::time::sleep(delay).await;
        self.made += 1;
        true
    }

    pub fn made(&self) -> u32 {
        self.made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_the_exponential_ceiling_and_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            max_elapsed: Duration::from_secs(60),
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        };
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(10));
            assert!(policy.backoff(3) <= Duration::from_millis(40));
            assert!(policy.backoff(30) <= Duration::from_millis(100));
        }
    }

    #[test]
    fn backoff_is_jittered_not_constant() {
        let policy = RetryPolicy::default();
        let samples: std::collections::HashSet<Duration> =
            (0..50).map(|_| policy.backoff(4)).collect();
        assert!(samples.len() > 1, "full jitter draws different delays");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_stop_at_the_attempt_limit() {
        let policy = RetryPolicy {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(3600),
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(5),
        };
        let mut attempts = policy.start();
        let mut made = 0;
        while attempts.next().await {
            made += 1;
        }
        assert_eq!(made, 3);
        assert_eq!(attempts.made(), 3);
    }

    #[tokio::test]
    async fn attempts_stop_when_the_time_budget_is_spent() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            max_elapsed: Duration::from_millis(30),
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        };
        let mut attempts = policy.start();
        let mut made = 0u32;
        while attempts.next().await {
            made += 1;
            assert!(made < 1000, "the time budget must end the loop");
        }
        assert!(made >= 1);
    }
}
