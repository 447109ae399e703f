//! Ingest A/B: two `hourglass` binaries (for example this build and one from before a change to
//! the processor) side by side in one run, on the same generated events, their runs interleaved
//! so that the machine's background load falls on both alike.

use std::path::Path;
use std::time::Duration;

use crate::data::Tenants;
use crate::server::Server;
use crate::{ingest, median};

/// Clients and events per request of the compared load: the spine's headline configuration.
const CLIENTS: usize = 16;
const BATCH: usize = 1000;

struct Side {
    name: String,
    server: Server,
    tenants: Tenants,
    seconds: Vec<Duration>,
    cpu_per_event: Vec<f64>,
}

/// Starts one `serve` per binary, warms both up, then alternates `runs` measurements of
/// `events` events on each and prints events/s and server CPU per event with their ratios.
pub(crate) async fn ingest(
    this: &Path,
    other: &Path,
    events: usize,
    runs: usize,
    tenants: usize,
) -> anyhow::Result<()> {
    let mut sides = Vec::new();
    for binary in [this, other] {
        let server = Server::start(binary)?;
        let tenants = Tenants::create(&server, tenants).await?;
        // The first requests compile the user-agent rules and fill caches.
        ingest::measure(&tenants, CLIENTS, BATCH, events.min(20_000), 1).await?;
        sides.push(Side {
            name: binary.display().to_string(),
            server,
            tenants,
            seconds: Vec::new(),
            cpu_per_event: Vec::new(),
        });
    }
    for run in 0..runs {
        // Alternate which binary goes first, so neither always follows the other's persist.
        let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let side = &mut sides[i];
            let cpu_before = side.server.cpu_seconds();
            let elapsed = ingest::measure(&side.tenants, CLIENTS, BATCH, events, 100 + run as u64).await?;
            side.seconds.push(elapsed);
            side.cpu_per_event.push((side.server.cpu_seconds() - cpu_before) * 1e6 / events as f64);
        }
    }

    println!("## Ingest A/B, {CLIENTS} clients x {BATCH} events, durable ack\n");
    println!("Median of {runs} interleaved runs of {events} events on each binary.\n");
    println!("| binary | events/s | server CPU µs/event | events/s vs the second | CPU vs the second |");
    println!("|---|---:|---:|---:|---:|");
    let figures: Vec<(f64, f64)> = sides
        .iter()
        .map(|s| (events as f64 / median(s.seconds.clone()).as_secs_f64(), median_f64(s.cpu_per_event.clone())))
        .collect();
    let (base_rate, base_cpu) = figures[1];
    for (side, (rate, cpu)) in sides.iter().zip(&figures) {
        println!("| {} | {rate:.0} | {cpu:.1} | {:.2} | {:.2} |", side.name, rate / base_rate, cpu / base_cpu);
    }
    Ok(())
}

fn median_f64(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
