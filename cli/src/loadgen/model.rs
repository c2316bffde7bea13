//! The five simulated services: their baselines and how those baselines move over time.

use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::args::parse_duration;
use super::shape::{CreepConfig, CreepTrend, SineCycle, Spike, SpikeConfig, SpikeSchedule};

/// The services of the simulated system. Requests enter at `Api`, which calls the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceName {
    Auth,
    Api,
    Database,
    Cache,
    Queue,
}

impl ServiceName {
    pub const ALL: [ServiceName; 5] = [
        ServiceName::Auth,
        ServiceName::Api,
        ServiceName::Database,
        ServiceName::Cache,
        ServiceName::Queue,
    ];

    /// The `service.name` resource attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Auth => "auth",
            ServiceName::Api => "api",
            ServiceName::Database => "database",
            ServiceName::Cache => "cache",
            ServiceName::Queue => "queue",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn profile(self) -> &'static ServiceProfile {
        &PROFILES[self.index()]
    }
}

impl FromStr for ServiceName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .into_iter()
            .find(|name| name.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = ServiceName::ALL.iter().map(|n| n.as_str()).collect();
                format!("unknown service {s:?} (one of {})", names.join(", "))
            })
    }
}

/// One incident asked for on the command line: `SERVICE[:START[:DURATION]]`, e.g. `api:30s:90s`.
/// It runs at full intensity (5× latency, a fifth of requests failing) from `start` after the
/// run begins, for `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedSpike {
    pub service: ServiceName,
    pub start: Duration,
    pub duration: Duration,
}

/// How long a planned spike lasts when `--spike` names no duration.
pub const DEFAULT_SPIKE_DURATION: Duration = Duration::from_secs(60);

impl FromStr for PlannedSpike {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let service = parts.next().unwrap_or_default().parse()?;
        let start = parts.next().map(parse_duration).transpose()?;
        let duration = parts.next().map(parse_duration).transpose()?;
        if parts.next().is_some() {
            return Err(format!("expected SERVICE[:START[:DURATION]], got {s:?}"));
        }
        let duration = duration.unwrap_or(DEFAULT_SPIKE_DURATION);
        if duration.is_zero() {
            return Err(format!("spike {s:?} lasts no time"));
        }
        Ok(PlannedSpike {
            service,
            start: start.unwrap_or_default(),
            duration,
        })
    }
}

/// The incidents of a run: random ones (unless turned off) and the planned ones.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikePlan {
    pub random: bool,
    pub planned: Vec<PlannedSpike>,
}

impl Default for SpikePlan {
    fn default() -> Self {
        SpikePlan {
            random: true,
            planned: Vec::new(),
        }
    }
}

impl SpikePlan {
    fn schedule_for(&self, name: ServiceName, seed: u64, config: SpikeConfig) -> SpikeSchedule {
        let planned = self
            .planned
            .iter()
            .filter(|spike| spike.service == name)
            .map(|spike| Spike {
                start_secs: spike.start.as_secs_f64(),
                duration_secs: spike.duration.as_secs_f64(),
                severity: 1.0,
            })
            .collect();
        let schedule = SpikeSchedule::new(seed, config).with_planned(planned);
        if self.random {
            schedule
        } else {
            schedule.without_random()
        }
    }
}

/// A service's normal behaviour, before cycles, spikes and trends.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProfile {
    pub name: ServiceName,
    /// Median request latency; latencies are log-normal around it.
    pub latency_median_ms: f64,
    /// Log-normal shape: larger means a heavier tail (p99 / p50 = e^(2.33·σ)).
    pub latency_sigma: f64,
    pub throughput_rps: f64,
    /// Fraction of requests that fail, in [0, 1].
    pub error_rate: f64,
    pub cpu_percent: f64,
    pub memory_percent: f64,
    /// Load swings: a slow one (think time of day, compressed) and a faster one.
    pub cycles: [SineCycle; 2],
    pub spikes: SpikeConfig,
    pub memory_creep: CreepConfig,
    /// `(http.request.method, http.route)` of the endpoints it serves, busiest first.
    pub routes: &'static [(&'static str, &'static str)],
}

