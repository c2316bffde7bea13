//! Shapes over simulated time that bend a service's baseline: smooth sine cycles, rare random
//! spikes and slow creeping trends.
//!
//! Random shapes draw from their own seeded RNG in time order, so the same seed gives the same
//! shape no matter how often it is sampled. Time (seconds since the run started) only moves forward.

use std::f64::consts::TAU;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A periodic swing around 1.0: `1 + amplitude · sin(2π·t / period + phase)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SineCycle {
    pub period_secs: f64,
    /// Relative swing; kept below 1 so the factor never reaches zero.
    pub amplitude: f64,
    pub phase: f64,
}

impl SineCycle {
    pub fn factor(&self, t_secs: f64) -> f64 {
        if self.period_secs <= 0.0 {
            return 1.0;
        }
        let amplitude = self.amplitude.clamp(0.0, 0.95);
        1.0 + amplitude * (TAU * t_secs / self.period_secs + self.phase).sin()
    }
}

/// One incident: a window of time during which a service degrades.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub start_secs: f64,
    pub duration_secs: f64,
    /// Peak intensity in (0, 1]: how bad this incident gets.
    pub severity: f64,
}

impl Spike {
    pub fn end_secs(&self) -> f64 {
        self.start_secs + self.duration_secs
    }

    /// Trapezoid: ramps up and down over a fifth of the duration (at most 5 s each way), so charts
    /// show a climb and a recovery rather than a square wave.
    pub fn intensity(&self, t_secs: f64) -> f64 {
        if t_secs < self.start_secs || t_secs >= self.end_secs() {
            return 0.0;
        }
        let ramp = (self.duration_secs / 5.0).min(5.0);
        if ramp <= 0.0 {
            return self.severity;
        }
        let since_start = t_secs - self.start_secs;
        let until_end = self.end_secs() - t_secs;
        self.severity * (since_start / ramp).min(until_end / ramp).min(1.0)
    }
}

/// How often and how long incidents happen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeConfig {
    /// Mean quiet time between two spikes (exponentially distributed, so spikes are memoryless).
    pub mean_gap_secs: f64,
    pub min_duration_secs: f64,
    pub max_duration_secs: f64,
}

/// Incidents over a run: rare random ones, generated one after another as time advances, plus any
/// planned ones (`flowscope loadgen --spike`). Where two overlap, the worse one counts.
#[derive(Debug, Clone)]
pub struct SpikeSchedule {
    config: SpikeConfig,
    rng: StdRng,
    /// The current or next random incident; `None` when random incidents are off.
    current: Option<Spike>,
    planned: Vec<Spike>,
}

impl SpikeSchedule {
    pub fn new(seed: u64, config: SpikeConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let current = Some(next_spike(&mut rng, &config, 0.0));
        SpikeSchedule {
            config,
            rng,
            current,
            planned: Vec::new(),
        }
    }

    /// Only the planned incidents: a run whose incidents happen exactly when asked.
    pub fn without_random(mut self) -> Self {
        self.current = None;
        self
    }

    pub fn with_planned(mut self, planned: Vec<Spike>) -> Self {
        self.planned = planned;
        self
    }

    /// Spike intensity in [0, 1] at `t_secs`. Calls must not go back in time: random spikes that
    /// already ended are forgotten.
    pub fn intensity(&mut self, t_secs: f64) -> f64 {
        let random = match self.current.as_mut() {
            Some(current) => {
                while t_secs >= current.end_secs() {
                    *current = next_spike(&mut self.rng, &self.config, current.end_secs());
                }
                current.intensity(t_secs)
            }
            None => 0.0,
        };
        self.planned
            .iter()
            .map(|spike| spike.intensity(t_secs))
            .fold(random, f64::max)
    }
}

fn next_spike(rng: &mut StdRng, config: &SpikeConfig, after_secs: f64) -> Spike {
    // A floor on the gap keeps two incidents from merging into one long one.
    let gap = exponential(rng, config.mean_gap_secs).max(10.0);
    let (low, high) = ordered(config.min_duration_secs, config.max_duration_secs);
    let duration = if high > low {
        rng.random_range(low..high)
    } else {
        low
    };
    Spike {
        start_secs: after_secs + gap,
        duration_secs: duration.max(1.0),
        severity: rng.random_range(0.4..=1.0),
    }
}

/// How a slow trend grows and when it resets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CreepConfig {
    /// Growth per second while creeping (e.g. memory percent leaked per second).
    pub rise_per_sec: f64,
    /// The trend never adds more than this, however long it creeps.
    pub max_rise: f64,
    /// Mean time between resets (a restart, a full GC); exponentially distributed.
    pub mean_reset_secs: f64,
}

/// A sawtooth: grows slowly and linearly, drops back to zero at random resets.
#[derive(Debug, Clone)]
pub struct CreepTrend {
    config: CreepConfig,
    rng: StdRng,
    cycle_start_secs: f64,
    next_reset_secs: f64,
}

impl CreepTrend {
    pub fn new(seed: u64, config: CreepConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let next_reset_secs = reset_gap(&mut rng, &config);
        CreepTrend {
            config,
            rng,
            cycle_start_secs: 0.0,
            next_reset_secs,
        }
    }

    /// Amount added at `t_secs`, in [0, max_rise]. Calls must not go back in time.
    pub fn offset(&mut self, t_secs: f64) -> f64 {
        while t_secs >= self.next_reset_secs {
            self.cycle_start_secs = self.next_reset_secs;
            self.next_reset_secs += reset_gap(&mut self.rng, &self.config);
        }
        let grown = self.config.rise_per_sec.max(0.0) * (t_secs - self.cycle_start_secs).max(0.0);
        grown.min(self.config.max_rise.max(0.0))
    }
}

fn reset_gap(rng: &mut StdRng, config: &CreepConfig) -> f64 {
    // At least a minute between resets, so the creep is visible before it drops.
    exponential(rng, config.mean_reset_secs).max(60.0)
}

/// Exponentially distributed draw with the given mean (inverse CDF).
fn exponential(rng: &mut impl Rng, mean: f64) -> f64 {
    let uniform: f64 = rng.random();
    // 1 - u is in (0, 1], so the logarithm is finite.
    -mean.max(0.0) * (1.0 - uniform).ln()
}

fn ordered(a: f64, b: f64) -> (f64, f64) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPIKES: SpikeConfig = SpikeConfig {
        mean_gap_secs: 300.0,
        min_duration_secs: 3.0,
        max_duration_secs: 60.0,
    };
    const CREEP: CreepConfig = CreepConfig {
        rise_per_sec: 0.01,
        max_rise: 20.0,
        mean_reset_secs: 1800.0,
    };

    fn spike_trace(seed: u64, seconds: u32) -> Vec<f64> {
        let mut schedule = SpikeSchedule::new(seed, SPIKES);
        (0..seconds)
            .map(|t| schedule.intensity(f64::from(t)))
            .collect()
    }

    #[test]
    fn sine_cycle_swings_within_its_amplitude_and_repeats_each_period() {
        let cycle = SineCycle {
            period_secs: 600.0,
            amplitude: 0.3,
            phase: 0.7,
        };
        let mut low = f64::MAX;
        let mut high = f64::MIN;
        for t in 0..1200 {
            let factor = cycle.factor(f64::from(t));
            low = low.min(factor);
            high = high.max(factor);
            let one_period_later = cycle.factor(f64::from(t) + 600.0);
            assert!((factor - one_period_later).abs() < 1e-9);
        }
        assert!((0.7 - 1e-9..0.71).contains(&low), "low {low}");
        assert!((1.29..=1.3 + 1e-9).contains(&high), "high {high}");
    }

    #[test]
    fn planned_spikes_happen_exactly_when_asked_and_random_ones_can_be_turned_off() {
        let planned = Spike {
            start_secs: 30.0,
            duration_secs: 60.0,
            severity: 1.0,
        };
        let mut schedule = SpikeSchedule::new(11, SPIKES)
            .without_random()
            .with_planned(vec![planned]);
        let trace: Vec<f64> = (0..6 * 3600)
            .map(|t| schedule.intensity(f64::from(t)))
            .collect();
        let spiking: Vec<usize> = (0..trace.len()).filter(|&t| trace[t] > 0.0).collect();
        assert_eq!(spiking.first(), Some(&31), "ramps up from its start");
        assert_eq!(spiking.last(), Some(&89), "over by its end");
        assert_eq!(trace[40..80].iter().filter(|i| **i == 1.0).count(), 40);

        // With random incidents on, the planned one is still there at full strength.
        let mut both = SpikeSchedule::new(11, SPIKES).with_planned(vec![planned]);
        let random_only = spike_trace(11, 6 * 3600);
        for (t, random) in random_only.iter().enumerate() {
            let combined = both.intensity(t as f64);
            assert_eq!(
                combined,
                random.max(planned.intensity(t as f64)),
                "at {t} s"
            );
        }
    }

    #[test]
    fn spikes_are_deterministic_for_a_seed_and_differ_between_seeds() {
        let a = spike_trace(7, 7200);
        let b = spike_trace(7, 7200);
        let c = spike_trace(8, 7200);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn spikes_do_not_depend_on_how_often_they_are_sampled() {
        let mut coarse = SpikeSchedule::new(3, SPIKES);
        let mut fine = SpikeSchedule::new(3, SPIKES);
        for t in 0..3600 {
            let t = f64::from(t);
            // The fine schedule is also sampled between whole seconds.
            fine.intensity(t - 0.5);
            assert_eq!(coarse.intensity(t), fine.intensity(t));
        }
    }

    #[test]
    fn spikes_are_rare_bounded_and_last_seconds_to_a_minute() {
        let trace = spike_trace(11, 6 * 3600);
        assert!(trace.iter().all(|i| (0.0..=1.0).contains(i)));
        let spiking = trace.iter().filter(|i| **i > 0.0).count();
        // Mean gap 5 min, mean duration ~30 s: roughly a tenth of the time, never most of it.
        assert!(spiking > 0, "six hours without a single spike");
        assert!(
            spiking < trace.len() / 4,
            "spiking {spiking} of {} s",
            trace.len()
        );

        let mut runs = Vec::new();
        let mut run = 0;
        for intensity in &trace {
            if *intensity > 0.0 {
                run += 1;
            } else if run > 0 {
                runs.push(run);
                run = 0;
            }
        }
        assert!(runs.len() >= 10, "only {} spikes in six hours", runs.len());
        assert!(runs.iter().all(|r| (1..=61).contains(r)), "{runs:?}");
    }

    #[test]
    fn creep_grows_between_resets_stays_bounded_and_resets_occasionally() {
        let mut trend = CreepTrend::new(5, CREEP);
        let mut previous = trend.offset(0.0);
        let mut resets = 0;
        for t in 1..(12 * 3600) {
            let offset = trend.offset(f64::from(t));
            assert!((0.0..=CREEP.max_rise).contains(&offset));
            if offset < previous {
                resets += 1;
            }
            previous = offset;
        }
        assert!(resets >= 5, "only {resets} resets in twelve hours");

        let mut again = CreepTrend::new(5, CREEP);
        let mut replay = CreepTrend::new(5, CREEP);
        for t in 0..3600 {
            assert_eq!(again.offset(f64::from(t)), replay.offset(f64::from(t)));
        }
    }
}
