//! Merging a settled day's hours into one object per (table, day, shard).
//!
//! An hour stays the unit of everything else: rollup staleness, a backfill's swap, retention,
//! the merge of late files. So the catalog keeps one file per hour, and the hours of a day
//! object differ only in where their rows lie: each hour is written as row groups of its own,
//! and its file names the byte range they span (a [`Segment`]). Readers select the row groups
//! that start in the range, as DataFusion does for a scan's byte range. Queries over a month
//! then open 30 objects per shard rather than 720, and read each footer once.
//!
//! A day is merged once it ended a while ago, every hour of it is down to one file (the hour's
//! own compaction ran), and its files are small together: at the design's volumes an hour is
//! already a large object, and merging those gains nothing. An hour that changes later (late
//! events, a backfill, retention) leaves the day object for a file of its own; the day is
//! merged again once it is whole again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use hourglass_catalog::{FileRecord, NewFile, Segment};
use hourglass_storage::{ParquetOptions, writer_properties};
use hourglass_types::PartitionKey;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::async_writer::AsyncArrowWriter;

use crate::compactor::{conform, merged_schema};
use crate::merge_stream::UPLOAD_PART_BYTES;
use crate::objects::{StoredFile, delete_quietly, open_file};
use crate::{Error, Result};

/// Rows decoded from an hour at a time while it is copied.
const COPY_BATCH_ROWS: usize = 8192;

/// One day of one shard to merge: a file per hour, oldest hour first.
#[derive(Debug, Clone)]
pub(crate) struct DayToMerge {
    /// The table, the day's first hour, and the shard; names the day object.
    pub key: PartitionKey,
    /// The hours' files.
    pub hours: Vec<FileRecord>,
}

/// The days of one table's `files` to merge now: days that ended before `settled_before_hour`,
/// each hour with one file, spread over more than one object, of at most `max_bytes` together.
pub(crate) fn days_to_merge(files: &[FileRecord], settled_before_hour: i64, max_bytes: u64) -> Vec<DayToMerge> {
    let mut days: BTreeMap<(i64, u32), Vec<&FileRecord>> = BTreeMap::new();
    for f in files {
        let day = f.file.hour - f.file.hour.rem_euclid(24);
        if day + 24 <= settled_before_hour {
            days.entry((day, f.file.shard)).or_default().push(f);
        }
    }
    let mut out = Vec::new();
    for ((day, shard), mut hours) in days {
        hours.sort_by_key(|f| (f.file.hour, f.id));
        let one_per_hour = hours.windows(2).all(|w| w[0].file.hour != w[1].file.hour);
        let objects: BTreeSet<&str> = hours.iter().map(|f| f.file.path.as_str()).collect();
        let bytes: u64 = hours.iter().map(|f| f.file.bytes).sum();
        if !one_per_hour || objects.len() < 2 || bytes > max_bytes || hours.iter().any(|f| f.file.rows == 0) {
            continue;
        }
        let table = hours[0].file.table;
        out.push(DayToMerge {
            key: PartitionKey { table, hour: day, shard },
            hours: hours.into_iter().cloned().collect(),
        });
    }
    out
}

/// Writes `day`'s hours into one new object, hour after hour, each ending its own row groups;
/// returns one file per hour, each the segment of the object that holds its rows.
pub(crate) async fn write_day(
    store: &Arc<dyn ObjectStore>,
    day: &DayToMerge,
    table_schema: &SchemaRef,
    parquet: &ParquetOptions,
) -> Result<Vec<NewFile>> {
    let mut streams = Vec::with_capacity(day.hours.len());
    for f in &day.hours {
        streams.push(open_file(store, &f.file, COPY_BATCH_ROWS, None).await?);
    }
    let schemas: Vec<SchemaRef> = streams.iter().map(|s| Arc::clone(s.schema())).collect();
    let schema = merged_schema(table_schema, &schemas);
    let generation = day.hours.iter().map(|f| f.file.generation).max().unwrap_or(1);
    let path = day.key.file_key(generation, &uuid::Uuid::new_v4().to_string());
    let object = Path::from(path.as_str());
    let props = writer_properties(&schema, parquet)?;
    let sink = BufWriter::with_capacity(Arc::clone(store), object.clone(), UPLOAD_PART_BYTES).with_max_concurrency(1);
    let mut writer = AsyncArrowWriter::try_new(sink, Arc::clone(&schema), Some(props))
        .map_err(|source| Error::WriteParquet { path: path.clone(), source })?;
    let mut ranges = Vec::with_capacity(streams.len());
    let mut copied = Ok(());
    for (f, mut stream) in day.hours.iter().zip(streams) {
        let start = writer.bytes_written() as u64;
        copied = copy_hour(&mut writer, &mut stream, &schema, f, &path).await;
        if copied.is_err() {
            break;
        }
        ranges.push((start, writer.bytes_written() as u64));
    }
    if let Err(e) = copied {
        drop(writer);
        delete_quietly(store.as_ref(), &path).await;
        return Err(e);
    }
    if let Err(source) = writer.close().await {
        delete_quietly(store.as_ref(), &path).await;
        return Err(Error::WriteParquet { path, source });
    }
    let object_bytes = store.head(&object).await.map_err(|source| Error::Object { path: path.clone(), source })?.size;
    Ok(day
        .hours
        .iter()
        .zip(ranges)
        .map(|(f, (start, end))| NewFile {
            path: path.clone(),
            bytes: end - start,
            segment: Some(Segment { start, end, object_bytes }),
            ..f.file.clone()
        })
        .collect())
}

/// Copies one hour's rows and ends its row group, so that no row group holds two hours.
async fn copy_hour(
    writer: &mut AsyncArrowWriter<BufWriter>,
    stream: &mut ParquetRecordBatchStream<StoredFile>,
    schema: &SchemaRef,
    from: &FileRecord,
    to: &str,
) -> Result<()> {
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|source| Error::ReadParquet { path: from.file.path.clone(), source })?;
        rows += batch.num_rows() as u64;
        let batch = conform(&batch, schema)?;
        writer.write(&batch).await.map_err(|source| Error::WriteParquet { path: to.to_string(), source })?;
    }
    // The catalog's statistics of the hour are carried over: the rows must be exactly those.
    if rows != from.file.rows {
        return Err(Error::RowCount { path: from.file.path.clone(), found: rows, recorded: from.file.rows });
    }
    writer.flush().await.map_err(|source| Error::WriteParquet { path: to.to_string(), source })
}
