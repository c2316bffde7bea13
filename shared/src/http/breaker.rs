//! A circuit breaker around the query path's store reads (issue 15 item 7b), with `failsafe`'s
//! state machine (closed → open → half-open probes), so a store that throttles, hangs or is gone
//! costs a query at most [`BreakerSettings::timeout`] and, once the breaker is open, nothing: reads
//! are refused at once as `Unavailable` and the API answers from its recent results, marked stale
//! ([`super::caching`]).
//!
//! - Every read runs under a timeout; a timeout, `Throttled` or `Unavailable` counts as a failure
//!   (`Corrupt` does not: the store answered).
//! - The breaker opens after `consecutive_failures` failures in a row, or when under
//!   `min_success_rate` of at least `min_requests` reads within `window` succeed.
//! - Open for `open_for` at first, doubling while probes keep failing (at most `open_for_max`);
//!   then half-open: reads go through again as probes, and a success closes it.
//!
//! Writes (the aggregator's) never pass through here: only the API's store is wrapped.

use std::sync::Arc;
use std::time::Duration;

use failsafe::failure_policy::{
    consecutive_failures, success_rate_over_time_window, ConsecutiveFailures, FailurePolicy as _,
    OrElse, SuccessRateOverTimeWindow,
};
use failsafe::futures::CircuitBreaker;
use failsafe::StateMachine;

use futures::future::BoxFuture;

use crate::ports::{MetricStore, StoreError, StoreHooks, Wrapped};

/// The breaker's settings (local mode: `--query-store-*` flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// One store read may take this long.
    pub timeout: Duration,
    /// Failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// Success rate below which the breaker opens (with `min_requests` reads in `window`).
    pub min_success_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    /// First open period; doubles while half-open probes fail, up to `open_for_max`.
    pub open_for: Duration,
    pub open_for_max: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            timeout: Duration::from_secs(2),
            consecutive_failures: 5,
            min_success_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(5),
            open_for_max: Duration::from_secs(60),
        }
    }
}

type Policy = OrElse<SuccessRateOverTimeWindow<Doubling>, ConsecutiveFailures<Doubling>>;

/// The open periods: `start`, doubling up to `max`. (failsafe's own exponential backoff refuses — by
/// panicking — starts under a second.)
#[derive(Debug, Clone, Copy)]
pub struct Doubling {
    next: Duration,
    max: Duration,
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next.min(self.max);
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(current)
    }
}

/// The hooks of a metric store whose reads pass through a circuit breaker (writes are forwarded
/// as they are): each read gets the timeout, and a read while the breaker is open fails at once.
pub struct Breaker {
    breaker: StateMachine<Policy, ()>,
    timeout: Duration,
}

/// A metric store whose reads pass through a [`Breaker`].
pub type BreakerStore = Wrapped<Breaker>;

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Breaker {
        let backoff = Doubling {
            next: settings.open_for,
            max: settings.open_for_max.max(settings.open_for),
        };
        let policy = success_rate_over_time_window(
            settings.min_success_rate.clamp(0.0, 1.0),
            settings.min_requests,
            settings.window,
            backoff,
        )
        .or_else(consecutive_failures(
            settings.consecutive_failures.max(1),
            backoff,
        ));
        Breaker {
            breaker: failsafe::Config::new().failure_policy(policy).build(),
            timeout: settings.timeout,
        }
    }

    /// `inner` with its reads behind a breaker of `settings`.
    pub fn around(inner: Arc<dyn MetricStore>, settings: BreakerSettings) -> BreakerStore {
        Wrapped::new(inner, Breaker::new(settings))
    }

    /// Whether reads are let through now (closed or half-open).
    pub fn is_closed(&self) -> bool {
        self.breaker.is_call_permitted()
    }
}

impl StoreHooks for Breaker {
    fn read<'a, T: Send + 'a>(
        &'a self,
        read: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        let timeout = self.timeout;
        Box::pin(async move {
            let timed = async move {
                tokio::time::timeout(timeout, read)
                    .await
                    .unwrap_or_else(|_| {
                        Err(StoreError::Unavailable(format!(
                            "no answer within {timeout:?}"
                        )))
                    })
            };
            let is_outage = |e: &StoreError| !matches!(e, StoreError::Corrupt { .. });
            match self.breaker.call_with(is_outage, timed).await {
                Ok(value) => Ok(value),
                Err(failsafe::Error::Inner(e)) => Err(e),
                Err(failsafe::Error::Rejected) => Err(StoreError::Unavailable(
                    "circuit breaker open: the store failed recently, reads resume after a pause"
                        .into(),
                )),
            }
        })
    }
}