const fn cycles(slow_secs: f64, fast_secs: f64, phase: f64) -> [SineCycle; 2] {
    [
        SineCycle {
            period_secs: slow_secs,
            amplitude: 0.35,
            phase,
        },
        SineCycle {
            period_secs: fast_secs,
            amplitude: 0.1,
            phase: phase * 2.0,
        },
    ]
}

const SPIKES: SpikeConfig = SpikeConfig {
    mean_gap_secs: 420.0,
    min_duration_secs: 3.0,
    max_duration_secs: 60.0,
};

static PROFILES: [ServiceProfile; 5] = [
    ServiceProfile {
        name: ServiceName::Auth,
        latency_median_ms: 12.0,
        latency_sigma: 0.4,
        throughput_rps: 300.0,
        error_rate: 0.005,
        cpu_percent: 25.0,
        memory_percent: 40.0,
        cycles: cycles(900.0, 97.0, 0.0),
        spikes: SPIKES,
        memory_creep: CreepConfig {
            rise_per_sec: 0.004,
            max_rise: 15.0,
            mean_reset_secs: 3600.0,
        },
        routes: &[
            ("POST", "/verify"),
            ("POST", "/login"),
            ("POST", "/refresh"),
            ("POST", "/logout"),
            ("GET", "/jwks"),
        ],
    },
    ServiceProfile {
        name: ServiceName::Api,
        latency_median_ms: 45.0,
        latency_sigma: 0.5,
        throughput_rps: 500.0,
        error_rate: 0.01,
        cpu_percent: 45.0,
        memory_percent: 55.0,
        cycles: cycles(600.0, 61.0, 1.3),
        spikes: SPIKES,
        memory_creep: CreepConfig {
            rise_per_sec: 0.008,
            max_rise: 25.0,
            mean_reset_secs: 2400.0,
        },
        routes: &[
            ("GET", "/orders/{id}"),
            ("GET", "/orders"),
            ("POST", "/orders"),
            ("GET", "/users/{id}"),
            ("GET", "/search"),
            ("POST", "/cart/items"),
            ("POST", "/checkout"),
            ("DELETE", "/cart/items/{id}"),
        ],
    },
    ServiceProfile {
        name: ServiceName::Database,
        latency_median_ms: 8.0,
        latency_sigma: 0.8,
        throughput_rps: 400.0,
        error_rate: 0.002,
        cpu_percent: 55.0,
        memory_percent: 70.0,
        cycles: cycles(1200.0, 143.0, 2.1),
        spikes: SPIKES,
        memory_creep: CreepConfig {
            rise_per_sec: 0.002,
            max_rise: 20.0,
            mean_reset_secs: 5400.0,
        },
        routes: &[
            ("SELECT", "orders"),
            ("SELECT", "users"),
            ("INSERT", "orders"),
            ("UPDATE", "carts"),
            ("SELECT", "products"),
        ],
    },
    ServiceProfile {
        name: ServiceName::Cache,
        latency_median_ms: 1.5,
        latency_sigma: 0.3,
        throughput_rps: 900.0,
        error_rate: 0.001,
        cpu_percent: 15.0,
        memory_percent: 60.0,
        cycles: cycles(300.0, 41.0, 0.6),
        spikes: SPIKES,
        memory_creep: CreepConfig {
            rise_per_sec: 0.01,
            max_rise: 30.0,
            mean_reset_secs: 1800.0,
        },
        routes: &[("GET", "session"), ("GET", "product"), ("SET", "session")],
    },
    ServiceProfile {
        name: ServiceName::Queue,
        latency_median_ms: 4.0,
        latency_sigma: 0.6,
        throughput_rps: 200.0,
        error_rate: 0.003,
        cpu_percent: 20.0,
        memory_percent: 35.0,
        cycles: cycles(1500.0, 113.0, 3.0),
        spikes: SPIKES,
        memory_creep: CreepConfig {
            rise_per_sec: 0.005,
            max_rise: 20.0,
            mean_reset_secs: 3000.0,
        },
        routes: &[("publish", "order-events"), ("process", "order-events")],
    },
];

