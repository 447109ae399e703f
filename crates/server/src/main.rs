//! The `hourglass` binary: one binary, every role.

mod cli;
mod commands;
mod serve;

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOURGLASS_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve_main(*args),
        Command::Tenant { command } => client_main(commands::tenant(command)),
        Command::Query(args) => client_main(commands::query(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve_main(args: cli::ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let query_threads = if args.query.query_threads == 0 { cores } else { args.query.query_threads };
    // DataFusion's CPU-bound work runs on its own runtime so that a heavy query cannot delay
    // ingest acknowledgements and health checks on the IO runtime.
    let query_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(query_threads)
        .thread_name("hourglass-query")
        .enable_all()
        .build()?;
    let io_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("hourglass-io")
        .enable_all()
        .build()?;
    let result = io_runtime.block_on(serve::run(args, query_runtime.handle().clone()));
    query_runtime.shutdown_background();
    result
}

fn client_main(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(work)
}
