//! Imported tables: a CRM export uploaded as CSV joins with `events` in SQL, stays in its
//! tenant, is replaced atomically by a re-import through `hourglass import` (a query loop
//! running meanwhile sees the old table or the new one, never an error or a mix), takes
//! NDJSON and Parquet with a given schema, refuses bad files with the row at fault, and drops.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use hourglass_client::Client;

use crate::support::{TestServer, status_of};

/// A CRM export with headers a spreadsheet would write.
const CRM_CSV: &str = "Client ID,Plan,Seats,Signed Up\n\
    c1,pro,5,2026-01-02T03:04:05Z\n\
    c2,free,1,2026-02-01T00:00:00Z\n\
    c3,pro,12,2026-03-01T12:00:00Z\n";

async fn import(writer: &Client, name: &str, params: &[(&str, &str)], body: Vec<u8>) -> serde_json::Value {
    let params: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, v.to_string())).collect();
    writer.import_table(name, &params, body.into()).await.unwrap_or_else(|e| panic!("import {name}: {e}"))
}

fn events_of_clients() -> String {
    // c1: 3 events, c2: 1, c3: 2, and one visitor the CRM does not know.
    ["c1", "c1", "c1", "c2", "c3", "c3", "c9"]
        .iter()
        .enumerate()
        .map(|(i, client)| format!("{{\"event_id\":\"e{i}\",\"name\":\"pageview\",\"client_id\":\"{client}\"}}\n"))
        .collect()
}

