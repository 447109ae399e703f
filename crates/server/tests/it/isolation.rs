//! A tenant's token reaches that tenant's rows and nothing else, however the SQL is written.

use serde_json::Value;

use crate::support::{TestServer, pageviews, scalar, status_of};

async fn assert_isolated(a: &hourglass_client::Client, b: &hourglass_client::Client, stage: &str) {
    assert_eq!(scalar(a, "SELECT count(*) FROM events").await, 30, "{stage}");
    assert_eq!(scalar(b, "SELECT count(*) FROM events").await, 20, "{stage}");
    assert_eq!(scalar(b, "SELECT count(*) FROM raw_events").await, 20, "{stage}");
    for sql in [
        "SELECT count(*) FROM events WHERE tenant_id = 'a'",
        "SELECT count(*) FROM raw_events WHERE tenant_id <> 'b'",
        "SELECT count(*) FROM (SELECT tenant_id FROM events UNION ALL SELECT tenant_id FROM raw_events) t WHERE tenant_id = 'a'",
        "SELECT count(*) FROM events WHERE event_id IN (SELECT event_id FROM raw_events WHERE tenant_id = 'a')",
        "WITH x AS (SELECT * FROM raw_events WHERE tenant_id = 'a') SELECT count(*) FROM x",
        "SELECT count(*) FROM events e JOIN raw_events r ON e.event_id = r.event_id WHERE r.tenant_id = 'a'",
        "SELECT count(*) FROM events WHERE event_id LIKE 'a-%'",
    ] {
        assert_eq!(scalar(b, sql).await, 0, "{stage}: {sql}");
    }
    let tenants = b
        .query_json(
            "SELECT DISTINCT tenant_id FROM (SELECT tenant_id FROM events UNION SELECT tenant_id FROM raw_events) t",
        )
        .await
        .expect("union");
    assert_eq!(tenants.len(), 1, "{stage}");
    assert_eq!(tenants[0].get("tenant_id"), Some(&Value::from("b")), "{stage}");

    let tables = b
        .query_json("SELECT table_catalog, table_schema, table_name FROM information_schema.tables WHERE table_schema <> 'information_schema' ORDER BY table_name")
        .await
        .expect("information_schema");
    let names: Vec<&str> = tables.iter().filter_map(|r| r.get("table_name")?.as_str()).collect();
    assert_eq!(names, ["events", "raw_events", "rollups", "sessions"], "{stage}");
}

#[tokio::test]
async fn tenants_see_only_their_rows_in_buffer_and_files() {
    // One shard: both tenants share every Parquet file, so isolation must come from pruning
    // and filtering inside the files, not from separate files.
    let server = TestServer::start(&["--shards", "1"]);
    let (a_writer, a) = server.tenant("a").await;
    let (b_writer, b) = server.tenant("b").await;
    a_writer.ingest(pageviews("a", 30)).await.expect("ingest a");
    b_writer.ingest(pageviews("b", 20)).await.expect("ingest b");

    assert_isolated(&a, &b, "buffered").await;
    server.admin().flush().await.expect("flush");
    let files = server.objects(".parquet");
    assert_eq!(files.len(), 2, "one raw and one events file hold both tenants: {files:?}");
    assert_isolated(&a, &b, "persisted").await;

    // Half in files, half in the buffer.
    a_writer.ingest(pageviews("a2", 5)).await.expect("ingest a");
    assert_eq!(scalar(&b, "SELECT count(*) FROM events WHERE tenant_id = 'a'").await, 0);
    assert_eq!(scalar(&a, "SELECT count(*) FROM events").await, 35);
}

