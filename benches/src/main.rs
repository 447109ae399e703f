//! `hourglass-bench`: starts a real `hourglass serve`, measures ingest throughput with durable
//! acknowledgement, then query latency for one tenant, against bare DataFusion reading the same
//! Parquet files in the same run. Prints a Markdown report.
//!
//! Build and run in release: `cargo run --release -p hourglass-bench -- --help`.

mod ab;
mod dashboard;
mod data;
mod ingest;
mod jobs;
mod processor;
mod protocols;
mod query;
mod server;

use std::time::Duration;

use clap::Parser;

/// Counts heap bytes, for the in-process benchmarks' memory figures (`--jobs`).
#[global_allocator]
static HEAP: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// Benchmarks Hourglass end to end and prints figures as Markdown.
#[derive(Debug, Parser)]
struct Args {
    /// Dataset sizes for the query benchmark, in events (each is reached by ingesting more).
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    sizes: Vec<usize>,
    /// Events per ingest measurement.
    #[arg(long, default_value_t = 50_000)]
    ingest_events: usize,
    /// Repetitions of each measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Tenants sharing the data (skewed: tenant t000 has the most events).
    #[arg(long, default_value_t = 200)]
    tenants: usize,
    /// Skip the ingest measurements: load the data with 16 clients x 1000 events and run only
    /// the query comparison.
    #[arg(long)]
    query_only: bool,
    /// Run against a loopback cluster (ingesters, a querier and a gateway as separate processes
    /// on moto and PostgreSQL, which must be installed: scripts/test-deps) instead of one
    /// `hourglass serve`.
    #[arg(long)]
    cluster: bool,
    /// Ingesters of the --cluster.
    #[arg(long, default_value_t = 2)]
    ingesters: usize,
    /// Compare the protocols instead: bulk ingest over HTTP NDJSON, Flight DoPut and the
    /// streaming RPC, then a 1M-row result and small queries over HTTP, Flight SQL and the
    /// PostgreSQL wire protocol, on one `hourglass serve` and one tenant.
    #[arg(long)]
    protocols: bool,
    /// Events per run of each bulk ingest protocol (--protocols).
    #[arg(long, default_value_t = 1_000_000)]
    bulk_events: usize,
    /// Measure the processor alone, in process (rows/s, user-agent parsing with and without
    /// the cache), and start no server.
    #[arg(long)]
    processor: bool,
    /// Path of the `hourglass` binary (default: next to this one).
    #[arg(long)]
    hourglass: Option<std::path::PathBuf>,
    /// Run the dashboard benchmark instead: generate a data set as persisted partitions
    /// (--events over --days for --tenants Zipf-skewed tenants), let `hourglass serve` roll it
    /// up, then time the 15 reports of a dashboard over 30 days for the largest and a median
    /// tenant, cold and warm, against the same reports from events only and equivalent SQL;
    /// first with hour files of rollups and events, then with day files and day objects.
    #[arg(long)]
    dashboard: bool,
    /// Run the jobs benchmark instead, in process: compaction, day-object merge and backfill
    /// throughput, peak memory, and bytes per event before and after compaction and in day
    /// objects, over a data set generated like
    /// the dashboard's (--events over --days for --dashboard-tenants tenants), --runs times.
    #[arg(long)]
    jobs: bool,
    /// Events the dashboard benchmark generates.
    #[arg(long, default_value_t = 100_000_000)]
    events: u64,
    /// Tenants the dashboard benchmark generates (Zipf-skewed).
    #[arg(long, default_value_t = 10_000)]
    dashboard_tenants: usize,
    /// Days of traffic the dashboard benchmark generates.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Cold dashboard loads (each on a restarted server) per tenant.
    #[arg(long, default_value_t = 3)]
    cold_loads: usize,
    /// Warm dashboard loads after each cold one.
    #[arg(long, default_value_t = 10)]
    warm_loads: usize,
    /// Keep (or reuse) the dashboard benchmark's data directory here.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
    /// Compare ingest throughput with another `hourglass` binary instead (for example one built
    /// from before a processor change): both serve side by side, 16 clients x 1000 events,
    /// runs interleaved; --ingest-events events per run.
    #[arg(long)]
    against: Option<std::path::PathBuf>,
}

