//! Acknowledged events are visible at once, and exactly once before, during and after a
//! persist; re-sent events are stored once; SIGTERM persists the buffer.

use crate::support::{TestServer, pageviews, scalar};

#[tokio::test]
async fn events_are_counted_once_while_persists_run() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("once").await;
    let admin = server.admin();
    for round in 1..=6i64 {
        writer.ingest(pageviews(&format!("r{round}"), 100)).await.expect("ingest");
        let expected = round * 100;
        // Queries race the persist that moves these rows from the buffer into files.
        let flush = tokio::spawn({
            let admin = admin.clone();
            async move { admin.flush().await }
        });
        for _ in 0..8 {
            assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, expected);
            assert_eq!(scalar(&reader, "SELECT count(DISTINCT event_id) FROM raw_events").await, expected);
        }
        flush.await.expect("join").expect("flush");
        assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, expected);
    }
    assert_eq!(server.objects(".parquet").len(), 12);
}

#[tokio::test]
async fn resent_events_are_stored_once() {
    let mut server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("dup").await.expect("tenant");
    let writer = server.admin().with_token(&creds.write_key);
    let reader = server.admin().with_token(&creds.read_token);
    let (other_writer, other_reader) = server.tenant("dup2").await;
    let first = writer.ingest(pageviews("e", 10)).await.expect("first");
    assert_eq!((first.accepted, first.duplicates), (10, 0));
    let again = writer.ingest(pageviews("e", 10)).await.expect("retry");
    assert_eq!((again.accepted, again.duplicates), (10, 10));
    let within = writer
        .ingest("{\"event_id\":\"same\",\"name\":\"a\"}\n{\"event_id\":\"same\",\"name\":\"a\"}\n")
        .await
        .expect("same id twice in one request");
    assert_eq!((within.accepted, within.duplicates), (2, 1));
    // The same id from another tenant is another event.
    other_writer.ingest(pageviews("e", 10)).await.expect("other tenant");
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 11);
    assert_eq!(scalar(&other_reader, "SELECT count(*) FROM events").await, 10);

    // After a crash the buffer is rebuilt from the WAL, and so is the de-duplication index.
    server.restart();
    let writer = server.admin().with_token(&creds.write_key);
    let reader = server.admin().with_token(&creds.read_token);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 11);
    let retry = writer.ingest(pageviews("e", 10)).await.expect("retry after restart");
    assert_eq!(retry.duplicates, 10);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events").await, 11);
}

#[tokio::test]
async fn sigterm_persists_the_buffer() {
    let mut server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("term").await.expect("tenant");
    let writer = server.admin().with_token(&creds.write_key);
    writer.ingest(pageviews("t", 250)).await.expect("ingest");
    assert!(server.objects(".parquet").is_empty(), "nothing persisted before shutdown");
    assert!(server.terminate(), "clean exit on SIGTERM:\n{}", server.logs());
    assert_eq!(server.objects(".parquet").len(), 2, "raw and events files written at shutdown");
    assert!(server.objects(".wal").is_empty(), "WAL segments removed once persisted");
    server.restart();
    let reader = server.admin().with_token(&creds.read_token);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 250);
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events").await, 250);
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("m").await;
    writer.ingest(pageviews("m", 7)).await.expect("ingest");
    scalar(&reader, "SELECT count(*) FROM events").await;
    server.admin().flush().await.expect("flush");
    assert_eq!(server.get("/health").await.0, 200);
    assert_eq!(server.get("/ready").await.0, 200);
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "hourglass_ingest_events_total 7",
        "hourglass_ingest_bytes_total",
        "hourglass_ingest_rejected_events_total 0",
        "hourglass_wal_sync_seconds_count",
        "hourglass_persist_seconds_count 1",
        "hourglass_query_seconds_count 1",
        "hourglass_ingest_buffer_bytes 0",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
    }
    assert_eq!(server.get("/nope").await.0, 404);
}

#[tokio::test]
async fn query_limits_and_formats() {
    let server = TestServer::start(&["--query-timeout", "1s"]);
    let (writer, reader) = server.tenant("q").await;
    writer.ingest("{\"event_id\":\"p1\",\"name\":\"pageview\",\"props\":{\"plan\":\"pro\"}}\n").await.expect("ingest");

    // A runaway query is cancelled with 504 query_timeout, and the server goes on serving.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/query", server.url))
        .bearer_auth(reader_token(&server, "q2").await)
        .json(&serde_json::json!({"sql": "SELECT count(*) FROM range(1000000000000) a, range(1000000000000) b"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "query_timeout");
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 1);

    // EXPLAIN is allowed; EXPLAIN ANALYZE (whose metrics count other tenants' pruned rows) is not.
    assert!(!reader.query_json("EXPLAIN SELECT count(*) FROM events").await.expect("explain").is_empty());
    assert_eq!(crate::support::status_of(reader.query_json("EXPLAIN ANALYZE SELECT count(*) FROM events").await), 403);

    // CSV writes maps as JSON text.
    let csv =
        reader.query_raw("SELECT event_id, props FROM events", hourglass_client::QueryFormat::Csv).await.expect("csv");
    assert_eq!(String::from_utf8_lossy(&csv), "event_id,props\np1,\"{\"\"plan\"\":\"\"pro\"\"}\"\n");
}

async fn reader_token(server: &TestServer, tenant: &str) -> String {
    server.admin().create_tenant(tenant).await.expect("tenant").read_token
}
