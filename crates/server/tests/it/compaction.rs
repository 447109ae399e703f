//! Compaction through the real binary with a small `--compact-memory`: a partition of many
//! files, shared by two tenants, streams into one file per table in several passes, and
//! every event stays exactly once. (Peak memory against the limit is measured by the jobs
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
