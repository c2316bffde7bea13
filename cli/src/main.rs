//! `flowscope`: local mode (the whole pipeline in one process) and the load generator.

// Input never panics the process: non-test code returns errors instead (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use clap::{Parser, Subcommand};

use flowscope_cli::{loadgen, local, logs};

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
    /// Log lines as human-readable text or one JSON object per line (with the request's trace
    /// and span ids), on stderr.
    #[arg(long, global = true, env = "FLOWSCOPE_LOG_FORMAT", value_enum, default_value_t = logs::LogFormat::Text)]
    log_format: logs::LogFormat,
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
    logs::init(cli.log_format, "info,tower_http=warn,hyper=warn");
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
        fn mi_option_set_default(option: std::ffi::c_int, value: std::ffi::c_long);
    }

    /// `mi_option_arena_eager_commit` in mimalloc v3's `mimalloc.h` (`mi_option_e`; the `mimalloc`
    /// crate does not export the v3 option names).
    const ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

    /// Sets mimalloc's option defaults before the program's first allocation reserves its arena:
    /// run by the loader (`.init_array`, after mimalloc's own initializer, which has priority 101
    /// and reads `MIMALLOC_*` from the environment), since `main` is too late — Rust's runtime
    /// allocates before it (checked: set from `main`, the 1 GiB arena was already mapped committed).
    ///
    /// Arena eager commit off (mimalloc's default is on where the OS overcommits, i.e. Linux).
    /// Measured on the rss10k row (same binary, env var): 136–157 MB with it, 92–114 MB without,
    /// and no more CPU per point in the e2e row (docs/performance.md "Round 4"). A
    /// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins (`mi_option_set_default` only
    /// changes options the environment did not set).
    #[cfg(target_os = "linux")]
    #[used]
    #[link_section = ".init_array"]
    static CONFIGURE_AT_LOAD: extern "C" fn() = configure;

    #[cfg(target_os = "linux")]
    extern "C" fn configure() {
        // SAFETY: sets an integer option's default; takes no pointers and does not allocate.
        unsafe { mi_option_set_default(ARENA_EAGER_COMMIT, 0) };
    }

    /// mimalloc's value of `arena_eager_commit` (for the test that `configure` took effect).
    #[cfg(test)]
    fn arena_eager_commit() -> std::ffi::c_long {
        extern "C" {
            fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
        }
        // SAFETY: reads an integer option.
        unsafe { mi_option_get(ARENA_EAGER_COMMIT) }
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

    #[cfg(all(test, target_os = "linux"))]
    mod tests {
        /// The loader ran `configure`: the option is off, and mimalloc's arena (1 GiB reserved)
        /// is not mapped read-write up front, i.e. memory is committed as it is used.
        #[test]
        fn the_arena_is_committed_on_demand_unless_the_environment_says_otherwise() {
            if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
                return;
            }
            assert_eq!(super::arena_eager_commit(), 0);
            let _warm = vec![0u8; 1 << 20];
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let committed_gib = maps.lines().find(|line| {
                let mut fields = line.split_whitespace();
                let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                    return false;
                };
                let (start, end) = range.split_once('-').unwrap();
                let len =
                    u64::from_str_radix(end, 16).unwrap() - u64::from_str_radix(start, 16).unwrap();
                perms.starts_with("rw") && len >= 512 << 20
            });
            assert_eq!(committed_gib, None, "{maps}");
        }
    }
}
