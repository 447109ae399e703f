//! Backfills: a month of events derived by processor version 3 is rebuilt with version 4
//! (which names more AI assistants, so their visits move from Referral to AI Assistants)
//! while queries run; a backfill killed with SIGKILL resumes and ends as an uninterrupted one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hourglass_client::Client;
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, TestServer, hourglass, scalar};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Flags of a server whose compaction and rollup jobs run once at start and not again during
/// the test, and that merges no days into day objects, so that the files a test compares are
/// the ones it wrote (reports read the hours from events, with the same numbers); ingest
/// derives with version 3 until the test restarts it with the newest.
fn old_server() -> TestServer {
    let args: Vec<String> = [
        "--max-past",
        "40days",
        "--compact-interval",
        "1h",
        "--compact-merge-days",
        "false",
        "--rollup-interval",
        "1h",
        "--backfill-interval",
        "100ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    TestServer::start_with(&args, &[("HOURGLASS_PROCESSOR_VERSION".to_string(), "3".to_string())])
}

fn day_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// The first of the 30 whole UTC days the tests fill: the month before yesterday.
fn first_day() -> i64 {
    let today = chrono::Utc::now().timestamp_millis().div_euclid(DAY) * DAY;
    today - 31 * DAY
}

/// Hours of the month that hold events: every fourth, so that a backfill also walks hours
/// without any.
const EVENT_HOURS: i64 = 30 * 24 / 4;

/// Two pageviews every fourth hour for 30 days: one referred by meta.ai (an AI assistant only
/// version 4 knows), one by Google; and one bot request a day, which stays in raw_events only.
fn month_of_events(tenant: &str) -> String {
    let start = first_day();
    let mut lines = Vec::new();
    for hour in (0..30 * 24).step_by(4) {
        let ts = start + hour * HOUR + 60_000;
        for (i, referrer) in ["https://www.meta.ai/", "https://www.google.com/search?q=shoes"].iter().enumerate() {
            lines.push(
                json!({
                    "event_id": format!("{tenant}-{hour}-{i}"), "timestamp": ts + i as i64 * 1000, "name": "pageview",
                    "url": format!("https://{tenant}.example/p/{}", hour % 7), "referrer": referrer,
                    "client_id": format!("{tenant}-c{}", hour % 52),
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                })
                .to_string(),
            );
        }
        if hour % 24 == 4 {
            lines.push(
                json!({
                    "event_id": format!("{tenant}-{hour}-bot"), "timestamp": ts, "name": "pageview",
                    "url": format!("https://{tenant}.example/"),
                    "user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                })
                .to_string(),
            );
        }
    }
    lines.join("\n")
}

const MONTH_PAGEVIEWS: i64 = EVENT_HOURS * 2;

async fn channels(reader: &Client) -> BTreeMap<String, i64> {
    let rows = reader.query_json("SELECT channel, count(*) AS n FROM events GROUP BY channel").await.expect("channels");
    rows.iter().map(|r| (r["channel"].as_str().unwrap_or("?").to_string(), r["n"].as_i64().unwrap_or(-1))).collect()
}

async fn versions(reader: &Client) -> BTreeMap<i64, i64> {
    let rows = reader
        .query_json("SELECT processor_version AS v, count(*) AS n FROM events GROUP BY processor_version")
        .await
        .expect("versions");
    rows.iter().map(|r| (r["v"].as_i64().unwrap_or(-1), r["n"].as_i64().unwrap_or(-1))).collect()
}

/// Every raw object with its bytes.
fn raw_objects(server: &TestServer) -> BTreeMap<PathBuf, Vec<u8>> {
    server
        .objects(".parquet")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/raw_events/"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read raw object");
            (p, bytes)
        })
        .collect()
}

/// The month's visits by channel, as the report API gives them.
async fn report_channels(reader: &Client) -> BTreeMap<String, i64> {
    let request = json!({
        "date_range": [day_text(first_day()), day_text(first_day() + 29 * DAY)],
        "metrics": ["visits"], "dimensions": ["visit:channel"],
    });
    let answer = reader.report(&request).await.expect("report");
    answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["dimensions"][0].as_str().unwrap_or("?").to_string(), r["metrics"][0].as_i64().unwrap_or(-1)))
        .collect()
}