#[tokio::test]
async fn sessions_are_read_only() {
    let server = TestServer::start(&[]);
    let (_, reader) = server.tenant("ro").await;
    for sql in [
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/'",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT * FROM events",
        "DROP TABLE events",
        "INSERT INTO events SELECT * FROM events",
        "COPY (SELECT 1) TO '/tmp/hourglass-escape.csv'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; SELECT 2",
        "SELECT * FROM '/etc/passwd'",
    ] {
        let status = status_of(reader.query_json(sql).await);
        assert!((400..500).contains(&status), "{sql} gave {status}");
    }
    assert!(!std::path::Path::new("/tmp/hourglass-escape.csv").exists());
    assert_eq!(scalar(&reader, "SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn tokens_only_do_their_job() {
    let server = TestServer::start(&[]);
    let creds = server.admin().create_tenant("tok").await.expect("tenant");
    let writer = server.admin().with_token(&creds.write_key);
    let reader = server.admin().with_token(&creds.read_token);
    assert_eq!(status_of(writer.query_json("SELECT 1").await), 403);
    assert_eq!(status_of(reader.ingest(pageviews("x", 1)).await), 403);
    assert_eq!(status_of(server.admin().ingest(pageviews("x", 1)).await), 403);
    assert_eq!(status_of(server.anonymous().ingest(pageviews("x", 1)).await), 401);
    assert_eq!(status_of(server.admin().with_token("hgw_nope").ingest(pageviews("x", 1)).await), 401);
    assert_eq!(status_of(reader.create_tenant("other").await), 403);
    assert_eq!(status_of(server.anonymous().flush().await), 401);

    // system.* is the admin's, and the admin reads no tenant's rows.
    for sql in ["SELECT * FROM system.files", "SELECT * FROM system.nodes", "SELECT * FROM system.partitions"] {
        let status = status_of(reader.query_json(sql).await);
        assert!(status == 400 || status == 404, "{sql}: {status}");
        server.admin().query_json(sql).await.unwrap_or_else(|e| panic!("admin {sql}: {e}"));
    }
    let status = status_of(server.admin().query_json("SELECT count(*) FROM events").await);
    assert!(status == 400 || status == 404, "the admin read tenant rows: {status}");
    let nodes = server.admin().query_json("SELECT id, roles FROM system.nodes").await.expect("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["roles"], "ingester,querier,compactor,gateway");

    // Tenant creation: 201 with credentials, 409 for a taken id, 400 for a bad one.
    assert!(creds.write_key.starts_with("hgw_") && creds.read_token.starts_with("hgr_"));
    assert_eq!(status_of(server.admin().create_tenant("tok").await), 409);
    for bad in ["", "Upper", "has space", "../x", &"x".repeat(65)] {
        assert_eq!(status_of(server.admin().create_tenant(bad).await), 400, "{bad:?}");
    }
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/tenants", server.url))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .body(r#"{"id": "fresh"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["id"], "fresh");

    // Secrets are stored hashed: the catalog file does not contain them.
    let catalog = std::fs::read(server.data_dir.join("catalog.db")).unwrap_or_default();
    let wal = std::fs::read(server.data_dir.join("catalog.db-wal")).unwrap_or_default();
    for secret in [&creds.write_key, &creds.read_token] {
        let needle = secret.as_bytes();
        for bytes in [&catalog, &wal] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "secret stored in clear");
        }
    }
}

#[tokio::test]
async fn user_expressions_never_run_on_other_tenants_rows() {
    // Tenant "num" has numeric event ids; tenant "secret" has ids that fail a cast. A query
    // of "num" that casts event_id must succeed and never show "secret"'s values, whether its
    // rows are buffered or share Parquet files (and row groups) with "secret".
    let server = TestServer::start(&["--shards", "1"]);
    let (secret_writer, _) = server.tenant("secret").await;
    let (num_writer, num) = server.tenant("num").await;
    let secret_ids: String =
        (0..50).map(|i| format!("{{\"event_id\":\"classified-{i}\",\"name\":\"confidential-name\"}}\n")).collect();
    secret_writer.ingest(secret_ids).await.expect("ingest secret");
    let num_ids: String = (1..=5).map(|i| format!("{{\"event_id\":\"{i}\",\"name\":\"7\"}}\n")).collect();
    num_writer.ingest(num_ids).await.expect("ingest num");
    for stage in ["buffered", "persisted"] {
        if stage == "persisted" {
            server.admin().flush().await.expect("flush");
        }
        for sql in [
            "SELECT count(*) FROM events WHERE CAST(event_id AS BIGINT) > 0",
            "SELECT count(*) FROM events WHERE CAST(name AS INT) = 7",
            "SELECT count(*) FROM raw_events WHERE 10 / (CAST(event_id AS INT) - 0) > 0",
        ] {
            match num.query_json(sql).await {
                Ok(rows) => assert_eq!(rows[0].values().next().and_then(|v| v.as_i64()), Some(5), "{stage}: {sql}"),
                Err(e) => panic!("{stage}: {sql} failed (it must only see its own rows): {e}"),
            }
        }
        let err = num.query_json("SELECT CAST(event_id || 'x' AS INT) FROM events").await.expect_err("bad cast");
        let text = err.to_string();
        assert!(!text.contains("classified") && !text.contains("confidential"), "{stage}: leaked: {text}");
    }
}
