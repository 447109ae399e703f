//! Imported tables: `POST /api/v1/tables/{name}/import` turns a CSV, NDJSON or Parquet upload
//! into one Parquet object and records it in the catalog for the tenant, replacing a previous
//! import of the name atomically; `GET /api/v1/tables` lists the tenant's tables and
//! `DELETE /api/v1/tables/{name}` drops an imported one. Queries see imported tables next to
//! `events` (see `hourglass_query`'s sessions).

mod convert;
mod options;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hourglass_catalog::ImportedTable;
use hourglass_types::ErrorKind;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ApiError;
use crate::handlers::{Shared, role_missing};
use options::{ImportOptions, table_name};

/// Bytes read from the converted file per write to the object store.
const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, format!("{what}: {e}"))
}

/// `POST /api/v1/tables/{name}/import`.
pub(crate) async fn import_table(
    State(gw): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = gw.auth.writer(&headers).await?;
    let name = table_name(&name)?.to_string();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let options = ImportOptions::parse(&params, content_type)?;
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok())
        && !encoding.eq_ignore_ascii_case("identity")
    {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!("Content-Encoding {encoding:?} is not supported for imports; send the file as it is"),
        ));
    }
    let store = gw.services.store.as_ref().ok_or_else(|| role_missing("querier or ingester"))?;

    let upload = receive(body, gw.max_import_bytes).await?;
    // The slot bounds conversions (a core and temporary disk each), not slow uploads.
    let _slot = gw.import_slots.try_acquire().map_err(|_| {
        ApiError::new(ErrorKind::ResourceExhausted, "too many imports in progress on this node; retry shortly")
    })?;
    let converted = tokio::task::spawn_blocking(move || convert::convert(upload.path(), &options))
        .await
        .map_err(|e| internal("converting the upload", e))??;
    let bytes = converted.parquet.as_file().metadata().map_err(|e| internal("sizing the Parquet file", e))?.len();
    let arrow_schema =
        hourglass_query::encode_schema(&converted.schema).map_err(|e| internal("encoding the schema", e))?;
    let replaces = gw.catalog.list_imports(&tenant).await?.into_iter().find(|t| t.name == name).map(|t| t.path);
    let path = format!("imports/{tenant}/{name}/{}.parquet", uuid::Uuid::now_v7());
    let mut uncommitted = Uncommitted { store: Arc::clone(store), path: Some(path.clone()) };
    upload_file(store, &path, converted.parquet.path()).await?;

    let record = ImportedTable {
        tenant: tenant.clone(),
        name: name.clone(),
        path: path.clone(),
        arrow_schema,
        rows: converted.rows,
        bytes,
        imported_at_ms: 0,
    };
    let replaced = match gw.catalog.put_import(&record, replaces.as_deref()).await {
        Ok(replaced) => replaced,
        // Another import won: nothing refers to this object, and the guard removes it.
        Err(e @ hourglass_catalog::Error::ImportRaced { .. }) => return Err(e.into()),
        Err(e) => {
            // The commit may have happened even though its answer was lost: delete the object
            // only when the catalog is known not to refer to it.
            match gw.catalog.list_imports(&tenant).await {
                Ok(tables) if tables.iter().any(|t| t.path == path) => replaces.is_some(),
                Ok(_) => return Err(e.into()),
                Err(_) => {
                    tracing::warn!(path, "import outcome unknown; leaving its object in place");
                    uncommitted.path = None;
                    return Err(e.into());
                }
            }
        }
    };
    uncommitted.path = None;
    tracing::info!(tenant = %tenant, table = name, rows = converted.rows, bytes, replaced, "table imported");
    let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
    let body = serde_json::json!({
        "table": name,
        "rows": converted.rows,
        "bytes": bytes,
        "replaced": replaced,
        "columns": columns(&converted.schema),
    });
    Ok((status, Json(body)).into_response())
}

