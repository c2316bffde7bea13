//! Turning `--rate` (data points per second) into a tick length and a request size.

use std::time::Duration;

use super::metrics::{POINTS_PER_PROCESS, POINTS_PER_ROUTE};
use super::model::ServiceName;

/// Routes per service at most: keeps one request around a few hundred KB, below common
/// receiver body limits. Higher rates tick faster instead.
pub const MAX_ROUTES_PER_SERVICE: usize = 500;
/// Ticks are never shorter than this; rates that would need shorter ticks are not reached.
pub const MIN_TICK: Duration = Duration::from_millis(10);

/// How the load generator meets its rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickPlan {
    pub tick: Duration,
    pub routes_per_service: usize,
}

impl TickPlan {
    /// The plan closest to `points_per_second` with ticks near `preferred_tick`.
    ///
    /// One tick sends one request per service holding `POINTS_PER_ROUTE · routes +
    /// POINTS_PER_PROCESS` points. The route count is picked for the preferred tick, then the
    /// tick is stretched or shrunk a little so the rate comes out exact.
    pub fn new(points_per_second: u64, preferred_tick: Duration) -> TickPlan {
        let rate = points_per_second.max(1) as f64;
        let services = ServiceName::ALL.len() as f64;
        let preferred_secs = preferred_tick.as_secs_f64().max(MIN_TICK.as_secs_f64());
        let per_request = rate * preferred_secs / services;
        let routes = ((per_request - POINTS_PER_PROCESS as f64) / POINTS_PER_ROUTE as f64)
            .round()
            .clamp(1.0, MAX_ROUTES_PER_SERVICE as f64) as usize;
        let plan = TickPlan {
            tick: Duration::ZERO,
            routes_per_service: routes,
        };
        let tick_secs = plan.points_per_tick() as f64 / rate;
        TickPlan {
            tick: Duration::from_secs_f64(tick_secs).max(MIN_TICK),
            ..plan
        }
    }

    pub fn points_per_request(&self) -> usize {
        self.routes_per_service * POINTS_PER_ROUTE + POINTS_PER_PROCESS
    }

    pub fn points_per_tick(&self) -> usize {
        self.points_per_request() * ServiceName::ALL.len()
    }

    /// The metric data points per second this plan sends.
    pub fn points_per_second(&self) -> f64 {
        self.points_per_tick() as f64 / self.tick.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_rate_matches_the_requested_rate() {
        for rate in [30, 100, 2000, 10_000, 50_000, 100_000] {
            let plan = TickPlan::new(rate, Duration::from_secs(1));
            let planned = plan.points_per_second();
            assert!(
                (planned / rate as f64 - 1.0).abs() < 0.001,
                "rate {rate}: planned {planned} with {plan:?}"
            );
        }
    }

    #[test]
    fn the_default_rate_keeps_the_one_second_tick() {
        let plan = TickPlan::new(2000, Duration::from_secs(1));
        assert!((plan.tick.as_secs_f64() - 1.0).abs() < 0.01, "{plan:?}");
        assert_eq!(plan.routes_per_service, 100);
    }

    #[test]
    fn low_rates_stretch_the_tick_to_fill_one_minimal_request() {
        let plan = TickPlan::new(3, Duration::from_secs(1));
        assert_eq!(plan.routes_per_service, 1);
        // 5 services × 6 points = 30 points take 10 s at 3 points/s.
        assert!((plan.tick.as_secs_f64() - 10.0).abs() < 1e-6, "{plan:?}");
    }

    #[test]
    fn high_rates_shorten_the_tick_instead_of_growing_requests() {
        let plan = TickPlan::new(1_000_000, Duration::from_secs(1));
        assert_eq!(plan.routes_per_service, MAX_ROUTES_PER_SERVICE);
        assert!(plan.tick < Duration::from_millis(20), "{plan:?}");
        assert!(plan.tick >= MIN_TICK);
    }
}
