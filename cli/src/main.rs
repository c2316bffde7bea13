//! `flowscope`: local mode (the whole pipeline in one process) and the load generator.

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use flowscope_cli::{loadgen, local};

/// mimalloc instead of glibc's malloc (measured, issue 11): glibc spent ~60% of the aggregator
/// benchmark's cycles in malloc/free, and kept ~1.9× the live heap as RSS in local mode.
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
