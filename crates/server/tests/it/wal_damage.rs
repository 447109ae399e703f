//! A torn or corrupted last WAL segment: the server starts, reports it, and keeps every
//! complete entry.

use std::fs::OpenOptions;

use crate::support::{TestServer, pageviews, scalar};

async fn ingest_three_segments(server: &TestServer) -> (hourglass_client::TenantCredentials, Vec<std::path::PathBuf>) {
    let creds = server.admin().create_tenant("wal").await.expect("tenant");
    let writer = server.admin().with_token(&creds.write_key);
    for i in 0..3 {
        // Sequential requests: one WAL segment each.
        writer.ingest(pageviews(&format!("s{i}"), 10)).await.expect("ingest");
    }
    let segments = server.objects(".wal");
    assert_eq!(segments.len(), 3, "one segment per request: {segments:?}");
    (creds, segments)
}

async fn assert_recovered(server: &TestServer, creds: &hourglass_client::TenantCredentials) {
    let reader = server.admin().with_token(&creds.read_token);
    assert_eq!(
        scalar(&reader, "SELECT count(*) FROM raw_events").await,
        20,
        "the two whole segments survive:\n{}",
        server.logs()
    );
    assert_eq!(scalar(&reader, "SELECT count(*) FROM raw_events WHERE event_id LIKE 's2-%'").await, 0);
    let logs = server.logs();
    assert!(logs.contains("WAL segment is damaged"), "damage reported in the log:\n{logs}");
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("hourglass_wal_corrupt_segments_total 1"), "{metrics}");
    assert_eq!(server.objects(".wal").iter().filter(|p| p.to_string_lossy().contains("wal-quarantine")).count(), 1);

    // The server goes on working, and the recovered events persist normally.
    let writer = server.admin().with_token(&creds.write_key);
    writer.ingest(pageviews("after", 5)).await.expect("ingest after recovery");
    server.admin().flush().await.expect("flush");
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 25);
}

#[tokio::test]
async fn truncated_last_segment_keeps_complete_entries() {
    let mut server = TestServer::start(&["--persist-max-age", "1h"]);
    let (creds, segments) = ingest_three_segments(&server).await;
    server.kill();
    let last = segments.last().expect("segment");
    // Cut into the last entry (the footer is 16 bytes), as a torn write would.
    let len = std::fs::metadata(last).expect("meta").len();
    OpenOptions::new().write(true).open(last).expect("open").set_len(len - 40).expect("truncate");
    server.restart();
    assert_recovered(&server, &creds).await;
}

#[tokio::test]
async fn corrupted_last_segment_keeps_complete_entries() {
    let mut server = TestServer::start(&["--persist-max-age", "1h"]);
    let (creds, segments) = ingest_three_segments(&server).await;
    server.kill();
    let last = segments.last().expect("segment");
    let mut bytes = std::fs::read(last).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(last, bytes).expect("write");
    server.restart();
    assert_recovered(&server, &creds).await;
}
