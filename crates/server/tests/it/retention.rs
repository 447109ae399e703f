//! Retention end to end: tenants' own retentions remove exactly their expired rows from SQL
//! and from reports (a cached report too), per table, and a backfill afterwards neither brings
//! expired events back nor loses the events whose raw rows are gone.
//! Garbage collection with no grace period never deletes an object a running query reads.

use std::time::{Duration, Instant};

use hourglass_client::Client;
use serde_json::{Value, json};

use crate::support::{TestServer, scalar};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn today() -> i64 {
    chrono::Utc::now().timestamp_millis().div_euclid(DAY) * DAY
}

fn day_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// Two pageviews at noon of each of these days ago.
fn pageviews(tenant: &str, days_ago: &[i64]) -> String {
    let mut lines = Vec::new();
    for d in days_ago {
        for i in 0..2 {
            let ts = today() - d * DAY + 12 * HOUR + i * 1000;
            lines.push(
                json!({"event_id": format!("{tenant}-{d}-{i}"), "timestamp": ts, "name": "pageview",
                       "url": format!("https://{tenant}.example/"), "client_id": format!("{tenant}-{i}")})
                .to_string(),
            );
        }
    }
    lines.join("\n")
}

/// (events, raw_events) rows of a tenant.
async fn counts(reader: &Client) -> (i64, i64) {
    (scalar(reader, "SELECT count(*) FROM events").await, scalar(reader, "SELECT count(*) FROM raw_events").await)
}

