//! `hourglass demo`: `serve` with a demo tenant filled with a month of generated traffic
//! ([`crate::demo_traffic`]) and, unless turned off, a trickle of live visits, so that a new
//! user sees a full dashboard at once.
//!
//! The tenant's credentials are kept in `<data dir>/demo-tenant.json`, so a restart prints the
//! same token and only generates the traffic missed while the server was down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hourglass_catalog::{Catalog, secret};
use hourglass_ingest::Ingester;
use hourglass_types::TenantId;
use serde::{Deserialize, Serialize};

use crate::cli::DemoArgs;
use crate::demo_traffic::{GeneratedEvent, Traffic};

/// The demo tenant's id.
pub const TENANT: &str = "demo";
const STATE_FILE: &str = "demo-tenant.json";
/// Events per ingest request.
const BATCH: usize = 5_000;
/// How often live visits are sent.
const LIVE_TICK: Duration = Duration::from_secs(10);
/// The ingest API keeps events at most 31 days old; the demo stays a day inside that.
const MAX_DAYS: u32 = 30;

/// What a restart needs to know: the credentials and how far traffic was generated.
#[derive(Debug, Serialize, Deserialize)]
struct DemoState {
    tenant: String,
    read_token: String,
    write_key: String,
    generated_through_ms: i64,
}

fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_FILE)
}

fn load_state(data_dir: &Path) -> anyhow::Result<Option<DemoState>> {
    let path = state_path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_state(data_dir: &Path, state: &DemoState) -> anyhow::Result<()> {
    let path = state_path(data_dir);
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        restrict_permissions(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(state)?).with_context(|| format!("writing {}", tmp.display()))?;
        // Synced before the rename, so a power cut leaves the old file or the new one whole.
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // The file holds the demo tenant's secrets.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Creates (or finds) the demo tenant, fills in its traffic up to now, prints where to look,
/// then keeps sending live visits until the ingester shuts down (an error that
/// [`ingester_stopped`] recognizes).
pub async fn run(
    args: DemoArgs,
    catalog: Arc<dyn Catalog>,
    ingester: Arc<Ingester>,
    data_dir: PathBuf,
    url: String,
) -> anyhow::Result<()> {
    let tenant = TenantId::new(TENANT).map_err(|e| anyhow::anyhow!("demo tenant id: {e}"))?;
    let now = ingester.now_ms();
    let days = args.demo_days.clamp(1, MAX_DAYS);
    let month_ago = now - i64::from(days) * 86_400_000;
    let stored = load_state(&data_dir)?;
    let fresh = stored.is_none();
    let mut state = match stored {
        Some(state) => state,
        None => {
            // The file first: a crash before the tenant exists leaves credentials that the
            // next start registers, rather than a tenant whose token nobody knows.
            let state = DemoState {
                tenant: TENANT.to_string(),
                read_token: secret::generate(secret::READ_PREFIX),
                write_key: secret::generate(secret::WRITE_PREFIX),
                generated_through_ms: month_ago,
            };
            save_state(&data_dir, &state)?;
            state
        }
    };
    ensure_tenant(catalog.as_ref(), &tenant, &state, fresh, &data_dir).await?;

    let from = state.generated_through_ms.max(month_ago);
    let hours = (now - from + 3_599_999) / 3_600_000;
    println!("demo: generating {hours} hour{} of traffic for tenant {TENANT:?}", if hours == 1 { "" } else { "s" });
    let mut traffic = Traffic::new(args.demo_seed, args.demo_visits_per_day, now);
    let mut pending = Vec::new();
    let mut sent = 0;
    // A day at a time, recording progress after each: acknowledged events are durable, so an
    // interrupted fill resumes where it stopped instead of storing a day twice.
    let mut day_start = from;
    while day_start < now {
        let day_end = (day_start + 86_400_000).min(now);
        pending.extend(traffic.visits(day_start, day_end));
        sent += send_due(&ingester, &tenant, &mut pending, day_end).await?;
        state.generated_through_ms = day_end;
        save_state(&data_dir, &state)?;
        day_start = day_end;
    }
    ingester.flush().await.context("persisting the demo traffic")?;
    println!("demo: {sent} events stored");
    println!("demo ready: open {url}/#token={} (read token {})", state.read_token, state.read_token);
    println!("demo write key (to send events of your own): {}", state.write_key);

    if !args.demo_live {
        return Ok(());
    }
    let mut last = now;
    loop {
        tokio::time::sleep(LIVE_TICK).await;
        let now = ingester.now_ms();
        pending.extend(traffic.visits(last, now));
        last = now;
        match send_due(&ingester, &tenant, &mut pending, now).await {
            Ok(_) => {}
            Err(e) if ingester_stopped(&e) => return Ok(()),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "demo: live traffic not stored"),
        }
        state.generated_through_ms = now;
        if let Err(e) = save_state(&data_dir, &state) {
            tracing::warn!(error = %format!("{e:#}"), "demo: state not saved");
        }
    }
}

/// Registers the demo tenant with the state file's credentials unless it exists. An existing
/// tenant is this file's when the file was there before this start (it is written before the
/// tenant is created); with a file just written, it is someone else's.
async fn ensure_tenant(
    catalog: &dyn Catalog,
    tenant: &TenantId,
    state: &DemoState,
    fresh: bool,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let created =
        catalog.create_tenant(tenant, &secret::hash(&state.write_key), &secret::hash(&state.read_token)).await;
    match created {
        Ok(()) => Ok(()),
        Err(hourglass_catalog::Error::TenantExists { .. }) if !fresh => Ok(()),
        Err(hourglass_catalog::Error::TenantExists { .. }) => {
            let path = state_path(data_dir);
            // These credentials do not open the existing tenant: keeping them would make the
            // next start trust them.
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            anyhow::bail!(
                "a tenant named {TENANT:?} exists but {} was missing, so its token is unknown; \
                 run the demo with another --data-dir",
                path.display()
            )
        }
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("creating the demo tenant (credentials in {})", state_path(data_dir).display()))),
    }
}

/// Whether `e` only says that the ingester shut down while the demo was sending.
pub fn ingester_stopped(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref::<hourglass_ingest::Error>(), Some(hourglass_ingest::Error::ShuttingDown)))
}

/// Ingests the events of `pending` that are due by `now_ms` in time order, and keeps the rest
/// (the later pages of visits still going on). Returns how many were stored.
async fn send_due(
    ingester: &Ingester,
    tenant: &TenantId,
    pending: &mut Vec<GeneratedEvent>,
    now_ms: i64,
) -> anyhow::Result<usize> {
    pending.sort_by_key(|e| std::cmp::Reverse(e.timestamp_ms));
    let split = pending.partition_point(|e| e.timestamp_ms > now_ms);
    let due: Vec<GeneratedEvent> = pending.drain(split..).rev().collect();
    let mut stored = 0;
    for chunk in due.chunks(BATCH) {
        let mut body = String::with_capacity(chunk.len() * 400);
        for event in chunk {
            body.push_str(&event.line);
            body.push('\n');
        }
        let outcome = ingester.ingest(tenant, Bytes::from(body), false).await.context("ingesting demo traffic")?;
        if let Some(error) = outcome.errors.first() {
            anyhow::bail!("the ingester refused {} demo events, the first: {error:?}", outcome.errors.len());
        }
        stored += outcome.accepted;
    }
    Ok(stored)
}