/// `GET /api/v1/tables`: the tenant's tables, built-in and imported.
pub(crate) async fn list_tables(State(gw): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = gw.auth.tenant(&headers).await?;
    let mut tables = vec![
        serde_json::json!({"name": "events", "kind": "built_in"}),
        serde_json::json!({"name": "raw_events", "kind": "built_in"}),
        serde_json::json!({"name": "sessions", "kind": "computed"}),
    ];
    for table in gw.catalog.list_imports(&tenant).await? {
        let schema =
            hourglass_query::decode_schema(&table.arrow_schema).map_err(|e| internal("reading a schema", e))?;
        let imported_at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(table.imported_at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        tables.push(serde_json::json!({
            "name": table.name,
            "kind": "imported",
            "rows": table.rows,
            "bytes": table.bytes,
            "imported_at": imported_at,
            "columns": columns(&schema),
        }));
    }
    Ok(Json(serde_json::json!({"tables": tables})).into_response())
}

/// `DELETE /api/v1/tables/{name}`: drops an imported table.
pub(crate) async fn drop_table(
    State(gw): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = gw.auth.writer(&headers).await?;
    let name = table_name(&name)?;
    if !gw.catalog.drop_import(&tenant, name).await? {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no imported table {name}")));
    }
    tracing::info!(tenant = %tenant, table = name, "imported table dropped");
    Ok(Json(serde_json::json!({"table": name, "dropped": true})).into_response())
}

/// Columns as the API shows them.
fn columns(schema: &SchemaRef) -> Vec<serde_json::Value> {
    schema.fields().iter().map(|f| serde_json::json!({"name": f.name(), "type": type_name(f.data_type())})).collect()
}

/// The SQL-facing name of a column type.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int64 => "int64".into(),
        DataType::Int32 => "int32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        other => other.to_string(),
    }
}

/// An uploaded object the catalog does not refer to (yet): deleted when the guard drops with
/// the path still set, including when the client goes away mid-import and the handler is
/// dropped.
struct Uncommitted {
    store: Arc<dyn ObjectStore>,
    path: Option<String>,
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            match store.delete(&ObjectPath::from(path.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(path, error = %e, "removing an uncommitted import failed"),
            }
        });
    }
}

/// Streams the request body into a temporary file, refusing more than `limit` bytes.
async fn receive(body: Body, limit: u64) -> Result<tempfile::NamedTempFile, ApiError> {
    let upload = tempfile::NamedTempFile::new().map_err(|e| internal("creating a temporary file", e))?;
    let file = upload.reopen().map_err(|e| internal("opening the temporary file", e))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("reading the request body: {e}")))?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("the import exceeds the limit of {limit} bytes (--max-import-bytes)"),
            ));
        }
        file.write_all(&chunk).await.map_err(|e| internal("storing the upload", e))?;
    }
    file.flush().await.map_err(|e| internal("storing the upload", e))?;
    if seen == 0 {
        return Err(ApiError::new(ErrorKind::InvalidArgument, "the request body is empty; send the file"));
    }
    Ok(upload)
}

/// Copies the file at `local` to `path` in the store (multipart when it is large).
async fn upload_file(store: &Arc<dyn ObjectStore>, path: &str, local: &std::path::Path) -> Result<(), ApiError> {
    let failed = |e: &dyn std::fmt::Display| ApiError::new(ErrorKind::Unavailable, format!("uploading {path}: {e}"));
    let mut file = tokio::fs::File::open(local).await.map_err(|e| internal("reading the Parquet file", e))?;
    let mut writer = object_store::buffered::BufWriter::new(Arc::clone(store), ObjectPath::from(path));
    let mut buffer = vec![0u8; UPLOAD_CHUNK];
    let copied = async {
        loop {
            let n = file.read(&mut buffer).await.map_err(|e| internal("reading the Parquet file", e))?;
            if n == 0 {
                break;
            }
            writer.write_all(&buffer[..n]).await.map_err(|e| failed(&e))?;
        }
        writer.shutdown().await.map_err(|e| failed(&e))
    }
    .await;
    if copied.is_err() {
        // Abandons a multipart upload, which stores would otherwise keep (and bill).
        writer.abort().await.ok();
    }
    copied
}
