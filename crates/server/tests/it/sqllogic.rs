//! SQL behaviour as sqllogictest files (`tests/sql/*.slt`), run against a real server over HTTP
//! with Arrow results: time buckets, time zones, gap filling, approximate aggregates. Every
//! file reads the same small tenant dataset, described in `tests/sql/README.md`.

use std::path::PathBuf;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use hourglass_client::Client;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::support::TestServer;

/// The dataset every file reads: (event_id, timestamp, name, client_id, revenue).
const EVENTS: &[(&str, &str, &str, &str, Option<f64>)] = &[
    ("e1", "2026-03-28T22:30:00Z", "pageview", "c1", None),
    ("e2", "2026-03-28T23:10:00Z", "pageview", "c2", None),
    ("e3", "2026-03-29T00:45:00Z", "purchase", "c1", Some(10.0)),
    ("e4", "2026-03-29T01:30:00Z", "pageview", "c3", None),
    ("e5", "2026-03-29T03:05:00Z", "pageview", "c1", None),
    ("e6", "2026-03-29T03:55:00Z", "purchase", "c4", Some(30.0)),
    ("e7", "2026-03-29T06:00:00Z", "pageview", "c2", None),
    ("e8", "2026-03-29T22:15:00Z", "pageview", "c5", None),
];

fn ndjson(events: &[(&str, &str, &str, &str, Option<f64>)]) -> String {
    events
        .iter()
        .map(|(id, ts, name, client, revenue)| {
            let revenue = revenue.map(|r| format!(",\"revenue\":{r}")).unwrap_or_default();
            format!(
                "{{\"event_id\":\"{id}\",\"timestamp\":\"{ts}\",\"name\":\"{name}\",\"client_id\":\"{client}\"{revenue}}}\n"
            )
        })
        .collect()
}

/// The error of a statement, as the runner compares it with `statement error <regex>`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SqlError(String);

struct Hourglass {
    client: Client,
}

#[async_trait::async_trait]
impl AsyncDB for Hourglass {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let batches = self.client.query_arrow(sql).await.map_err(|e| SqlError(e.to_string()))?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        let mut columns = 0;
        for batch in &batches {
            columns = batch.num_columns();
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SqlError(e.to_string()))?;
            for row in 0..batch.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
            }
        }
        Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any; columns], rows })
    }

    async fn shutdown(&mut self) {}

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_behaviour_files_pass() {
    let server = TestServer::start(&["--max-past", "3650days"]);
    let (writer, reader) = server.tenant("slt").await;
    let (other_writer, _) = server.tenant("slt-other").await;
    // Half the rows persisted, half in the buffer: answers must not depend on where rows are.
    writer.ingest(ndjson(&EVENTS[..4])).await.expect("ingest");
    other_writer.ingest(ndjson(EVENTS)).await.expect("ingest another tenant");
    server.admin().flush().await.expect("flush");
    writer.ingest(ndjson(&EVENTS[4..])).await.expect("ingest");

    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sql"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    for file in files {
        let client = reader.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let client = client.clone();
            async move { Ok(Hourglass { client }) }
        });
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{}:\n{}", file.display(), e.display(true));
        }
    }
}
