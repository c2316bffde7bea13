//! `flowscope`: local mode (the whole pipeline in one process) and the load generator.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use flowscope_cli::{loadgen, local};

/// mimalloc instead of glibc's malloc (measured, issue 11): glibc spent ~60% of the aggregator
/// benchmark's cycles in malloc/free, and kept ~1.9× the live heap as RSS in local mode.
/// `--features system-alloc` leaves it out, for heap profilers that hook the system malloc.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "flowscope",
    version,
    about = "Real-time OTLP telemetry pipeline and live dashboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole pipeline on this machine: OTLP on :4318, API + WebSocket + dashboard on :8080.
    Local(Box<local::LocalArgs>),
    /// Send simulated OTLP metrics and traces from five services.
    Loadgen(loadgen::LoadgenArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    #[cfg(not(feature = "system-alloc"))]
    runtime.on_thread_park(freed_memory::on_worker_park);
    runtime.build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    #[cfg(not(feature = "system-alloc"))]
    tokio::spawn(freed_memory::purge_loop());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn,hyper=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs piped to a file or a collector stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Local(args) => local::run(*args).await,
        Command::Loadgen(args) => loadgen::run(args).await.map(|_| ()),
    }
}

/// Gives memory that mimalloc holds freed back to the OS while the process is quiet (issue 11).
///
/// mimalloc returns a thread's free pages only when that thread calls into it again, and purges
/// them to the OS only after `purge_delay` (1 s) on a later call: a worker that goes idle after a
/// burst kept what the burst freed for as long as it stayed idle (510 of 544 MB after the 100k
/// series load). `MIMALLOC_PURGE_DELAY=0` purged at once but cost ~30% throughput. Instead each
/// tokio worker collects its own heap when it parks, at most once per [`INTERVAL`], and a task
/// forces the program-wide purge of what was freed, every [`INTERVAL`]. Both only walk free pages:
/// cheap, and nothing on the hot path.
#[cfg(not(feature = "system-alloc"))]
mod freed_memory {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    const INTERVAL: Duration = Duration::from_secs(1);

    // The symbol is in the mimalloc library `libmimalloc-sys` builds and links (through the
    // `mimalloc` crate); its `extended` feature would only add this declaration (and a crate).
    extern "C" {
        fn mi_collect(force: bool);
    }

    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }

    /// Runs on a tokio worker just before it parks (goes idle).
    pub fn on_worker_park() {
        let now = Instant::now();
        let due = LAST.with(|last| match last.get() {
            Some(at) if now.duration_since(at) < INTERVAL => false,
            _ => {
                last.set(Some(now));
                true
            }
        });
        if due {
            // SAFETY: `mi_collect` takes no pointers; it only frees this thread's unused pages.
            unsafe { mi_collect(false) };
        }
    }

    /// Every [`INTERVAL`]: frees the current worker's unused pages and purges every free range of
    /// the program's arenas whose delay has passed, whichever thread freed it.
    pub async fn purge_loop() {
        let mut ticker = tokio::time::interval(INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            // SAFETY: as above; `force` also purges the arenas' free ranges program-wide.
            unsafe { mi_collect(true) };
        }
    }
}
