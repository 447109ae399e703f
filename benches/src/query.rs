//! Query latency: Hourglass over HTTP against bare DataFusion over the same Parquet files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::data::Tenants;
use crate::median;
use crate::server::{ParquetHome, Server};

/// (name, Hourglass SQL, bare DataFusion SQL over all tenants' rows).
const QUERIES: [(&str, &str, &str); 3] = [
    ("count", "SELECT count(*) AS n FROM events", "SELECT count(*) AS n FROM events WHERE tenant_id = 't000'"),
    (
        "count by hour",
        "SELECT date_trunc('hour', timestamp) AS h, count(*) AS n FROM events GROUP BY h ORDER BY h",
        "SELECT date_trunc('hour', timestamp) AS h, count(*) AS n FROM events WHERE tenant_id = 't000' GROUP BY h ORDER BY h",
    ),
    (
        "top 10 paths",
        "SELECT path, count(*) AS n FROM events GROUP BY path ORDER BY n DESC, path LIMIT 10",
        "SELECT path, count(*) AS n FROM events WHERE tenant_id = 't000' GROUP BY path ORDER BY n DESC, path LIMIT 10",
    ),
];

async fn time<F, Fut>(runs: usize, mut f: F) -> anyhow::Result<(Duration, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let rows = f().await?; // warm-up: caches and connections
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        f().await?;
        samples.push(started.elapsed());
    }
    Ok((median(samples), rows))
}

pub(crate) async fn compare(server: &Server, tenants: &Tenants, runs: usize) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(cores));
    let (url, files, bytes) = match &server.parquet {
        ParquetHome::Local(objects) => {
            let events_dir = objects.join("events");
            let files = walk(&events_dir);
            let bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
            (format!("{}/", events_dir.display()), files.len(), bytes)
        }
        ParquetHome::S3 { bucket, store } => {
            let base = url::Url::parse(&format!("s3://{bucket}"))?;
            ctx.register_object_store(&base, Arc::clone(store));
            let listed: Vec<_> = store.list(Some(&"events".into())).try_collect().await?;
            let parquet: Vec<_> = listed.iter().filter(|m| m.location.as_ref().ends_with(".parquet")).collect();
            (format!("s3://{bucket}/events/"), parquet.len(), parquet.iter().map(|m| m.size).sum())
        }
    };
    ctx.register_parquet("events", &url, ParquetReadOptions::default()).await?;
    let total: usize =
        tenants.reader.query_json("SELECT count(*) AS n FROM events").await?[0]["n"].as_u64().unwrap_or(0) as usize;
    println!(
        "Tenant t000 holds {total} of the events; {} Parquet files, {:.1} MiB. Median of {runs} warm runs.\n",
        files,
        bytes as f64 / 1048576.0
    );
    println!("| query | Hourglass (HTTP, JSON) ms | bare DataFusion ms | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, ours, bare) in QUERIES {
        let reader = &tenants.reader;
        let (hg, hg_rows) = time(runs, || async move { Ok(reader.query_json(ours).await?.len()) }).await?;
        let ctx = &ctx;
        let (df, df_rows) = time(runs, || async move {
            let batches = ctx.sql(bare).await?.collect().await?;
            Ok(batches.iter().map(|b| b.num_rows()).sum())
        })
        .await?;
        anyhow::ensure!(hg_rows == df_rows, "{name}: Hourglass returned {hg_rows} rows, DataFusion {df_rows}");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("| {name} | {:.1} | {:.1} | {:.2} |", ms(hg), ms(df), ms(hg) / ms(df).max(1e-9));
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}