/// The median of some durations.
pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.processor {
        let bodies = data::sample_bodies(args.tenants, 1000, 50, 7);
        let bodies: Vec<bytes::Bytes> = bodies.into_iter().map(|(_, b)| b).collect();
        return processor::report(&bodies, args.runs);
    }
    if args.jobs {
        let options = jobs::Options {
            events: args.events,
            days: args.days,
            tenants: args.dashboard_tenants.max(1),
            runs: args.runs.max(1),
        };
        return jobs::run(&options).await;
    }
    let binary = match &args.hourglass {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("hourglass"),
    };
    if args.dashboard {
        let options = dashboard::Options {
            events: args.events,
            days: args.days,
            tenants: args.dashboard_tenants.max(1),
            cold_loads: args.cold_loads.max(1),
            warm_loads: args.warm_loads.max(1),
            keep: args.keep.clone(),
        };
        return dashboard::run(&binary, &options).await;
    }
    if let Some(other) = &args.against {
        return ab::ingest(&binary, other, args.ingest_events, args.runs, args.tenants).await;
    }
    let server = if args.cluster {
        server::Server::start_cluster(&binary, args.ingesters).await?
    } else {
        server::Server::start(&binary)?
    };
    println!("# Hourglass benchmark\n\nSetup: {}.\n", server.description);
    if args.protocols {
        anyhow::ensure!(!args.cluster, "--protocols runs on one `hourglass serve`");
        let tenants = data::Tenants::create(&server, 1).await?;
        let writer = &tenants.writers[0];
        protocols::ingest(&server, writer, args.bulk_events, args.runs).await?;
        server.admin().flush().await?;
        protocols::query(&server, &tenants.reader, args.runs).await?;
        return Ok(());
    }
    let tenants = data::Tenants::create(&server, args.tenants).await?;
    let mut loaded = 0usize;

    if !args.query_only {
        ingest_report(&args, &server, &tenants, &mut loaded).await?;
    }
    for size in &args.sizes {
        if loaded < *size {
            ingest::measure(&tenants, 16, 1000, size - loaded, 99).await?;
            loaded = *size;
        }
        server.admin().flush().await?;
        println!("\n## Query latency, {loaded} events\n");
        query::compare(&server, &tenants, args.runs).await?;
    }
    eprintln!("logs: {}", server.log_dir().display());
    drop(server);
    Ok(())
}

async fn ingest_report(
    args: &Args,
    server: &server::Server,
    tenants: &data::Tenants,
    loaded: &mut usize,
) -> anyhow::Result<()> {
    println!("## Ingest throughput (durable ack)\n");
    println!(
        "Median of {} runs of {} events each; {} tenants; events about 350 bytes of JSON.\n",
        args.runs, args.ingest_events, args.tenants
    );
    println!(
        "| clients | events/request | events/s | requests/s | requests per WAL sync | mean sync ms | server CPU µs/event | object-store PUTs per million events |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (clients, batch) in [(1, 100), (1, 1000), (16, 100), (16, 1000)] {
        let before = server::wal_counters(server).await?;
        let cpu_before = server.cpu_seconds();
        let mut samples = Vec::new();
        for run in 0..args.runs {
            let elapsed = ingest::measure(tenants, clients, batch, args.ingest_events, run as u64).await?;
            *loaded += args.ingest_events;
            samples.push(elapsed);
        }
        let t = median(samples).as_secs_f64();
        let events_per_s = args.ingest_events as f64 / t;
        let after = server::wal_counters(server).await?;
        let cpu = server.cpu_seconds() - cpu_before;
        let syncs = (after.1 - before.1).max(1.0);
        let events = (args.ingest_events * args.runs) as f64;
        println!(
            "| {clients} | {batch} | {events_per_s:.0} | {:.0} | {:.1} | {:.2} | {:.1} | {:.0} |",
            events_per_s / batch as f64,
            (after.0 - before.0) / syncs,
            (after.2 - before.2) * 1000.0 / syncs,
            cpu * 1e6 / events,
            (after.3 - before.3) * 1e6 / events
        );
    }

    Ok(())
}
