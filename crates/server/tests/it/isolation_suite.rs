//! The adversarial isolation suite (`tests/isolation/adversarial.sql`) through every
//! interface: HTTP here, Arrow Flight SQL through the Python ADBC driver, the PostgreSQL wire
//! protocol through psycopg. Two tenants share
//! Parquet files and the buffer; no answer or error seen by one may mention the other.

use std::process::Command;

use crate::support::{TestServer, pageviews};

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/isolation/adversarial.sql");
/// In every field of the victim's events and in no query: whatever shows it leaked. (The
/// victim's tenant id is not secret; queries name it.)
const MARKER: &str = "zq7secret";

fn queries() -> Vec<String> {
    std::fs::read_to_string(SUITE)
        .expect("the adversarial suite")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .map(String::from)
        .collect()
}

/// NDJSON of events whose every field carries the marker, `age_ms` old.
fn victim_events(prefix: &str, n: usize, age_ms: i64) -> String {
    let at = chrono::Utc::now().timestamp_millis() - age_ms;
    (0..n)
        .map(|i| {
            format!(
                "{{\"event_id\":\"{MARKER}-{prefix}-{i}\",\"timestamp\":{at},\"name\":\"{MARKER}-purchase\",\"url\":\"https://{MARKER}.example/{MARKER}/{i}?utm_source={MARKER}\",\"user_id\":\"{MARKER}-user\",\"props\":{{\"k\":\"{MARKER}\"}}}}\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_interface_leaks_another_tenants_rows() {
    let server = TestServer::start(&["--rollup-interval", "300ms", "--rollup-settle", "1s"]);
    let (attacker_w, attacker) = server.tenant("attacker").await;
    let (victim_w, victim) = server.tenant("victim").await;
    // Persisted rows of both share Parquet files (events of three hours ago are rolled up
    // into a shared rollups file too); more rows of both stay in the buffer.
    attacker_w.ingest(pageviews("a1", 20)).await.expect("ingest");
    victim_w.ingest(victim_events("p", 20, 0)).await.expect("ingest");
    victim_w.ingest(victim_events("old", 5, 3 * 3_600_000)).await.expect("ingest");
    server.admin().flush().await.expect("flush");
    attacker_w.ingest(pageviews("a2", 5)).await.expect("ingest");
    victim_w.ingest(victim_events("b", 5, 0)).await.expect("ingest");

    // Control: the marker is there to be found, by its owner, in events and rollups.
    let own = victim.query_json("SELECT url FROM events").await.expect("the victim's own query");
    assert_eq!(own.len(), 30);
    assert!(serde_json::to_string(&own).expect("json").contains(MARKER));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let rolled = victim.query_json("SELECT page FROM rollups WHERE page IS NOT NULL").await.expect("rollups");
        if serde_json::to_string(&rolled).expect("json").contains(MARKER) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the victim's hour was not rolled up");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    let queries = queries();
    assert!(queries.len() >= 20, "the suite is short: {}", queries.len());
    let mut answered = 0;
    for sql in &queries {
        let seen = match attacker.query_json(sql).await {
            Ok(rows) => {
                answered += 1;
                serde_json::to_string(&rows).expect("json")
            }
            Err(e) => e.to_string(),
        };
        assert!(!seen.to_lowercase().contains(MARKER), "HTTP leaked through {sql:?}:\n{seen}");
    }
    assert!(answered >= 5, "too few queries were answered to mean anything: {answered}");

    let uri = server.grpc_url.clone().expect("Flight SQL address");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/isolation/flightsql_suite.py");
    let output = tokio::task::block_in_place(|| {
        Command::new("python3").args([script, &uri, attacker.token(), SUITE, MARKER]).output().expect("python3")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("no leaks"),
        "Flight SQL suite failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let addr = server.pg_addr.clone().expect("PostgreSQL wire address");
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/isolation/pgwire_suite.py");
    let output = tokio::task::block_in_place(|| {
        Command::new("python3").args([script, host, port, attacker.token(), SUITE, MARKER]).output().expect("python3")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("no leaks"),
        "PostgreSQL wire suite failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
