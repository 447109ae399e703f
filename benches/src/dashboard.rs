//! The dashboard benchmark (`--dashboard`): a generated data set written as persisted
//! partitions, rolled up by a real `hourglass serve`, then the 15 reports of a merchant
//! dashboard over 30 days for the largest and a median tenant, cold (a fresh process) and
//! warm, with the same reports answered from events only and equivalent SQL in the same run.

pub(crate) mod generate;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hourglass_catalog::{CatalogOptions, SqlCatalog};
use hourglass_client::Client;
use hourglass_storage::ObjectStoreConfig;
use serde_json::{Value, json};

use self::generate::{Shape, tenant_id};
use crate::server::{ADMIN, Server};

/// The dashboard's reports: name and request.
fn reports() -> Vec<(&'static str, Value)> {
    let base =
        |metrics: Value, dims: Value| json!({"date_range": "30d", "metrics": metrics, "dimensions": dims, "limit": 10});
    let top = json!(["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]);
    let mut headline = base(top, json!([]));
    headline["compare"] = json!("previous_period");
    vec![
        ("top-line metrics, previous period", headline),
        (
            "visitors by day",
            json!({"date_range": "30d", "metrics": ["visitors", "visits", "pageviews"], "dimensions": ["time:day"]}),
        ),
        ("top pages", base(json!(["visitors", "pageviews"]), json!(["event:page"]))),
        ("entry pages", base(json!(["visits", "bounce_rate"]), json!(["visit:entry_page"]))),
        ("exit pages", base(json!(["visits"]), json!(["visit:exit_page"]))),
        ("sources", base(json!(["visitors", "visits", "bounce_rate"]), json!(["visit:source"]))),
        ("referrers", base(json!(["visitors"]), json!(["visit:referrer"]))),
        ("channels", base(json!(["visitors", "visits"]), json!(["visit:channel"]))),
        ("campaigns", base(json!(["visitors", "visits"]), json!(["visit:utm_campaign"]))),
        ("devices", base(json!(["visitors"]), json!(["visit:device"]))),
        ("browsers", base(json!(["visitors"]), json!(["visit:browser"]))),
        ("operating systems", base(json!(["visitors"]), json!(["visit:os"]))),
        ("countries", base(json!(["visitors"]), json!(["visit:country"]))),
        ("events", base(json!(["visitors", "events"]), json!(["event:name"]))),
        ("realtime", json!({"metrics": ["current_visitors", "pageviews"]})),
    ]
}

/// SQL over `events` and `sessions` giving what a few of the reports give, for the baseline.
fn equivalent_sql(now_ms: i64) -> Vec<(&'static str, String)> {
    let since = now_ms - 30 * 86_400_000;
    let range = format!("started_at >= to_timestamp_millis({since})");
    vec![
        (
            "top-line metrics",
            format!(
                "SELECT count(DISTINCT visitor_id), count(*), sum(pageviews), avg(CASE WHEN is_bounce THEN 100.0 ELSE 0.0 END) FROM sessions WHERE {range}"
            ),
        ),
        (
            "visitors by day",
            format!(
                "SELECT date_trunc('day', started_at), count(DISTINCT visitor_id) FROM sessions WHERE {range} GROUP BY 1 ORDER BY 1"
            ),
        ),
        (
            "top pages",
            format!(
                "SELECT path, count(DISTINCT visitor_id), count(*) FROM events WHERE name = 'pageview' AND timestamp >= to_timestamp_millis({since}) GROUP BY 1 ORDER BY 3 DESC LIMIT 10"
            ),
        ),
        (
            "sources",
            format!(
                "SELECT source, count(DISTINCT visitor_id), count(*) FROM sessions WHERE {range} GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
            ),
        ),
        (
            "countries",
            format!(
                "SELECT country, count(DISTINCT visitor_id) FROM sessions WHERE {range} GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
            ),
        ),
    ]
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Runs one dashboard load: every report in turn, their latencies.
async fn load(reader: &Client) -> anyhow::Result<Vec<(Duration, String)>> {
    let mut out = Vec::new();
    for (name, request) in reports() {
        let started = Instant::now();
        let answer =
            if name == "realtime" { reader.report_realtime(&request).await } else { reader.report(&request).await }
                .with_context(|| format!("report {name}"))?;
        out.push((started.elapsed(), answer["meta"]["path"].as_str().unwrap_or("?").to_string()));
    }
    Ok(out)
}

/// Options of the dashboard benchmark.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub events: u64,
    pub days: u32,
    pub tenants: usize,
    pub cold_loads: usize,
    pub warm_loads: usize,
    pub keep: Option<std::path::PathBuf>,
}

async fn prepare(options: &Options, data_dir: &Path) -> anyhow::Result<(u64, Duration)> {
    std::fs::create_dir_all(data_dir.join("objects"))?;
    let catalog_url = format!("sqlite://{}", data_dir.join("catalog.db").display());
    let catalog: Arc<dyn hourglass_catalog::Catalog> =
        Arc::new(SqlCatalog::open(&catalog_url, &CatalogOptions::default()).await?);
    let store = ObjectStoreConfig::Local { dir: data_dir.join("objects") }.build()?;
    let end_ms = chrono_now() - 2 * 3_600_000;
    let shape = Shape { events: options.events, days: options.days, tenants: options.tenants, end_ms };
    let started = Instant::now();
    let written = generate::generate(&shape, store, catalog, 42).await?;
    Ok((written, started.elapsed()))
}

/// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub(crate) fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Waits until every hour of the data is rolled up (so that the rollup job no longer competes
/// with the measured reports for the cores); returns how long that took.
async fn wait_for_rollups(reader: &Client, days: u32) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let today = chrono_now().div_euclid(86_400_000);
    let day = |d: i64| {
        let (y, m, dd) = civil_from_days(d);
        format!("{y:04}-{m:02}-{dd:02}")
    };
    let first = day(today - i64::from(days) - 1);
    let probe = json!({"date_range": [first, day(today)], "timezone": "UTC", "metrics": ["visits"]});
    let total = (i64::from(days) + 2) * 24;
    loop {
        let answer = reader.report(&probe).await?;
        // Every hour but the newest few (not settled yet) answered from rollups (hours
        // without events count as answered).
        let hours = answer["meta"]["rollup_hours"].as_u64().unwrap_or(0) as i64;
        if hours + 30 >= total {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(6 * 3600), "rollups did not catch up");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// One tenant's loads: id, read token, cold and warm latencies, per report, answer paths.
type Measured = (String, String, Vec<Duration>, Vec<Duration>, Vec<(Vec<Duration>, Vec<Duration>)>, Vec<String>);

/// Cold loads (each on a restarted server with `extra`) and warm loads after each, for every
/// reader; returns the server and the figures.
async fn measure(
    mut server: Server,
    readers: &[(String, String, String)],
    extra: &[&str],
    options: &Options,
) -> anyhow::Result<(Server, Vec<Measured>)> {
    let mut results = Vec::new();
    for (id, read_token, _) in readers {
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        let mut by_report: Vec<(Vec<Duration>, Vec<Duration>)> = vec![(Vec::new(), Vec::new()); reports().len()];
        let mut paths = Vec::new();
        for _ in 0..options.cold_loads {
            server = server.restart(extra)?;
            let reader = Client::new(&server.url, read_token);
            for (i, (d, path)) in load(&reader).await?.into_iter().enumerate() {
                cold.push(d);
                by_report[i].0.push(d);
                paths.push(path);
            }
            for _ in 0..options.warm_loads {
                for (i, (d, _)) in load(&reader).await?.into_iter().enumerate() {
                    warm.push(d);
                    by_report[i].1.push(d);
                }
            }
        }
        results.push((id.clone(), read_token.clone(), cold, warm, by_report, paths));
    }
    Ok((server, results))
}

/// The dashboard's reports answered from events only (rollups off), 2 loads per reader on a
/// server restarted with `extra`: the events layout alone decides their time.
async fn events_only(
    server: Server,
    readers: &[(String, String, String)],
    extra: &[&str],
) -> anyhow::Result<(Server, Vec<Vec<Duration>>)> {
    let mut args = vec!["--report-rollups", "false", "--query-memory-per-query", "6GiB", "--query-memory", "8GiB"];
    args.extend_from_slice(extra);
    let server = server.restart(&args)?;
    let mut by_tenant = Vec::new();
    for (_, read_token, _) in readers {
        let reader = Client::new(&server.url, read_token);
        let mut raw = Vec::new();
        for _ in 0..2 {
            raw.extend(load(&reader).await?.into_iter().map(|(d, _)| d));
        }
        by_tenant.push(raw);
    }
    Ok((server, by_tenant))
}

/// Rollup files holding more than one hour (merged days).
async fn merged_days(admin: &Client) -> anyhow::Result<i64> {
    let rows = admin
        .query_json("SELECT count(*) AS n FROM system.files WHERE table_name = 'rollups' AND max_time > min_time")
        .await?;
    Ok(rows.first().and_then(|r| r.get("n")).and_then(Value::as_i64).unwrap_or(0))
}

/// Waits until every settled day of the data keeps its rollups in one file, and its events
/// and raw events in one object per shard.
async fn wait_for_merged_days(admin: &Client, days: u32) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let settled_day = (chrono_now() - 2 * 3_600_000).div_euclid(86_400_000) * 86_400_000;
    let split = format!(
        "SELECT count(*) AS n FROM (SELECT date_trunc('day', min_time) FROM system.files \
         WHERE table_name = 'rollups' AND min_time < to_timestamp_millis({settled_day}) GROUP BY 1 HAVING count(*) > 1)"
    );
    // The compactor merges the same days' events and raw events into day objects.
    let split_objects = format!(
        "SELECT count(*) AS n FROM (SELECT table_name, shard, date_trunc('day', hour) FROM system.files \
         WHERE table_name IN ('events', 'raw_events') AND hour < to_timestamp_millis({settled_day}) \
         GROUP BY 1, 2, 3 HAVING count(DISTINCT path) > 1)"
    );
    let count = |rows: Vec<serde_json::Map<String, Value>>| {
        rows.first().and_then(|r| r.get("n")).and_then(Value::as_i64).unwrap_or(1)
    };
    loop {
        let left = count(admin.query_json(&split).await?) + count(admin.query_json(&split_objects).await?);
        if left == 0 && merged_days(admin).await? >= i64::from(days) - 2 {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(3600), "days were not merged");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The benchmark; prints Markdown.
pub(crate) async fn run(binary: &Path, options: &Options) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let data_dir = options.keep.clone().unwrap_or_else(|| scratch.path().join("data"));
    let reuse = data_dir.join("catalog.db").exists();
    let (written, generated_in) = if reuse { (0, Duration::ZERO) } else { prepare(options, &data_dir).await? };
    println!("# Dashboard benchmark\n");
    if !reuse {
        println!(
            "Data: {written} events over {} days, {} tenants (Zipf), written as persisted partitions in {:.0} s ({:.0} events/s through the processor and the Parquet writer).\n",
            options.days,
            options.tenants,
            generated_in.as_secs_f64(),
            written as f64 / generated_in.as_secs_f64().max(0.001)
        );
    }
    // Rollups, events and raw events first stay in hour files; the day files are measured
    // after them, same data.
    let hour_files = ["--rollup-interval", "1s", "--rollup-merge-days", "false", "--compact-merge-days", "false"];
    // The data was just written: no quiet period before its days merge.
    let day_files = ["--rollup-interval", "1s", "--compact-merge-after", "0s"];
    let mut server = Server::start_on(binary, &data_dir, &hour_files)?;
    let admin = server.admin();
    let largest = tenant_id(0);
    let median = tenant_id(options.tenants / 2);
    // Tokens are kept next to the data, so a kept data directory can be measured again.
    let tokens_file = data_dir.join("bench-tokens.json");
    let readers: Vec<(String, String, String)> = match std::fs::read(&tokens_file) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("reading the kept tokens")?,
        Err(_) => {
            let mut readers = Vec::new();
            for id in [&largest, &median] {
                let creds = admin.create_tenant(id).await.with_context(|| format!("creating {id}"))?;
                readers.push((id.clone(), creds.read_token, creds.write_key));
            }
            std::fs::write(&tokens_file, serde_json::to_vec(&readers)?)?;
            readers
        }
    };
    // Probed with the median tenant: before its hours are rolled up, the largest tenant's
    // long report would be slow (it is read from events).
    let rolled_in = wait_for_rollups(&Client::new(&server.url, &readers[1].1), options.days).await?;
    println!(
        "Rollups of all {} days ready {:.0} s after the server started ({:.1} hours per second).\n",
        options.days,
        rolled_in.as_secs_f64(),
        f64::from(options.days * 24) / rolled_in.as_secs_f64().max(0.001)
    );
    // A trickle of live traffic, so that the realtime report and the open hour have data.
    for (_, _, write_key) in &readers {
        let writer = Client::new(&server.url, write_key);
        let body: String = (0..50)
            .map(|i| {
                format!(
                    "{{\"name\":\"pageview\",\"url\":\"https://live.example/p{}\",\"client_id\":\"live{i}\"}}\n",
                    i % 7
                )
            })
            .collect();
        writer.ingest(body).await?;
    }

    let merged_before = merged_days(&admin).await?;
    let mut layouts = Vec::new();
    if merged_before == 0 {
        let (next, results) = measure(server, &readers, &hour_files, options).await?;
        let (next, raw) = events_only(next, &readers, &hour_files[2..]).await?;
        server = next;
        layouts.push(("hour files", results, raw));
    } else {
        println!("The kept data already has {merged_before} merged days: only day files are measured.\n");
    }
    server = server.restart(&day_files)?;
    let merge_in = wait_for_merged_days(&server.admin(), options.days).await?;
    println!(
        "Rollup hours merged into day files, and events and raw events into day objects, {:.0} s after the server started ({} days of rollups in one file each).\n",
        merge_in.as_secs_f64(),
        merged_days(&server.admin()).await?
    );
    let (next, results) = measure(server, &readers, &day_files, options).await?;
    let (next, raw) = events_only(next, &readers, &[]).await?;
    server = next;
    layouts.push(("day files", results, raw));

    println!("## Dashboard load, 15 reports over 30 days\n");
    println!(
        "| tenant | rollups and events in | reports per load | cold p50 ms | cold p99 ms | warm p50 ms | warm p99 ms | events only, p50 ms | events only, p99 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut per_report: Vec<(String, Vec<Duration>, Vec<Duration>)> = Vec::new();
    // The SQL baseline below reads `sessions`, which needs all of a tenant's events in
    // memory: the server of the last events-only loads has the memory for it.
    for (layout, results, raw_by_tenant) in &layouts {
        for ((id, _, cold, warm, by_report, _paths), raw) in results.iter().zip(raw_by_tenant) {
            println!(
                "| {id} | {layout} | {} | {} | {} | {} | {} | {} | {} |",
                reports().len(),
                ms(percentile(cold.clone(), 0.5)),
                ms(percentile(cold.clone(), 0.99)),
                ms(percentile(warm.clone(), 0.5)),
                ms(percentile(warm.clone(), 0.99)),
                ms(percentile(raw.clone(), 0.5)),
                ms(percentile(raw.clone(), 0.99)),
            );
            per_report.extend(
                reports()
                    .iter()
                    .zip(by_report)
                    .map(|((name, _), (c, w))| (format!("{id} {name} ({layout})"), c.clone(), w.clone())),
            );
        }
    }
    let results: Vec<&Measured> = layouts.iter().flat_map(|(_, r, _)| r).collect();

    println!("\n## Per report (cold and warm medians)\n");
    println!("| report | cold ms | warm ms | answered from |");
    println!("|---|---:|---:|---|");
    for (i, (name, cold, warm)) in per_report.iter().enumerate() {
        let paths = &results[i / reports().len()].5;
        let path = paths.get(i % reports().len()).cloned().unwrap_or_default();
        println!("| {name} | {} | {} | {path} |", ms(percentile(cold.clone(), 0.5)), ms(percentile(warm.clone(), 0.5)));
    }

    println!("\n## The same questions as SQL over events and sessions (largest tenant)\n");
    println!("| query | ms |");
    println!("|---|---:|");
    let reader = Client::new(&server.url, &results[0].1);
    for (name, sql) in equivalent_sql(chrono_now()) {
        let started = Instant::now();
        reader.query_json(&sql).await.with_context(|| format!("SQL {name}"))?;
        println!("| {name} | {} |", ms(started.elapsed()));
    }
    drop(server);
    if options.keep.is_some() {
        eprintln!("data kept in {}", data_dir.display());
    }
    let _ = ADMIN;
    Ok(())
}
