//! `flowscope loadgen`: five simulated services (`auth`, `api`, `database`, `cache`, `queue`)
//! sending real OTLP/HTTP protobuf metrics and traces to a receiver.
//!
//! Each tick every service exports its cumulative metrics (one request per service) and the spans
//! it recorded. Delivery runs in one worker per service, so a service's exports arrive in order —
//! a receiver computing deltas from cumulative values must never see them go backwards.

mod args;
mod fleet;
mod gauges;
mod metrics;
mod model;
mod otlp;
mod plan;
mod profiles;
mod sender;
mod shape;
mod stats;
mod traces;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

pub use args::{HeaderArg, LoadgenArgs};
pub use stats::LoadgenSummary;

use fleet::{Fleet, ServiceExport};
use model::ServiceName;
use plan::TickPlan;
use sender::{OtlpSender, RetryPolicy, SendError, Signal};
use stats::{Delivered, Stats};

/// Exports waiting per service before new ones are dropped. Small: with cumulative metrics a
/// dropped export loses nothing, while a long queue only delays fresh data.
const QUEUE_PER_SERVICE: usize = 4;
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// After Ctrl-C or `--duration`, how long in-flight requests may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One encoded request waiting for delivery.
#[derive(Debug, Clone)]
struct Payload {
    signal: Signal,
    body: Bytes,
    /// Metric data points or spans inside, for the totals.
    items: u64,
}

/// Runs until `--duration` has passed or Ctrl-C, then returns the totals.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<LoadgenSummary> {
    let plan = TickPlan::new(args.rate, args.interval);
    let sender = Arc::new(
        OtlpSender::new(
            &args.endpoint,
            &args.headers,
            args.gzip,
            RetryPolicy::default(),
        )
        .context("setting up the OTLP sender")?,
    );
    if let Some(series) = args.gauge_series {
        return gauges::run(args, series, sender).await;
    }
    let started_wall = SystemTime::now();
    let start_unix_nano = otlp::unix_nanos(started_wall);
    // Unique per run even with the same seed, like an SDK's instance id.
    let run_id = start_unix_nano ^ u64::from(std::process::id()).rotate_left(32);
    let mut fleet = Fleet::new(
        args.seed,
        &plan,
        &args.spike_plan(),
        args.traces_per_second,
        start_unix_nano,
        run_id,
    );
    if !args.quiet {
        eprintln!(
            "loadgen → {} | {:.0} points/s: {} services × {} points every {:.3}s | {} traces/s | seed {}{}",
            args.endpoint,
            plan.points_per_second(),
            ServiceName::ALL.len(),
            plan.points_per_request(),
            plan.tick.as_secs_f64(),
            args.traces_per_second,
            args.seed,
            if args.gzip { " | gzip" } else { "" },
        );
        for spike in &args.spikes {
            eprintln!(
                "loadgen: spike on {} from {}s for {}s",
                spike.service.as_str(),
                spike.start.as_secs_f64(),
                spike.duration.as_secs_f64()
            );
        }
        if args.no_random_spikes {
            eprintln!("loadgen: random spikes off");
        }
    }

    let stats = Arc::new(Stats::default());
    let mut workers = JoinSet::new();
    let queues: Vec<mpsc::Sender<Payload>> = ServiceName::ALL
        .iter()
        .map(|_| {
            let (queue, receiver) = mpsc::channel(QUEUE_PER_SERVICE);
            workers.spawn(deliver(Arc::clone(&sender), receiver, Arc::clone(&stats)));
            queue
        })
        .collect();

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    // Both start one period from now: the first export then covers a full tick.
    let mut ticker = tokio::time::interval_at(started + plan.tick, plan.tick);
    // If a tick runs late, do not burst to catch up: the receiver is likely the bottleneck.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut progress = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reporter = Progress::new(args.quiet);
    // Profiles: each service's conditions accumulate over a window, pushed every `--profile-interval`.
    let profile_every = args.profile_interval.max(Duration::from_secs(1));
    let mut profile_ticker = tokio::time::interval_at(started + profile_every, profile_every);
    profile_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut profile_windows = profiles::ProfileWindows::default();
    let profile_sender = profiles::ProfileSender::new(&args.endpoint, &args.headers);
    let mut profile_from = unix_seconds(SystemTime::now());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = sleep_until_deadline(deadline) => break,
            _ = ticker.tick() => {
                let now = otlp::unix_nanos(SystemTime::now());
                // An export whose queue is full would be dropped after encoding: drop it before.
                // Above the receiver's pace this is most ticks, and protobuf + gzip of them took
                // the CPU the receiver needs on the same machine.
                let exports = fleet
                    .tick(now)
                    .into_iter()
                    .filter(|export| {
                        let payloads = 1 + usize::from(export.traces.is_some());
                        let room = queues[export.service.index()].capacity() >= payloads;
                        if !room {
                            for _ in 0..payloads {
                                stats.record_dropped(format!(
                                    "{}: receiver too slow, export skipped",
                                    export.service.as_str()
                                ));
                            }
                        }
                        room
                    })
                    .collect();
                for (service, payload) in encode_exports(&sender, exports, &stats) {
                    enqueue(&queues[service.index()], service, payload, &stats);
                }
                if let Some(conditions) = fleet.last_conditions() {
                    profile_windows.record_tick(conditions, fleet.tick_secs());
                }
            }
            _ = profile_ticker.tick(), if !args.no_profiles => {
                let until = unix_seconds(SystemTime::now());
                let pushes = profile_windows.take(profile_from, until);
                profile_from = until;
                let (sender, stats) = (profile_sender.clone(), Arc::clone(&stats));
                // A few small requests every interval, off the tick loop.
                tokio::spawn(async move {
                    for push in pushes {
                        if let Err(error) = sender.send(push).await {
                            tracing::debug!(%error, "profile push failed");
                            stats.record_failure(error);
                        }
                    }
                });
            }
            _ = progress.tick() => reporter.print(&stats.snapshot(started.elapsed())),
        }
    }

    // Closing the queues lets each worker finish what it holds, then stop.
    drop(queues);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
    }
    let summary = stats.snapshot(started.elapsed());
    reporter.finish(&summary);
    Ok(summary)
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Encodes each service's exports for the wire: its metrics, then its spans if it has any.
fn encode_exports(
    sender: &OtlpSender,
    exports: Vec<ServiceExport>,
    stats: &Stats,
) -> Vec<(ServiceName, Payload)> {
    let mut payloads = Vec::with_capacity(exports.len() * 2);
    for export in exports {
        let metrics = sender
            .encode(&export.metrics)
            .map(|body| (Signal::Metrics, body, export.metric_points));
        let traces = export.traces.as_ref().map(|request| {
            sender
                .encode(request)
                .map(|body| (Signal::Traces, body, export.spans))
        });
        for encoded in std::iter::once(metrics).chain(traces) {
            match encoded {
                Ok((signal, body, items)) => payloads.push((
                    export.service,
                    Payload {
                        signal,
                        body,
                        items,
                    },
                )),
                Err(error) => stats.record_failure(format!("encoding failed: {error}")),
            }
        }
    }
    payloads
}

