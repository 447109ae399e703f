//! `kill -9` at random moments loses no acknowledged event and duplicates none.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::Array;
use rand::{Rng, SeedableRng};

use hourglass_testkit::{PgDatabase, S3Server};

use crate::support::{TestServer, s3_and_postgres};

const ROUNDS: usize = 10;
const WRITERS: usize = 3;
const BATCH: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_event() {
    sigkill_scenario(Vec::new(), Vec::new()).await;
}

/// The same kills with the WAL and Parquet files on a real S3-protocol server and the catalog
/// on a real PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_event_on_s3_and_postgres() {
    let s3 = S3Server::start().await;
    let pg = PgDatabase::create().await;
    let (args, env) = s3_and_postgres(&s3, s3.endpoint(), pg.url());
    sigkill_scenario(args, env).await;
}

async fn sigkill_scenario(mut args: Vec<String>, env: Vec<(String, String)>) {
    let seed: u64 = std::env::var("HOURGLASS_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("durability seed: {seed} (set HOURGLASS_TEST_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // Frequent persists, so that kills also land during persists and WAL deletions.
    args.extend(["--persist-max-age", "300ms", "--persist-max-bytes", "256KiB"].map(String::from));
    let mut server = TestServer::start_with(&args, &env);
    let creds = server.admin().create_tenant("durable").await.expect("tenant");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut sent = 0usize;

    for round in 0..ROUNDS {
        let writer = server.admin().with_token(&creds.write_key);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let writer = writer.clone();
            let acked = Arc::clone(&acked);
            let stop = Arc::clone(&stop);
            tasks.push(tokio::spawn(async move {
                let mut batch_no = 0usize;
                let mut attempted = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let ids: Vec<String> = (0..BATCH).map(|i| format!("r{round}-w{w}-b{batch_no}-{i}")).collect();
                    let body: String = ids
                        .iter()
                        .map(|id| {
                            format!(
                                "{{\"event_id\":\"{id}\",\"name\":\"pageview\",\"url\":\"https://d.example/{id}\"}}\n"
                            )
                        })
                        .collect();
                    batch_no += 1;
                    attempted += BATCH;
                    match writer.ingest(body).await {
                        Ok(r) if r.accepted == BATCH => acked.lock().expect("lock").extend(ids),
                        Ok(r) => panic!("partial accept: {r:?}"),
                        // The server died mid-request: these events may or may not be stored.
                        Err(_) => break,
                    }
                }
                attempted
            }));
        }
        let alive = Duration::from_millis(rng.random_range(150..1200));
        tokio::time::sleep(alive).await;
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in tasks {
            sent += task.await.expect("writer task");
        }
        server.restart();
    }

    let reader = server.admin().with_token(&creds.read_token);
    let acked: HashSet<String> = acked.lock().expect("lock").iter().cloned().collect();
    assert!(acked.len() > ROUNDS * BATCH, "too few acknowledged events to mean anything: {}", acked.len());
    for table in ["raw_events", "events"] {
        let dupes = reader
            .query_json(&format!(
                "SELECT event_id, count(*) AS n FROM {table} GROUP BY event_id HAVING count(*) > 1 LIMIT 5"
            ))
            .await
            .expect("duplicates query");
        assert!(dupes.is_empty(), "{table} has duplicates: {dupes:?}");
        let batches = reader.query_arrow(&format!("SELECT event_id FROM {table}")).await.expect("ids");
        let mut stored = HashSet::new();
        for b in &batches {
            // String columns come back as Utf8View; read them through a cast.
            let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
            let ids = ids.as_any().downcast_ref::<arrow::array::StringArray>().expect("strings");
            for i in 0..ids.len() {
                stored.insert(ids.value(i).to_string());
            }
        }
        let missing: Vec<_> = acked.difference(&stored).take(5).collect();
        assert!(missing.is_empty(), "{table}: acknowledged events lost (seed {seed}): {missing:?}");
        assert!(stored.len() <= sent, "{table}: more events stored than sent");
    }
    eprintln!("durability: {} acknowledged of {sent} sent over {ROUNDS} kills", acked.len());
}