/// What a service looks like at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    pub latency_median_ms: f64,
    pub latency_sigma: f64,
    pub throughput_rps: f64,
    /// Fraction of requests that fail, in [0, 1].
    pub error_rate: f64,
    /// In [0, 100].
    pub cpu_percent: f64,
    /// In [0, 100].
    pub memory_percent: f64,
    /// Current incident intensity in [0, 1] (0: no spike).
    pub spike: f64,
}

/// During a full-intensity spike latency is this many times its usual value.
pub const SPIKE_LATENCY_FACTOR: f64 = 5.0;
/// During a full-intensity spike this fraction of requests fails.
pub const SPIKE_ERROR_RATE: f64 = 0.2;

impl Conditions {
    /// Combines a profile with the current shapes. `load` is the product of the sine cycles
    /// (around 1), `spike` the incident intensity, `memory_creep` the trend's offset and `noise`
    /// a small jitter in [-1, 1].
    pub fn from_shapes(
        profile: &ServiceProfile,
        load: f64,
        spike: f64,
        memory_creep: f64,
        noise: f64,
    ) -> Conditions {
        let spike = spike.clamp(0.0, 1.0);
        let load = load.max(0.0);
        // Busier means a bit slower; an incident means much slower.
        let latency = profile.latency_median_ms
            * (1.0 + 0.3 * (load - 1.0))
            * (1.0 + (SPIKE_LATENCY_FACTOR - 1.0) * spike);
        let error_rate = profile.error_rate + (SPIKE_ERROR_RATE - profile.error_rate) * spike;
        let cpu = profile.cpu_percent * load * (1.0 + 0.6 * spike) + 2.0 * noise;
        let memory = profile.memory_percent + memory_creep + 0.5 * noise;
        Conditions {
            latency_median_ms: latency.max(0.05),
            latency_sigma: profile.latency_sigma,
            throughput_rps: (profile.throughput_rps * load * (1.0 + 0.3 * spike)).max(0.0),
            error_rate: error_rate.clamp(0.0, 1.0),
            cpu_percent: cpu.clamp(0.0, 100.0),
            memory_percent: memory.clamp(0.0, 100.0),
            spike,
        }
    }

    /// One request latency, log-normal around the current median.
    pub fn sample_latency_ms(&self, rng: &mut impl Rng) -> f64 {
        self.latency_median_ms * (self.latency_sigma * standard_normal(rng)).exp()
    }
}

/// Box–Muller transform: a standard normal draw from two uniforms.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One service's behaviour over a run: its profile bent by its own seeded shapes.
#[derive(Debug, Clone)]
pub struct ServiceBehaviour {
    profile: &'static ServiceProfile,
    spikes: SpikeSchedule,
    memory: CreepTrend,
    noise: StdRng,
}