async fn rows(reader: &Client, sql: &str) -> Vec<serde_json::Value> {
    let rows = reader.query_json(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(serde_json::Value::Object).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_tables_join_events_and_are_replaced_atomically() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("imp").await;
    let (other_writer, other_reader) = server.tenant("imp-other").await;
    writer.ingest(events_of_clients()).await.expect("ingest");

    let created = import(&writer, "crm", &[("format", "csv")], CRM_CSV.as_bytes().to_vec()).await;
    assert_eq!(created["rows"], 3);
    assert_eq!(created["replaced"], false);
    let columns: Vec<(String, String)> = created["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (c["name"].as_str().expect("name").into(), c["type"].as_str().expect("type").into()))
        .collect();
    let expected = [("client_id", "string"), ("plan", "string"), ("seats", "int64"), ("signed_up", "timestamp")];
    assert_eq!(columns, expected.map(|(n, t)| (n.to_string(), t.to_string())).to_vec());

    // Joined with events: pageviews per plan, counting only visitors the CRM knows.
    let joined = rows(
        &reader,
        "SELECT c.plan, count(*) AS pageviews, count(DISTINCT e.client_id) AS visitors \
         FROM events e JOIN crm c ON e.client_id = c.client_id GROUP BY c.plan ORDER BY c.plan",
    )
    .await;
    assert_eq!(
        joined,
        vec![
            serde_json::json!({"plan": "free", "pageviews": 1, "visitors": 1}),
            serde_json::json!({"plan": "pro", "pageviews": 5, "visitors": 2}),
        ]
    );
    // Timestamps compare with events' without casts.
    let recent =
        rows(&reader, "SELECT client_id FROM crm WHERE signed_up >= TIMESTAMP '2026-02-01T00:00:00Z' ORDER BY 1").await;
    assert_eq!(recent, vec![serde_json::json!({"client_id": "c2"}), serde_json::json!({"client_id": "c3"})]);

    // Another tenant neither sees the table nor is affected by it, and may have its own.
    assert_eq!(status_of(other_reader.query_json("SELECT count(*) FROM crm").await), 400);
    import(&other_writer, "crm", &[("format", "csv")], b"client_id,plan\nz1,enterprise\n".to_vec()).await;
    assert_eq!(rows(&other_reader, "SELECT plan FROM crm").await, vec![serde_json::json!({"plan": "enterprise"})]);
    assert_eq!(rows(&reader, "SELECT count(*) AS n FROM crm").await, vec![serde_json::json!({"n": 3})]);

    // A re-import through the CLI replaces the table while queries run: each sees the old
    // table or the new one.
    let old = serde_json::json!({"n": 3, "seats": 18});
    let new = serde_json::json!({"n": 2, "seats": 100});
    let stop = Arc::new(AtomicBool::new(false));
    let looping = {
        let (reader, stop) = (reader.clone(), Arc::clone(&stop));
        let (old, new) = (old.clone(), new.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) || seen == 0 {
                let got = rows(&reader, "SELECT count(*) AS n, sum(seats) AS seats FROM crm").await;
                assert!(got == vec![old.clone()] || got == vec![new.clone()], "a mix or a failure: {got:?}");
                seen += 1;
            }
            seen
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("crm.ndjson");
    std::fs::write(&file, "{\"client_id\":\"c1\",\"plan\":\"enterprise\",\"seats\":60}\n{\"client_id\":\"c3\",\"plan\":\"pro\",\"seats\":40,\"note\":\"ignored\"}\n")
        .expect("write file");
    let output = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_hourglass"))
            .args(["import"])
            .arg(&file)
            .args(["--table", "crm", "--schema", "client_id:string,plan:string,seats:int64"])
            .env("HOURGLASS_SERVER", &server.url)
            .env("HOURGLASS_TOKEN", writer.token())
            .output()
            .expect("run hourglass import")
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "hourglass import failed:\n{stderr}\n{}", server.logs());
    assert!(stderr.contains("importing") && stderr.contains("100%"), "no progress shown:\n{stderr}");
    assert!(stderr.contains("replaced table crm: 2 rows"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("summary JSON on stdout");
    assert_eq!(summary["replaced"], true);
    stop.store(true, Ordering::SeqCst);
    assert!(looping.await.expect("query loop") > 0);
    assert_eq!(rows(&reader, "SELECT count(*) AS n, sum(seats) AS seats FROM crm").await, vec![new]);

    // Parquet with a given schema: columns picked by name and cast.
    let schema = Arc::new(Schema::new(vec![
        Field::new("email", DataType::Utf8, false),
        Field::new("score", DataType::Int64, false),
        Field::new("unused", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["a@example.com", "b@example.com"])),
            Arc::new(Int64Array::from(vec![7, 9])),
            Arc::new(StringArray::from(vec![None::<&str>, Some("x")])),
        ],
    )
    .expect("batch");
    let mut parquet = Vec::new();
    let mut parquet_writer = parquet::arrow::ArrowWriter::try_new(&mut parquet, schema, None).expect("writer");
    parquet_writer.write(&batch).expect("write");
    parquet_writer.close().expect("close");
    let signups =
        import(&writer, "signups", &[("format", "parquet"), ("schema", "score:float64,email:string")], parquet).await;
    assert_eq!(signups["rows"], 2);
    assert_eq!(
        rows(&reader, "SELECT email, score FROM signups ORDER BY score DESC LIMIT 1").await,
        vec![serde_json::json!({"email": "b@example.com", "score": 9.0})]
    );

    // The tenant's table list.
    let listed = reqwest::Client::new()
        .get(format!("{}/api/v1/tables", server.url))
        .bearer_auth(reader.token())
        .send()
        .await
        .expect("list")
        .json::<serde_json::Value>()
        .await
        .expect("JSON");
    let names: Vec<&str> =
        listed["tables"].as_array().expect("tables").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["events", "raw_events", "sessions", "crm", "signups"]);
}

#[tokio::test]
async fn bad_imports_are_refused_with_the_reason() {
    let server = TestServer::start(&[]);
    let (writer, reader) = server.tenant("imp-bad").await;
    let refused = |params: Vec<(&'static str, String)>, name: &'static str, body: &'static str| {
        let writer = writer.clone();
        async move { writer.import_table(name, &params, body.into()).await }
    };
    let csv = || vec![("format", "csv".to_string())];

    // A value that does not read as its column's type names the column and the line.
    let bad_value = refused(
        vec![("format", "csv".into()), ("schema", "email:string,seats:int64".into())],
        "crm",
        "email,seats\na@x,1\nb@x,many\n",
    )
    .await;
    match &bad_value {
        Err(hourglass_client::Error::Status { status: 400, message }) => {
            assert!(message.contains("many") && message.contains("line"), "{message}")
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // Reserved and malformed names, unknown formats, empty bodies, duplicate columns.
    assert_eq!(status_of(refused(csv(), "events", "a\n1\n").await), 400);
    assert_eq!(status_of(refused(csv(), "pg_class", "a\n1\n").await), 400);
    assert_eq!(status_of(refused(vec![("format", "xlsx".into())], "crm", "a\n1\n").await), 400);
    assert_eq!(status_of(refused(csv(), "crm", "").await), 400);
    assert_eq!(status_of(refused(csv(), "crm", "Plan,plan\n1,2\n").await), 400);
    assert_eq!(status_of(refused(csv(), "crm", "a,,column_2\n1,2,3\n").await), 400);
    assert_eq!(status_of(refused(vec![("format", "parquet".into())], "crm", "not parquet").await), 400);
    // A read token cannot import.
    assert_eq!(status_of(reader.import_table("crm", &csv(), "a\n1\n".into()).await), 403);
    // Nothing was created by the refusals.
    assert_eq!(status_of(reader.query_json("SELECT * FROM crm").await), 400);

    // Drop: the table goes away; a second drop is 404.
    writer.import_table("crm", &csv(), "a\n1\n".into()).await.expect("import");
    assert_eq!(rows(&reader, "SELECT a FROM crm").await, vec![serde_json::json!({"a": 1})]);
    let drop = |token: String| {
        let url = format!("{}/api/v1/tables/crm", server.url);
        async move { reqwest::Client::new().delete(url).bearer_auth(token).send().await.expect("delete").status() }
    };
    assert_eq!(drop(writer.token().to_string()).await, 200);
    assert_eq!(status_of(reader.query_json("SELECT * FROM crm").await), 400);
    assert_eq!(drop(writer.token().to_string()).await, 404);
}
