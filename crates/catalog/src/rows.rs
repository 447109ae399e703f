//! Turning catalog rows into the crate's types.

use hourglass_types::{TableName, TenantId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Error, FileRecord, NewFile, NodeInfo, NodeRecord, Result, Segment};

/// The columns [`file_from_row`] reads, as a literal for `concat!`.
macro_rules! file_columns {
    () => {
        "id, table_name, hour, shard, generation, path, min_tenant, max_tenant, min_time, max_time, rows, bytes, \
         processor_version, retention_mark, ingester_id, wal_through, created_at, segment_start, segment_end, \
         object_bytes"
    };
}
pub(crate) use file_columns;

fn read_err(source: sqlx::Error) -> Error {
    Error::Query { operation: "reading a row", source }
}

pub(crate) fn non_negative(what: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Invalid { what, value: value.to_string() })
}

pub(crate) fn tenant_from_db(id: String) -> Result<TenantId> {
    TenantId::new(&id).map_err(|_| Error::Invalid { what: "tenant id", value: id })
}

pub(crate) fn file_from_row(row: &AnyRow) -> Result<FileRecord> {
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(read_err);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(read_err);
    let table = text("table_name")?;
    let table = TableName::parse(&table).ok_or(Error::Invalid { what: "table name", value: table })?;
    let shard = int("shard")?;
    let processor_version = row.try_get::<Option<i64>, _>("processor_version").map_err(read_err)?;
    let optional = |name: &str| row.try_get::<Option<i64>, _>(name).map_err(read_err);
    let segment = match (optional("segment_start")?, optional("segment_end")?, optional("object_bytes")?) {
        (Some(start), Some(end), Some(object_bytes)) => Some(Segment {
            start: non_negative("segment start", start)?,
            end: non_negative("segment end", end)?,
            object_bytes: non_negative("object size", object_bytes)?,
        }),
        _ => None,
    };
    Ok(FileRecord {
        id: int("id")?,
        file: NewFile {
            table,
            hour: int("hour")?,
            shard: u32::try_from(shard).map_err(|_| Error::Invalid { what: "shard", value: shard.to_string() })?,
            generation: non_negative("generation", int("generation")?)?,
            path: text("path")?,
            min_tenant: text("min_tenant")?,
            max_tenant: text("max_tenant")?,
            min_time_ms: int("min_time")?,
            max_time_ms: int("max_time")?,
            rows: non_negative("row count", int("rows")?)?,
            bytes: non_negative("byte count", int("bytes")?)?,
            segment,
            processor_version: processor_version
                .map(|v| {
                    i32::try_from(v).map_err(|_| Error::Invalid { what: "processor version", value: v.to_string() })
                })
                .transpose()?,
            retention_mark: row.try_get::<Option<String>, _>("retention_mark").map_err(read_err)?,
        },
        ingester_id: text("ingester_id")?,
        wal_through: non_negative("wal position", int("wal_through")?)?,
        created_at_ms: int("created_at")?,
    })
}

pub(crate) fn node_from_row(row: &AnyRow) -> Result<NodeRecord> {
    let text = |name: &str| row.try_get::<String, _>(name).map_err(read_err);
    let roles = text("roles")?;
    Ok(NodeRecord {
        info: NodeInfo {
            id: text("id")?,
            incarnation: text("incarnation")?,
            roles: roles.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect(),
            http_url: text("http_url")?,
            flight_url: row.try_get::<Option<String>, _>("flight_url").map_err(read_err)?,
            version: text("version")?,
        },
        started_at_ms: row.try_get("started_at").map_err(read_err)?,
        heartbeat_at_ms: row.try_get("heartbeat_at").map_err(read_err)?,
    })
}
