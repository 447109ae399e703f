//! Compaction through the real binary. With a small `--compact-memory`, a partition of many
//! files, shared by two tenants, streams into one file per table in several passes, and
//! every event stays exactly once. A settled day's hours merge into one object per shard,
//! which queries read hour by hour, and a late event's hour leaves it and merges back. (Peak memory against the limit is measured by the jobs
//! crate's `memory` test, where the merge is alone in its process.)

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{TestServer, scalar};

const HOUR: i64 = 3_600_000;

async fn files_of(admin: &hourglass_client::Client, table: &str) -> i64 {
    scalar(admin, &format!("SELECT count(*) FROM system.files WHERE table_name = '{table}'")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_of_many_files_streams_into_one_keeping_every_event_once() {
    // No merges while the files are written: only a partition a thousand days old would do.
    let idle =
        ["--max-past", "2days", "--compact-interval", "1h", "--compact-min-age", "1000days", "--rollup-interval", "1h"];
    let mut server = TestServer::start(&idle);
    let admin = server.admin();
    let big = admin.create_tenant("big").await.expect("tenant");
    let small = admin.create_tenant("other").await.expect("tenant");
    let (writer, other_writer) = (admin.with_token(&big.write_key), admin.with_token(&small.write_key));
    let hour_start = (chrono::Utc::now().timestamp_millis() / HOUR - 3) * HOUR;
    let (rounds, per_round) = (10, 6_000);
    for round in 0..rounds {
        let body: String = (0..per_round)
            .map(|i| {
                let n = round * per_round + i;
                json!({
                    "event_id": format!("e{n}"), "timestamp": hour_start + (n * 37) % HOUR, "name": "pageview",
                    "url": format!("https://big.example/catalog/item-{}?utm_campaign=c{}", n % 5000, n % 40),
                    "referrer": format!("https://www.google.com/search?q=item+{}", n % 700),
                    "client_id": format!("c{}", n % 9000),
                })
                .to_string()
                    + "\n"
            })
            .collect();
        let sent = writer.ingest(body).await.expect("ingest");
        assert_eq!(sent.rejected, 0, "{:?}", sent.errors);
        let small = json!({"event_id": format!("o{round}"), "timestamp": hour_start + round, "name": "signup"});
        other_writer.ingest(small.to_string()).await.expect("ingest");
        admin.flush().await.expect("flush");
    }
    assert_eq!(files_of(&admin, "events").await, rounds);

    server.restart_as(&[
        "--max-past",
        "2days",
        "--compact-interval",
        "200ms",
        "--compact-min-age",
        "0s",
        "--compact-memory",
        "16MiB",
        "--rollup-interval",
        "1h",
    ]);
    let admin = server.admin();
    let (reader, other) = (admin.with_token(&big.read_token), admin.with_token(&small.read_token));
    let deadline = Instant::now() + Duration::from_secs(300);
    while files_of(&admin, "events").await > 1 || files_of(&admin, "raw_events").await > 1 {
        assert!(Instant::now() < deadline, "the partitions were not merged:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let merges = server.logs().matches("merged partition").count();
    assert!(merges > 2, "a small limit merges in several passes ({merges} merges)");
    let total = rounds * per_round;
    for table in ["events", "raw_events"] {
        assert_eq!(scalar(&reader, &format!("SELECT count(*) FROM {table}")).await, total, "{table}");
        assert_eq!(scalar(&reader, &format!("SELECT count(DISTINCT event_id) FROM {table}")).await, total, "{table}");
        assert_eq!(scalar(&other, &format!("SELECT count(*) FROM {table}")).await, rounds, "{table}");
    }
}

const DAY: i64 = 24 * HOUR;

/// How the files of `table` in `[from, to)` lie: (files, of them segments of a day object,
/// distinct objects, shards).
async fn layout(admin: &hourglass_client::Client, table: &str, from: i64, to: i64) -> (i64, i64, i64, i64) {
    let rows = admin
        .query_json(&format!(
            "SELECT count(*) AS files, count(segment_start) AS segments, count(DISTINCT path) AS objects, \
             count(DISTINCT shard) AS shards FROM system.files WHERE table_name = '{table}' \
             AND hour >= to_timestamp_millis({from}) AND hour < to_timestamp_millis({to})"
        ))
        .await
        .expect("layout");
    let n = |k: &str| rows[0][k].as_i64().unwrap_or(-1);
    (n("files"), n("segments"), n("objects"), n("shards"))
}

/// Whether every hour of the day is a segment of its shard's one day object.
async fn merged(admin: &hourglass_client::Client, from: i64) -> bool {
    for table in ["events", "raw_events"] {
        let (files, segments, objects, shards) = layout(admin, table, from, from + DAY).await;
        if files == 0 || segments != files || objects != shards {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_day_merges_into_one_object_that_queries_read_hour_by_hour() {
    let idle = ["--max-past", "5days", "--compact-interval", "1h", "--rollup-interval", "1h"];
    let mut server = TestServer::start(&idle);
    let admin = server.admin();
    let shop = admin.create_tenant("shop").await.expect("tenant");
    let writer = admin.with_token(&shop.write_key);
    // The day before yesterday (UTC), which ended more than a day ago: four hours of events.
    let day = (chrono::Utc::now().timestamp_millis() / DAY - 2) * DAY;
    let hours: [(i64, i64); 4] = [(1, 30), (2, 17), (5, 45), (9, 8)];
    let event = |hour: i64, i: i64| {
        json!({"event_id": format!("e{hour}-{i}"), "timestamp": day + hour * HOUR + i * 1000, "name": "pageview",
               "url": format!("https://shop.example/p/{}", i % 7), "client_id": format!("c{}", i % 5)})
        .to_string()
            + "\n"
    };
    let body: String = hours.iter().flat_map(|&(h, n)| (0..n).map(move |i| (h, i))).map(|(h, i)| event(h, i)).collect();
    let sent = writer.ingest(body).await.expect("ingest");
    assert_eq!(sent.rejected, 0, "{:?}", sent.errors);
    admin.flush().await.expect("flush");
    let (files, segments, _, _) = layout(&admin, "events", day, day + DAY).await;
    assert!(files >= 4 && segments == 0, "an object per hour to begin with ({files} files, {segments} segments)");

    // No quiet period: the late event's hour merges back as soon as it is compacted.
    let merging = [
        "--max-past",
        "5days",
        "--compact-interval",
        "200ms",
        "--compact-merge-after",
        "0s",
        "--rollup-interval",
        "1h",
    ];
    server.restart_as(&merging);
    let admin = server.admin();
    let (writer, reader) = (admin.with_token(&shop.write_key), admin.with_token(&shop.read_token));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !merged(&admin, day).await {
        assert!(Instant::now() < deadline, "the day was not merged:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let in_hour = |table: &str, hour: i64| {
        format!(
            "SELECT count(*) FROM {table} WHERE timestamp >= to_timestamp_millis({}) \
             AND timestamp < to_timestamp_millis({})",
            day + hour * HOUR,
            day + (hour + 1) * HOUR
        )
    };
    let total: i64 = hours.iter().map(|(_, n)| n).sum();
    for table in ["events", "raw_events"] {
        assert_eq!(scalar(&reader, &format!("SELECT count(*) FROM {table}")).await, total, "{table}");
        assert_eq!(scalar(&reader, &format!("SELECT count(DISTINCT event_id) FROM {table}")).await, total, "{table}");
        for (hour, n) in hours {
            assert_eq!(scalar(&reader, &in_hour(table, hour)).await, n, "{table}, hour {hour}");
        }
    }

    // A late event of hour 5 takes the hour out of the day object; the day then merges again.
    let sent = writer.ingest(event(5, 1000)).await.expect("late event");
    assert_eq!(sent.rejected, 0, "{:?}", sent.errors);
    admin.flush().await.expect("flush");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !merged(&admin, day).await || scalar(&reader, "SELECT count(*) FROM events").await != total + 1 {
        assert!(Instant::now() < deadline, "the late event's hour did not merge back:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for table in ["events", "raw_events"] {
        assert_eq!(scalar(&reader, &format!("SELECT count(DISTINCT event_id) FROM {table}")).await, total + 1);
        for (hour, n) in hours {
            let expected = if hour == 5 { n + 1 } else { n };
            assert_eq!(scalar(&reader, &in_hour(table, hour)).await, expected, "{table}, hour {hour}");
        }
    }
    assert!(server.logs().matches("merged a day's hours into one object").count() >= 4, "{}", server.logs());
}
