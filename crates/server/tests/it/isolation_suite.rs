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

/// NDJSON of events whose every field carries the marker.
fn victim_events(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"event_id\":\"{MARKER}-{prefix}-{i}\",\"name\":\"{MARKER}-purchase\",\"url\":\"https://{MARKER}.example/{MARKER}/{i}?utm_source={MARKER}\",\"user_id\":\"{MARKER}-user\",\"props\":{{\"k\":\"{MARKER}\"}}}}\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_interface_leaks_another_tenants_rows() {
    let server = TestServer::start(&[]);
    let (attacker_w, attacker) = server.tenant("attacker").await;
    let (victim_w, victim) = server.tenant("victim").await;
    // Persisted rows of both share Parquet files; more rows of both stay in the buffer.
    attacker_w.ingest(pageviews("a1", 20)).await.expect("ingest");
    victim_w.ingest(victim_events("p", 20)).await.expect("ingest");
    server.admin().flush().await.expect("flush");
    attacker_w.ingest(pageviews("a2", 5)).await.expect("ingest");
    victim_w.ingest(victim_events("b", 5)).await.expect("ingest");

    // Control: the marker is there to be found, by its owner.
    let own = victim.query_json("SELECT url FROM events").await.expect("the victim's own query");
    assert_eq!(own.len(), 25);
    assert!(serde_json::to_string(&own).expect("json").contains(MARKER));

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