impl ServiceBehaviour {
    pub fn new(name: ServiceName, seed: u64, spikes: &SpikePlan) -> Self {
        let profile = name.profile();
        // Each service and each shape gets its own stream, so services spike independently.
        let base = seed ^ (name.index() as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ServiceBehaviour {
            profile,
            spikes: spikes.schedule_for(name, base ^ 0x5350_494b, profile.spikes),
            memory: CreepTrend::new(base ^ 0x4d45_4d4f, profile.memory_creep),
            noise: StdRng::seed_from_u64(base ^ 0x4e4f_4953),
        }
    }

    /// Conditions `t_secs` into the run; calls must not go back in time.
    pub fn conditions_at(&mut self, t_secs: f64) -> Conditions {
        let load = self
            .profile
            .cycles
            .iter()
            .map(|cycle| cycle.factor(t_secs))
            .product();
        let spike = self.spikes.intensity(t_secs);
        let creep = self.memory.offset(t_secs);
        let noise = self.noise.random_range(-1.0..=1.0);
        Conditions::from_shapes(self.profile, load, spike, creep, noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: ServiceName, seed: u64, seconds: u32) -> Vec<Conditions> {
        let mut behaviour = ServiceBehaviour::new(name, seed, &SpikePlan::default());
        (0..seconds)
            .map(|t| behaviour.conditions_at(f64::from(t)))
            .collect()
    }

    #[test]
    fn profiles_are_indexed_by_their_own_name() {
        for name in ServiceName::ALL {
            assert_eq!(name.profile().name, name);
        }
        let names: Vec<&str> = ServiceName::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["auth", "api", "database", "cache", "queue"]);
    }

    #[test]
    fn conditions_stay_within_bounds_over_hours() {
        for name in ServiceName::ALL {
            for c in run(name, 42, 4 * 3600) {
                assert!(c.latency_median_ms > 0.0 && c.latency_median_ms.is_finite());
                assert!(c.throughput_rps >= 0.0 && c.throughput_rps.is_finite());
                assert!((0.0..=SPIKE_ERROR_RATE).contains(&c.error_rate), "{c:?}");
                assert!((0.0..=100.0).contains(&c.cpu_percent), "{c:?}");
                assert!((0.0..=100.0).contains(&c.memory_percent), "{c:?}");
                assert!((0.0..=1.0).contains(&c.spike));
            }
        }
    }

    #[test]
    fn conditions_are_deterministic_for_a_seed() {
        for name in ServiceName::ALL {
            assert_eq!(run(name, 9, 1800), run(name, 9, 1800));
            assert_ne!(run(name, 9, 1800), run(name, 10, 1800));
        }
    }

    #[test]
    fn services_have_distinct_baselines_and_spike_independently() {
        let api = run(ServiceName::Api, 3, 3 * 3600);
        let cache = run(ServiceName::Cache, 3, 3 * 3600);
        let mean =
            |v: &[Conditions]| v.iter().map(|c| c.latency_median_ms).sum::<f64>() / v.len() as f64;
        assert!(mean(&api) > 10.0 * mean(&cache));
        let api_spiking: Vec<bool> = api.iter().map(|c| c.spike > 0.0).collect();
        let cache_spiking: Vec<bool> = cache.iter().map(|c| c.spike > 0.0).collect();
        assert_ne!(api_spiking, cache_spiking);
    }

    #[test]
    fn a_full_spike_multiplies_latency_by_five_and_raises_errors_to_a_fifth() {
        let profile = ServiceName::Api.profile();
        let calm = Conditions::from_shapes(profile, 1.0, 0.0, 0.0, 0.0);
        let incident = Conditions::from_shapes(profile, 1.0, 1.0, 0.0, 0.0);
        assert!((calm.latency_median_ms - profile.latency_median_ms).abs() < 1e-9);
        assert!((incident.latency_median_ms / calm.latency_median_ms - 5.0).abs() < 1e-9);
        assert!((calm.error_rate - profile.error_rate).abs() < 1e-12);
        assert!((incident.error_rate - 0.2).abs() < 1e-12);
        assert!(incident.cpu_percent > calm.cpu_percent);
    }

    #[test]
    fn sampled_latencies_center_on_the_median() {
        let conditions = Conditions::from_shapes(ServiceName::Auth.profile(), 1.0, 0.0, 0.0, 0.0);
        let mut rng = StdRng::seed_from_u64(1);
        let mut samples: Vec<f64> = (0..20_001)
            .map(|_| conditions.sample_latency_ms(&mut rng))
            .collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        assert!(
            (median / conditions.latency_median_ms - 1.0).abs() < 0.05,
            "median {median}"
        );
        assert!(samples.iter().all(|s| *s > 0.0));
    }
}
