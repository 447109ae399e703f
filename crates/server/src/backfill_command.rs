//! `hourglass backfill` and `hourglass processor-versions`: queue, follow, list and cancel
//! rebuilds of `events`, through the admin API.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use hourglass_client::Client;
use serde_json::Value;

use crate::cli::{BackfillArgs, ServerArgs};

/// How often a followed backfill's progress is read.
const POLL: Duration = Duration::from_millis(500);

pub async fn backfill(args: BackfillArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server.server, &args.server.token);
    if args.list {
        let jobs = client.backfills().await?;
        for job in jobs["backfills"].as_array().into_iter().flatten() {
            println!("{}", summary(job));
        }
        return Ok(());
    }
    if let Some(id) = args.cancel {
        let job = client.cancel_backfill(id).await?;
        println!("{}", serde_json::to_string_pretty(&job)?);
        return Ok(());
    }
    let id = match args.watch {
        Some(id) => id,
        None => {
            let mut request = serde_json::json!({
                "table": args.table,
                "from": args.from.context("--from is required")?,
                "to": args.to.context("--to is required")?,
            });
            if let Some(tenant) = &args.tenant {
                request["tenant"] = tenant.clone().into();
            }
            if let Some(version) = args.processor_version {
                request["processor_version"] = version.into();
            }
            let job = client.create_backfill(&request).await?;
            if args.detach {
                println!("{}", serde_json::to_string_pretty(&job)?);
                return Ok(());
            }
            eprintln!("{}", summary(&job));
            job["id"].as_i64().context("the server answered a backfill without an id")?
        }
    };
    follow(&client, id).await
}

/// Draws the job's progress until it ends; fails unless it ends done.
async fn follow(client: &Client, id: i64) -> anyhow::Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_line: Option<Instant> = None;
    loop {
        let job = client.backfill(id).await?;
        let state = job["state"].as_str().unwrap_or("?").to_string();
        let final_state = matches!(state.as_str(), "done" | "failed" | "cancelled");
        let every = if terminal { POLL } else { Duration::from_secs(5) };
        if final_state || last_line.is_none_or(|at| at.elapsed() >= every) {
            let line = progress_line(&job);
            if terminal {
                eprint!("\r\x1b[2K{line}");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
            last_line = Some(Instant::now());
        }
        if final_state {
            if terminal {
                eprintln!();
            }
            println!("{}", serde_json::to_string_pretty(&job)?);
            return match state.as_str() {
                "done" => Ok(()),
                "failed" => {
                    anyhow::bail!("backfill {id} failed: {}", job["error"].as_str().unwrap_or("no reason given"))
                }
                _ => anyhow::bail!("backfill {id} was cancelled"),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

fn seconds_between(from: &Value, to: &Value) -> Option<f64> {
    let parse = |v: &Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let (from, to) = (parse(from)?, parse(to)?);
    Some((to - from).num_milliseconds() as f64 / 1000.0)
}

/// `backfill 3 [#######-----] 58% 418/720 h, 1.2M rows read, 85k rows/s, 21 s left`.
fn progress_line(job: &Value) -> String {
    let p = &job["progress"];
    let total = p["hours_total"].as_i64().unwrap_or(0);
    let done = p["hours_done"].as_i64().unwrap_or(0);
    let fraction = if total > 0 { (done as f64 / total as f64).clamp(0.0, 1.0) } else { 1.0 };
    let width = 30;
    let filled = (fraction * width as f64) as usize;
    let bar: String = (0..width).map(|i| if i < filled { '#' } else { '-' }).collect();
    let rows = p["rows_read"].as_u64().unwrap_or(0);
    let elapsed = seconds_between(&job["started_at"], &job["updated_at"]).filter(|s| *s > 0.0);
    let rate = elapsed.map(|s| rows as f64 / s);
    let left = match (elapsed, done) {
        (Some(s), d) if d > 0 => format!("{:.0} s left", s / d as f64 * (total - d) as f64),
        _ => "time left unknown".to_string(),
    };
    format!(
        "backfill {} {} [{bar}] {:>3.0}% {done}/{total} h, {} rows read, {} rows/s, {left}",
        job["id"],
        job["state"].as_str().unwrap_or("?"),
        fraction * 100.0,
        count(rows as f64),
        rate.map(count).unwrap_or_else(|| "?".to_string()),
    )
}

/// One line per job for `--list`.
fn summary(job: &Value) -> String {
    format!(
        "backfill {} {}: {} {} to {}{}, processor version {}; {}/{} h, {} partitions, {} rows written{}",
        job["id"],
        job["state"].as_str().unwrap_or("?"),
        job["table"].as_str().unwrap_or("?"),
        job["from"].as_str().unwrap_or("?"),
        job["to"].as_str().unwrap_or("?"),
        job["tenant"].as_str().map(|t| format!(" for tenant {t}")).unwrap_or_default(),
        job["processor_version"],
        job["progress"]["hours_done"],
        job["progress"]["hours_total"],
        job["progress"]["partitions_done"],
        job["progress"]["rows_written"],
        job["error"].as_str().map(|e| format!("; error: {e}")).unwrap_or_default(),
    )
}

/// A count with a metric suffix: `950`, `12.3k`, `4.5M`.
fn count(value: f64) -> String {
    if value >= 1e9 {
        format!("{:.1}G", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

pub async fn processor_versions(server: ServerArgs) -> anyhow::Result<()> {
    let client = Client::new(&server.server, &server.token);
    let answer = client.processor_versions().await?;
    println!(
        "newest version: {}; this server runs versions {}",
        answer["newest"],
        answer["supported"]
            .as_array()
            .map(|v| v.iter().map(Value::to_string).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    for range in answer["ranges"].as_array().into_iter().flatten() {
        println!(
            "version {}: {} to {} ({} h, {} files, {} rows)",
            range["processor_version"],
            range["from"].as_str().unwrap_or("?"),
            range["to"].as_str().unwrap_or("?"),
            range["hours"],
            range["files"],
            range["rows"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_share_rate_and_time_left() {
        let job = serde_json::json!({
            "id": 3, "state": "running",
            "progress": {"hours_total": 100, "hours_done": 25, "rows_read": 50_000},
            "started_at": "2026-12-01T00:00:00+00:00", "updated_at": "2026-12-01T00:00:10+00:00",
        });
        let line = progress_line(&job);
        assert!(line.starts_with("backfill 3 running ["), "{line}");
        assert!(line.contains(" 25% 25/100 h, 50.0k rows read, 5.0k rows/s, 30 s left"), "{line}");
    }
}
