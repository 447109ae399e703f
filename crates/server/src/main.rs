//! The `hourglass` binary: one binary, every role.

mod backfill_command;
mod cli;
mod commands;
mod demo;
mod demo_traffic;
mod node;
mod progress;

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
        Command::Serve(args) => node_main(serve_plan(*args)),
        Command::Demo(args) => {
            let args = *args;
            node_main(node::Plan { demo: Some(args.demo), ..serve_plan(args.serve) })
        }
        Command::Ingester(args) => {
            let args = *args;
            node_main(node::Plan { ingester: Some((args.ingest, Some(args.grpc_addr))), ..node::Plan::new(args.node) })
        }
        Command::Querier(args) => {
            let args = *args;
            node_main(node::Plan {
                querier: Some(args.query),
                flight_sql: Some(args.sql.grpc_addr),
                postgres: Some(args.sql.pg_addr),
                ..node::Plan::new(args.node)
            })
        }
        Command::Compactor(args) => {
            let args = *args;
            node_main(node::Plan { compactor: Some(args.compact), ..node::Plan::new(args.node) })
        }
        Command::Gateway(args) => {
            let args = *args;
            node_main(node::Plan { gateway: Some(args.forward), ..node::Plan::new(args.node) })
        }
        Command::Tenant { command } => client_main(commands::tenant(command)),
        Command::Query(args) => client_main(commands::query(args)),
        Command::Import(args) => client_main(commands::import(args)),
        Command::Backfill(args) => client_main(backfill_command::backfill(args)),
        Command::ProcessorVersions { server } => client_main(backfill_command::processor_versions(server)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `serve`: every role in one process.
fn serve_plan(args: cli::ServeArgs) -> node::Plan {
    let plan = node::Plan::new(args.node);
    node::Plan {
        ingester: Some((args.ingest, None)),
        querier: Some(args.query),
        compactor: Some(args.compact),
        flight_sql: Some(args.sql.grpc_addr),
        postgres: Some(args.sql.pg_addr),
        standalone: true,
        ..plan
    }
}

fn node_main(plan: node::Plan) -> anyhow::Result<()> {
    init_logging(plan.node.log_format);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let query_threads = match &plan.querier {
        Some(q) if q.query_threads > 0 => q.query_threads,
        Some(_) => cores,
        // Roles without a querier still get a small runtime; nothing heavy runs on it.
        None => 1,
    };
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
    let result = io_runtime.block_on(node::run(plan, query_runtime.handle().clone()));
    query_runtime.shutdown_background();
    result
}

fn client_main(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(work)
}