async fn wait_for_backfill(admin: &Client, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let job = admin.backfill(id).await.expect("backfill");
        if job["state"] != "queued" && job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "backfill {id} did not end: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_moves_history_to_a_new_processor_version_while_queries_run() {
    let mut server = old_server();
    let mut tokens = Vec::new();
    for tenant in ["shop", "other"] {
        let creds = server.admin().create_tenant(tenant).await.expect("tenant");
        let sent = server.admin().with_token(&creds.write_key).ingest(month_of_events(tenant)).await.expect("ingest");
        assert_eq!(sent.rejected, 0, "{:?}", sent.errors);
        tokens.push(creds.read_token);
    }
    server.admin().flush().await.expect("flush");
    server.restart_with(&["--processor-version", "4"]);
    let admin = server.admin();
    let (shop, other) = (admin.with_token(&tokens[0]), admin.with_token(&tokens[1]));

    // Version 3 took meta.ai for a plain referrer.
    let before = channels(&shop).await;
    assert_eq!(before.get("Referral"), Some(&(MONTH_PAGEVIEWS / 2)), "{before:?}");
    assert_eq!(before.get("AI Assistants"), None, "{before:?}");
    assert_eq!(versions(&shop).await, BTreeMap::from([(3, MONTH_PAGEVIEWS)]));
    let raw_before = raw_objects(&server);
    assert_eq!(raw_before.len() as i64, EVENT_HOURS, "one raw file an hour, which the two tenants share");

    // One tenant, three days: only its rows of those days change; the other's are carried over.
    let first = first_day();
    let job = admin
        .create_backfill(&json!({"tenant": "other", "from": day_text(first), "to": day_text(first + 2 * DAY)}))
        .await
        .expect("queue tenant backfill");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["processor_version"], 4, "the newest version by default");
    let done = wait_for_backfill(&admin, job["id"].as_i64().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["progress"]["partitions_done"], 18, "{done}");
    assert_eq!(versions(&other).await, BTreeMap::from([(3, MONTH_PAGEVIEWS - 36), (4, 36)]));
    assert_eq!(
        versions(&shop).await,
        BTreeMap::from([(3, MONTH_PAGEVIEWS)]),
        "the other tenant's rows stay as they were"
    );

    // Every tenant, the whole month, through the CLI, with queries running all along: each
    // answer counts every event exactly once, with either version's channels.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicUsize::new(0));
    let loop_task = {
        let (stop, answers, shop) = (Arc::clone(&stop), Arc::clone(&answers), shop.clone());
        let totals =
            json!({"date_range": [day_text(first), day_text(first + 29 * DAY)], "metrics": ["pageviews", "visits"]});
        tokio::spawn(async move {
            let mut problems = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match shop.query_json("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events").await {
                    Ok(rows) if rows[0]["n"] == MONTH_PAGEVIEWS && rows[0]["d"] == MONTH_PAGEVIEWS => {}
                    Ok(rows) => problems.push(format!("SQL counted {rows:?}")),
                    Err(e) => problems.push(format!("SQL failed: {e}")),
                }
                match shop.report(&totals).await {
                    Ok(r) if r["totals"]["metrics"][0] == MONTH_PAGEVIEWS => {}
                    Ok(r) => problems.push(format!("report counted {}", r["totals"])),
                    Err(e) => problems.push(format!("report failed: {e}")),
                }
                answers.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            problems
        })
    };
    let url = server.url.clone();
    let (from, to) = (day_text(first), day_text(first + 29 * DAY));
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        hourglass(&["backfill", "--table", "events", "--from", &from, "--to", &to], ADMIN_TOKEN, &url)
    })
    .await
    .expect("cli");
    stop.store(true, Ordering::Relaxed);
    let problems = loop_task.await.expect("query loop");
    assert!(ok, "hourglass backfill failed:\n{stdout}\n{stderr}\n{}", server.logs());
    assert!(problems.is_empty(), "queries during the backfill: {problems:?}");
    assert!(answers.load(Ordering::Relaxed) > 0, "the query loop ran");
    let job: Value = serde_json::from_str(&stdout).expect("the CLI prints the finished job");
    assert_eq!(job["state"], "done");
    assert_eq!(job["progress"]["hours_total"], 720);
    assert_eq!(job["progress"]["partitions_done"], EVENT_HOURS, "{job}");
    assert!(stderr.contains("100% 720/720 h"), "progress line: {stderr}");

    let after = channels(&shop).await;
    assert_eq!(after.get("AI Assistants"), Some(&(MONTH_PAGEVIEWS / 2)), "{after:?}");
    assert_eq!(after.get("Referral"), None, "{after:?}");
    assert_eq!(after.get("Organic Search"), Some(&(MONTH_PAGEVIEWS / 2)), "{after:?}");
    assert_eq!(versions(&shop).await, BTreeMap::from([(4, MONTH_PAGEVIEWS)]));
    assert_eq!(versions(&other).await, BTreeMap::from([(4, MONTH_PAGEVIEWS)]));
    let report = report_channels(&shop).await;
    assert_eq!(report.get("AI Assistants"), Some(&(MONTH_PAGEVIEWS / 2)), "{report:?}");
    assert_eq!(report.get("Referral"), None, "{report:?}");
    assert_eq!(scalar(&shop, "SELECT count(*) FROM raw_events").await, MONTH_PAGEVIEWS + 30, "bots stay in raw");
    assert_eq!(raw_objects(&server), raw_before, "raw files are byte for byte what they were");

    let (ok, listing, _) = hourglass(&["processor-versions"], ADMIN_TOKEN, &server.url);
    assert!(ok, "{listing}");
    assert!(listing.contains("version 4: "), "{listing}");
    assert!(!listing.contains("version 3: "), "{listing}");
    let (ok, list, _) = hourglass(&["backfill", "--list"], ADMIN_TOKEN, &server.url);
    assert!(ok && list.lines().count() == 2 && list.contains("done"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_midway_resumes_and_ends_as_an_uninterrupted_one() {
    let mut server = old_server();
    let creds = server.admin().create_tenant("shop").await.expect("tenant");
    let sent = server.admin().with_token(&creds.write_key).ingest(month_of_events("shop")).await.expect("ingest");
    assert_eq!(sent.rejected, 0, "{:?}", sent.errors);
    server.admin().flush().await.expect("flush");
    server.restart_with(&["--processor-version", "4"]);
    let first = first_day();
    let request = json!({"from": day_text(first), "to": day_text(first + 29 * DAY)});
    let job = server.admin().create_backfill(&request).await.expect("queue");
    let id = job["id"].as_i64().expect("id");

    // SIGKILL once the job is a day in, well before its end.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = server.admin().backfill(id).await.expect("backfill");
        let done = job["progress"]["hours_done"].as_i64().unwrap_or(0);
        assert_ne!(job["state"], "done", "the backfill ended before it could be killed");
        if done >= 24 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    server.restart();
    let resumed = wait_for_backfill(&server.admin(), id).await;
    assert_eq!(resumed["state"], "done", "{resumed}");
    assert_eq!(resumed["progress"]["partitions_done"], EVENT_HOURS, "every partition counted once: {resumed}");
    let logs = server.logs();
    let runs: Vec<&str> = logs.lines().filter(|l| l.contains("running backfill")).collect();
    let last = runs.last().expect("a resumed run");
    let field = |name: &str| -> i64 {
        last.split(&format!("{name}="))
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect(name)
    };
    assert!(runs.len() >= 2 && field("next_hour") > field("from_hour"), "the job resumed where it was: {runs:?}");

    let reader = server.admin().with_token(&creds.read_token);
    let snapshot = || async {
        reader
            .query_json(
                "SELECT tenant_id, event_id, channel, source, visitor_id, processor_version FROM events \
                 ORDER BY tenant_id, event_id",
            )
            .await
            .expect("snapshot")
    };
    let resumed_rows = snapshot().await;
    assert_eq!(resumed_rows.len() as i64, MONTH_PAGEVIEWS);
    // The same backfill again, uninterrupted, rebuilds the same rows.
    let again = server.admin().create_backfill(&request).await.expect("queue again");
    let again = wait_for_backfill(&server.admin(), again["id"].as_i64().expect("id")).await;
    assert_eq!(again["state"], "done", "{again}");
    assert_eq!(snapshot().await, resumed_rows);
    assert_eq!(versions(&reader).await, BTreeMap::from([(4, MONTH_PAGEVIEWS)]));
}
