//! `system.nodes`, `system.files` and `system.partitions`: the cluster and its data as the
//! catalog records them; `system.queries`: the queries this querier is running. For the admin
//! token only. Tenants never see these tables: their rows name other tenants.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use hourglass_catalog::{Catalog, FileFilter, FileRecord, NodeRecord};
use hourglass_types::TableName;

use crate::Result;
use crate::running::QueryInfo;

const HOUR_MS: i64 = 3_600_000;

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn times(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(values).with_timezone("UTC"))
}

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn table(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(datafusion::error::DataFusionError::from)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn nodes(nodes: &[NodeRecord]) -> Result<Arc<MemTable>> {
    table(
        vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("roles", DataType::Utf8, false),
            Field::new("http_url", DataType::Utf8, false),
            Field::new("flight_url", DataType::Utf8, true),
            Field::new("version", DataType::Utf8, false),
            Field::new("started_at", time_type(), false),
            Field::new("heartbeat_at", time_type(), false),
        ],
        vec![
            strings(nodes.iter().map(|n| Some(n.info.id.as_str()))),
            Arc::new(nodes.iter().map(|n| Some(n.info.roles.join(","))).collect::<StringArray>()),
            strings(nodes.iter().map(|n| Some(n.info.http_url.as_str()))),
            strings(nodes.iter().map(|n| n.info.flight_url.as_deref())),
            strings(nodes.iter().map(|n| Some(n.info.version.as_str()))),
            times(nodes.iter().map(|n| n.started_at_ms)),
            times(nodes.iter().map(|n| n.heartbeat_at_ms)),
        ],
    )
}

fn files(files: &[FileRecord]) -> Result<Arc<MemTable>> {
    table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("hour", time_type(), false),
            Field::new("shard", DataType::UInt32, false),
            Field::new("generation", DataType::UInt64, false),
            Field::new("path", DataType::Utf8, false),
            Field::new("min_tenant", DataType::Utf8, false),
            Field::new("max_tenant", DataType::Utf8, false),
            Field::new("min_time", time_type(), false),
            Field::new("max_time", time_type(), false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("processor_version", DataType::Int64, true),
            Field::new("writer", DataType::Utf8, false),
            Field::new("segment_start", DataType::UInt64, true),
            Field::new("segment_end", DataType::UInt64, true),
        ],
        vec![
            Arc::new(Int64Array::from_iter_values(files.iter().map(|f| f.id))),
            strings(files.iter().map(|f| Some(f.file.table.as_str()))),
            times(files.iter().map(|f| f.file.hour * HOUR_MS)),
            Arc::new(UInt32Array::from_iter_values(files.iter().map(|f| f.file.shard))),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.file.generation))),
            strings(files.iter().map(|f| Some(f.file.path.as_str()))),
            strings(files.iter().map(|f| Some(f.file.min_tenant.as_str()))),
            strings(files.iter().map(|f| Some(f.file.max_tenant.as_str()))),
            times(files.iter().map(|f| f.file.min_time_ms)),
            times(files.iter().map(|f| f.file.max_time_ms)),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.file.rows))),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.file.bytes))),
            Arc::new(files.iter().map(|f| f.file.processor_version.map(i64::from)).collect::<Int64Array>()),
            strings(files.iter().map(|f| Some(f.ingester_id.as_str()))),
            Arc::new(files.iter().map(|f| f.file.segment.map(|s| s.start)).collect::<UInt64Array>()),
            Arc::new(files.iter().map(|f| f.file.segment.map(|s| s.end)).collect::<UInt64Array>()),
        ],
    )
}

/// Per (table, hour, shard, generation): file count, rows, bytes and time range.
fn partitions(files: &[FileRecord]) -> Result<Arc<MemTable>> {
    #[derive(Default)]
    struct Totals {
        files: u64,
        rows: u64,
        bytes: u64,
        min_time: i64,
        max_time: i64,
    }
    let mut groups: BTreeMap<(&str, i64, u32, u64), Totals> = BTreeMap::new();
    for f in files {
        let key = (f.file.table.as_str(), f.file.hour, f.file.shard, f.file.generation);
        let t = groups.entry(key).or_insert(Totals { min_time: i64::MAX, max_time: i64::MIN, ..Totals::default() });
        t.files += 1;
        t.rows += f.file.rows;
        t.bytes += f.file.bytes;
        t.min_time = t.min_time.min(f.file.min_time_ms);
        t.max_time = t.max_time.max(f.file.max_time_ms);
    }
    let rows: Vec<_> = groups.into_iter().collect();
    table(
        vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("hour", time_type(), false),
            Field::new("shard", DataType::UInt32, false),
            Field::new("generation", DataType::UInt64, false),
            Field::new("files", DataType::UInt64, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("min_time", time_type(), false),
            Field::new("max_time", time_type(), false),
        ],
        vec![
            strings(rows.iter().map(|((t, ..), _)| Some(*t))),
            times(rows.iter().map(|((_, h, ..), _)| h * HOUR_MS)),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|((_, _, s, _), _)| *s))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|((.., g), _)| *g))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|(_, t)| t.files))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|(_, t)| t.rows))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|(_, t)| t.bytes))),
            times(rows.iter().map(|(_, t)| t.min_time)),
            times(rows.iter().map(|(_, t)| t.max_time)),
        ],
    )
}

/// Queries running or queued on this querier, oldest first.
fn queries(queries: &[QueryInfo]) -> Result<Arc<MemTable>> {
    let started = |q: &QueryInfo| {
        q.started_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    };
    let now = std::time::SystemTime::now();
    table(
        vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("tenant", DataType::Utf8, true),
            Field::new("interface", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("started_at", time_type(), false),
            Field::new("elapsed_ms", DataType::UInt64, false),
            Field::new("memory_bytes", DataType::UInt64, false),
            Field::new("sql", DataType::Utf8, false),
        ],
        vec![
            Arc::new(UInt64Array::from_iter_values(queries.iter().map(|q| q.id))),
            strings(queries.iter().map(|q| q.tenant.as_deref())),
            strings(queries.iter().map(|q| Some(q.interface.as_str()))),
            strings(queries.iter().map(|q| Some(q.state))),
            times(queries.iter().map(started)),
            Arc::new(UInt64Array::from_iter_values(queries.iter().map(|q| {
                now.duration_since(q.started_at).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }))),
            Arc::new(UInt64Array::from_iter_values(queries.iter().map(|q| q.memory_bytes as u64))),
            strings(queries.iter().map(|q| Some(q.sql.as_str()))),
        ],
    )
}

/// The `system` schema, read from the catalog and the query registry now.
pub(crate) async fn system_schema(catalog: &dyn Catalog, running: &[QueryInfo]) -> Result<Arc<MemorySchemaProvider>> {
    let external = |e: hourglass_catalog::Error| datafusion::error::DataFusionError::External(Box::new(e));
    let node_list = catalog.list_nodes().await.map_err(external)?;
    let mut all_files = Vec::new();
    for t in TableName::ALL {
        let filter = FileFilter { table: t, tenant: None, min_time_ms: None, max_time_ms: None };
        all_files.extend(catalog.list_files(&filter).await.map_err(external)?.files);
    }
    let schema = Arc::new(MemorySchemaProvider::new());
    schema.register_table("nodes".to_string(), nodes(&node_list)?)?;
    schema.register_table("files".to_string(), files(&all_files)?)?;
    schema.register_table("partitions".to_string(), partitions(&all_files)?)?;
    schema.register_table("queries".to_string(), queries(running)?)?;
    Ok(schema)
}