fn enqueue(queue: &mpsc::Sender<Payload>, service: ServiceName, payload: Payload, stats: &Stats) {
    if let Err(error) = queue.try_send(payload) {
        let reason = match error {
            mpsc::error::TrySendError::Full(_) => "receiver too slow, export skipped",
            mpsc::error::TrySendError::Closed(_) => "delivery worker stopped",
        };
        stats.record_dropped(format!("{}: {reason}", service.as_str()));
    }
}

/// Sends one service's payloads in order until its queue closes.
async fn deliver(sender: Arc<OtlpSender>, mut queue: mpsc::Receiver<Payload>, stats: Arc<Stats>) {
    while let Some(payload) = queue.recv().await {
        let bytes = payload.body.len() as u64;
        match sender.send(payload.signal, payload.body).await {
            Ok(delivery) => {
                let (points, spans) = match payload.signal {
                    Signal::Metrics => (payload.items, 0),
                    Signal::Traces => (0, payload.items),
                };
                let retries = u64::from(delivery.attempts.saturating_sub(1));
                stats.record_ok(Delivered {
                    points,
                    spans,
                    bytes,
                    retries,
                });
                // Only 429 and 503 are retried: every earlier attempt was refused.
                stats.record_refused(points, retries);
            }
            Err(error) => {
                if let SendError::Rejected {
                    status: 429 | 503,
                    attempts,
                    ..
                } = &error
                {
                    if payload.signal == Signal::Metrics {
                        stats.record_refused(payload.items, u64::from(*attempts));
                    }
                }
                tracing::debug!(%error, signal = ?payload.signal, "OTLP export failed");
                stats.record_failure(error.to_string());
            }
        }
    }
}

/// The once-a-second progress line on stderr: rewritten in place on a terminal, one line per
/// report otherwise (logs, CI).
struct Progress {
    quiet: bool,
    terminal: bool,
    last_points: u64,
    last_elapsed: Duration,
    printed: bool,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            last_points: 0,
            last_elapsed: Duration::ZERO,
            printed: false,
        }
    }

    fn print(&mut self, snapshot: &LoadgenSummary) {
        let window = snapshot
            .elapsed
            .saturating_sub(self.last_elapsed)
            .as_secs_f64();
        let recent = if window > 0.0 {
            snapshot.points_sent.saturating_sub(self.last_points) as f64 / window
        } else {
            0.0
        };
        self.last_points = snapshot.points_sent;
        self.last_elapsed = snapshot.elapsed;
        if self.quiet {
            return;
        }
        let line = snapshot.progress_line(recent);
        let mut stderr = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = if self.terminal {
            write!(stderr, "\r\x1b[2K{line}")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
        self.printed = true;
    }

    fn finish(&mut self, summary: &LoadgenSummary) {
        if self.quiet {
            return;
        }
        if self.terminal && self.printed {
            eprintln!();
        }
        eprintln!("{summary}");
    }
}