async fn pageviews_on(reader: &Client, day: i64) -> (i64, Value) {
    let request = json!({"date_range": [day_text(day), day_text(day)], "metrics": ["pageviews"]});
    let answer = reader.report(&request).await.expect("report");
    (answer["totals"]["metrics"][0].as_i64().unwrap_or(-1), answer["meta"]["cache_hit"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_retentions_remove_exactly_their_expired_rows_per_table() {
    let server = TestServer::start(&[
        "--max-past",
        "40days",
        "--retention-interval",
        "300ms",
        "--compact-interval",
        "1h",
        "--rollup-interval",
        "1h",
        "--backfill-interval",
        "100ms",
    ]);
    let admin = server.admin();
    let (brief_writer, brief) = server.tenant("brief").await;
    let (keep_writer, keep) = server.tenant("keep").await;
    brief_writer.ingest(pageviews("brief", &[1, 5, 15])).await.expect("ingest");
    keep_writer.ingest(pageviews("keep", &[1, 5])).await.expect("ingest");
    admin.flush().await.expect("flush");
    assert_eq!(counts(&brief).await, (6, 6));
    assert_eq!(counts(&keep).await, (4, 4));
    let day15 = today() - 15 * DAY;
    assert_eq!(pageviews_on(&brief, day15).await, (2, json!(false)));
    assert_eq!(pageviews_on(&brief, day15).await, (2, json!(true)), "the answer is cached");

    // brief keeps events 3 days and raw events 10; keep keeps raw events 3 days and events
    // forever (the deployment sets no retention).
    admin.update_tenant_settings("brief", &json!({"retention": {"events": 3, "raw_events": 10}})).await.expect("set");
    admin.update_tenant_settings("keep", &json!({"retention": {"raw_events": 3}})).await.expect("set");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = (counts(&brief).await, counts(&keep).await);
        if now == ((2, 4), (4, 2)) {
            break;
        }
        assert!(Instant::now() < deadline, "retention did not settle: (events, raw) of brief and keep = {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let days = |reader: &Client, table: &str| {
        let sql = format!("SELECT DISTINCT CAST(timestamp AS DATE) AS d FROM {table} ORDER BY d");
        let reader = reader.clone();
        async move { reader.query_json(&sql).await.expect("days").iter().map(|r| r["d"].to_string()).collect::<Vec<_>>() }
    };
    let quoted = |ds: &[i64]| ds.iter().map(|d| format!("\"{}\"", day_text(today() - d * DAY))).collect::<Vec<_>>();
    assert_eq!(days(&brief, "events").await, quoted(&[1]), "brief's events of days 5 and 15 are gone");
    assert_eq!(days(&brief, "raw_events").await, quoted(&[5, 1]), "brief's raw events of day 15 are gone");
    assert_eq!(days(&keep, "raw_events").await, quoted(&[1]), "keep's raw events of day 5 are gone");
    assert_eq!(days(&keep, "events").await, quoted(&[5, 1]), "keep's events stay");

    // Day 15's only file left whole: no newer file shows it, yet the cached report is not
    // reused.
    assert_eq!(pageviews_on(&brief, day15).await, (0, json!(false)));
    let month = json!({"date_range": [day_text(today() - 20 * DAY), day_text(today())], "metrics": ["pageviews"]});
    assert_eq!(brief.report(&month).await.expect("report")["totals"]["metrics"][0], 2);

    // A backfill of every tenant over those days writes none of brief's expired events back
    // from its raw rows, and carries keep's events of day 5 over although their raw rows are
    // gone.
    let job = admin
        .create_backfill(&json!({"from": day_text(today() - 20 * DAY), "to": day_text(today() - DAY)}))
        .await
        .expect("queue");
    let id = job["id"].as_i64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        let job = admin.backfill(id).await.expect("backfill");
        if job["state"] != "queued" && job["state"] != "running" {
            break job;
        }
        assert!(Instant::now() < deadline, "backfill {id} did not end: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(counts(&brief).await, (2, 4));
    assert_eq!(counts(&keep).await, (4, 2));
    assert_eq!(days(&keep, "events").await, quoted(&[5, 1]));
}

/// Garbage collection with no grace period at all, against queries running the whole time:
/// compaction replaces files every few hundred milliseconds and the replaced objects are
/// deleted as soon as no running query can have listed them, so no query ever finds a file
/// gone, and every answer counts each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_never_deletes_what_a_running_query_reads() {
    let server = TestServer::start(&[
        "--max-past",
        "2days",
        "--garbage-grace",
        "0s",
        "--compact-interval",
        "200ms",
        "--compact-min-age",
        "0s",
        "--rollup-interval",
        "1h",
    ]);
    let (writer, reader) = server.tenant("busy").await;
    let admin = server.admin();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for sql in [
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events",
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM raw_events",
    ] {
        let (reader, stop) = (reader.clone(), std::sync::Arc::clone(&stop));
        loops.push(tokio::spawn(async move {
            let (mut answers, mut last) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let rows = reader.query_json(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                let (n, d) = (rows[0]["n"].as_i64().unwrap_or(-1), rows[0]["d"].as_i64().unwrap_or(-2));
                assert_eq!(n, d, "{sql}: an event counted twice");
                assert!(n >= last, "{sql}: {n} events after {last}");
                (answers, last) = (answers + 1, n);
            }
            answers
        }));
    }
    // Events of an hour that has ended, so that two files are enough for a merge.
    let hour_ago = chrono::Utc::now().timestamp_millis() - HOUR;
    let rounds = 150;
    for round in 0..rounds {
        let body: String = (0..20)
            .map(|i| {
                json!({"event_id": format!("e{round}-{i}"), "timestamp": hour_ago - HOUR + i * 1000, "name": "pageview",
                       "url": "https://busy.example/"})
                .to_string()
                    + "\n"
            })
            .collect();
        writer.ingest(body).await.expect("ingest");
        admin.flush().await.expect("flush");
    }
    // Let the last merges and collections happen under the query loops too.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for handle in loops {
        let answers = handle.await.expect("a query failed or counted wrong");
        assert!(answers > 10, "the query loop ran {answers} times");
    }
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, rounds * 20);
    let parquet = server.objects(".parquet").len() as i64;
    assert!(parquet < rounds, "{parquet} objects left of {} persisted: garbage was collected", rounds * 2);
}
