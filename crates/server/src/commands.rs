//! The client subcommands: `tenant create`, `query` and `import`.

use anyhow::Context;
use futures::StreamExt;
use hourglass_client::{Client, QueryFormat};
use tokio::io::AsyncReadExt;

use crate::cli::{ImportArgs, ImportFormat, OutputFormat, QueryArgs, RetentionChoice, TenantCommand};
use crate::progress::Progress;

pub async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { id, server } => {
            let client = Client::new(&server.server, &server.token);
            let created = client.create_tenant(&id).await?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(())
        }
        TenantCommand::Settings(args) => {
            let client = Client::new(&args.server.server, &args.server.token);
            let list = |text: &str| -> Vec<String> {
                text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
            };
            let mut patch = serde_json::Map::new();
            if let Some(ms) = args.session_timeout {
                patch.insert("session_timeout_ms".into(), ms.into());
            }
            if let Some(mode) = args.identified_mode {
                patch.insert("identified_mode".into(), mode.into());
            }
            if let Some(hosts) = &args.allowed_hostnames {
                patch.insert("allowed_hostnames".into(), list(hosts).into());
            }
            if let Some(names) = &args.key_events {
                patch.insert("key_events".into(), list(names).into());
            }
            if let Some(code) = &args.reporting_currency {
                patch.insert("reporting_currency".into(), code.clone().into());
            }
            if let Some(zone) = &args.timezone {
                patch.insert("timezone".into(), zone.clone().into());
            }
            let mut retention = serde_json::Map::new();
            for (table, choice) in [("raw_events", args.retention_raw_days), ("events", args.retention_events_days)] {
                match choice {
                    Some(RetentionChoice::Days(days)) => retention.insert(table.into(), days.into()),
                    Some(RetentionChoice::Default) => retention.insert(table.into(), serde_json::Value::Null),
                    None => None,
                };
            }
            if !retention.is_empty() {
                patch.insert("retention".into(), retention.into());
            }
            let settings = if patch.is_empty() {
                client.tenant_settings(&args.id).await?
            } else {
                client.update_tenant_settings(&args.id, &serde_json::Value::Object(patch)).await?
            };
            println!("{}", serde_json::to_string_pretty(&settings)?);
            Ok(())
        }
    }
}

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server.server, &args.server.token);
    match args.format {
        OutputFormat::Table => {
            let batches = client.query_arrow(&args.sql).await?;
            let table = arrow::util::pretty::pretty_format_batches(&batches)?;
            println!("{table}");
        }
        OutputFormat::Csv => {
            let body = client.query_raw(&args.sql, QueryFormat::Csv).await?;
            print!("{}", String::from_utf8_lossy(&body));
        }
        OutputFormat::Json => {
            let body = client.query_raw(&args.sql, QueryFormat::Json).await?;
            println!("{}", String::from_utf8_lossy(&body));
        }
    }
    Ok(())
}

/// Bytes read from the file per chunk sent.
const IMPORT_CHUNK: usize = 256 * 1024;

/// The import format a file's extension names.
fn format_of(path: &std::path::Path) -> Option<ImportFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "csv" => ImportFormat::Csv,
        "tsv" | "tab" => ImportFormat::Tsv,
        "ndjson" | "jsonl" | "json" => ImportFormat::Ndjson,
        "parquet" | "pq" => ImportFormat::Parquet,
        _ => return None,
    })
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let format = args.format.or_else(|| format_of(&args.file)).with_context(|| {
        format!("cannot tell the format of {} from its extension; pass --format", args.file.display())
    })?;
    let mut params: Vec<(&str, String)> = vec![(
        "format",
        match format {
            ImportFormat::Csv => "csv",
            ImportFormat::Tsv => "tsv",
            ImportFormat::Ndjson => "ndjson",
            ImportFormat::Parquet => "parquet",
        }
        .to_string(),
    )];
    if let Some(schema) = &args.schema {
        params.push(("schema", schema.clone()));
    }
    if args.no_header {
        params.push(("header", "false".to_string()));
    }
    if let Some(delimiter) = &args.delimiter {
        params.push(("delimiter", delimiter.clone()));
    }
    let file = tokio::fs::File::open(&args.file).await.with_context(|| format!("opening {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let progress = Progress::new(format!("importing {} as {}", args.file.display(), args.table), size);
    let chunks = futures::stream::unfold((file, progress.clone()), |(mut file, progress)| async move {
        let mut buffer = vec![0u8; IMPORT_CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => {
                progress.uploaded();
                None
            }
            Ok(n) => {
                buffer.truncate(n);
                progress.advance(n as u64);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), (file, progress)))
            }
            Err(e) => Some((Err(e), (file, progress))),
        }
    });
    let client = Client::new(&args.server.server, &args.server.token);
    let result = client.import_table(&args.table, &params, hourglass_client::Body::wrap_stream(chunks.boxed())).await;
    progress.finish();
    let summary = result?;
    let columns: Vec<String> = summary["columns"]
        .as_array()
        .map(|columns| {
            columns
                .iter()
                .map(|c| format!("{} {}", c["name"].as_str().unwrap_or("?"), c["type"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    eprintln!(
        "{} table {}: {} rows, {} bytes; columns: {}",
        if summary["replaced"].as_bool() == Some(true) { "replaced" } else { "created" },
        summary["table"].as_str().unwrap_or(&args.table),
        summary["rows"],
        summary["bytes"],
        columns.join(", ")
    );
    println!("{summary}");
    Ok(())
}
