//! Ingest throughput: concurrent clients sending pre-built bodies, each answered only once durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::data::Tenants;

/// Sends `events` events as `batch`-event requests from `clients` concurrent clients and
/// returns the wall time. Bodies are generated before the clock starts.
pub(crate) async fn measure(
    tenants: &Tenants,
    clients: usize,
    batch: usize,
    events: usize,
    seed: u64,
) -> anyhow::Result<Duration> {
    let requests = events.div_ceil(batch);
    let bodies = Arc::new(tenants.bodies(batch, 64.min(requests).max(1), seed));
    let writers = Arc::new(tenants.writers.clone());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let bodies = Arc::clone(&bodies);
        let writers = Arc::clone(&writers);
        let share = requests / clients + usize::from(c < requests % clients);
        tasks.push(tokio::spawn(async move {
            for r in 0..share {
                let (tenant, body) = &bodies[(c + r * clients) % bodies.len()];
                let response = writers[*tenant].ingest(body.clone()).await?;
                anyhow::ensure!(response.accepted == batch, "partial accept: {response:?}");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}
