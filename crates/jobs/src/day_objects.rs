//! Merging a settled day's hours into one object per (table, day, shard).
//!
//! An hour stays the unit of everything else: rollup staleness, a backfill's swap, retention,
//! the merge of late files. So the catalog keeps one file per hour, and the hours of a day
//! object differ only in where their rows lie: each hour is written as row groups of its own,
//! and its file names the byte range they span (a [`Segment`]). Readers select the row groups
//! that start in the range, as DataFusion does for a scan's byte range. Queries over a month
//! then open 30 objects per shard rather than 720, and read each footer once.
//!
//! A day is merged once it ended a while ago, none of its files changed for as long, every hour
//! of it is down to one file (the hour's own compaction ran), and its files are small together:
//! at the design's volumes an hour is already a large object, and merging those gains nothing.
//! An hour that changes later (late events, a backfill, retention) leaves the day object for a
//! file of its own; the day is merged again once it is quiet again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use hourglass_catalog::{FileRecord, NewFile, Segment};
use hourglass_storage::{ParquetOptions, writer_properties};
use hourglass_types::PartitionKey;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::async_writer::AsyncArrowWriter;

use crate::compactor::{conform, merged_schema};
use crate::objects::{StoredFile, Upload, open_file};
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

/// When a day may merge, and how many at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DayRule {
    /// Days that ended before this hour are settled.
    pub settled_before_hour: i64,
    /// Only days none of whose files was recorded after this time (epoch ms): a day whose
    /// hours keep changing (late events, a retention pass purging hour after hour) is merged
    /// once they stop, not once per change.
    pub quiet_since_ms: i64,
    /// Most bytes of a day's files.
    pub max_bytes: u64,
    /// Most days returned, newest first.
    pub limit: usize,
}

/// The days of one table's `files` to merge now under `rule`: settled and quiet, each hour with
/// one file, spread over more than one object, and small enough.
pub(crate) fn days_to_merge(files: &[FileRecord], rule: DayRule) -> Vec<DayToMerge> {
    let mut days: BTreeMap<(i64, u32), Vec<&FileRecord>> = BTreeMap::new();
    for f in files {
        let day = f.file.hour - f.file.hour.rem_euclid(24);
        if day + 24 <= rule.settled_before_hour {
            days.entry((day, f.file.shard)).or_default().push(f);
        }
    }
    let mut out = Vec::new();
    for ((day, shard), mut hours) in days.into_iter().rev() {
        if out.len() >= rule.limit {
            break;
        }
        hours.sort_by_key(|f| (f.file.hour, f.id));
        let one_per_hour = hours.windows(2).all(|w| w[0].file.hour != w[1].file.hour);
        let objects: BTreeSet<&str> = hours.iter().map(|f| f.file.path.as_str()).collect();
        let bytes: u64 = hours.iter().map(|f| f.file.bytes).sum();
        let quiet = hours.iter().all(|f| f.created_at_ms <= rule.quiet_since_ms);
        let empty = hours.iter().any(|f| f.file.rows == 0);
        if !one_per_hour || objects.len() < 2 || bytes > rule.max_bytes || !quiet || empty {
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
    let mut upload = Upload::start(store, day.key, generation, &schema, writer_properties(&schema, parquet)?)?;
    let mut ranges = Vec::with_capacity(streams.len());
    let mut copied = Ok(());
    for (f, mut stream) in day.hours.iter().zip(streams) {
        let start = upload.writer.bytes_written() as u64;
        copied = copy_hour(&mut upload.writer, &mut stream, &schema, f, &upload.path).await;
        if copied.is_err() {
            break;
        }
        ranges.push((start, upload.writer.bytes_written() as u64));
    }
    let path = upload.path.clone();
    let ((), object_bytes) = upload.finish(store.as_ref(), copied).await?;
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

#[cfg(test)]
mod tests {
    use hourglass_types::TableName;

    use super::*;

    fn file(id: i64, hour: i64, path: &str, created_at_ms: i64) -> FileRecord {
        FileRecord {
            id,
            file: NewFile {
                table: TableName::Events,
                hour,
                shard: 0,
                generation: 1,
                path: path.to_string(),
                min_tenant: "a".into(),
                max_tenant: "b".into(),
                min_time_ms: hour * 3_600_000,
                max_time_ms: hour * 3_600_000 + 1,
                rows: 10,
                bytes: 100,
                segment: None,
                processor_version: Some(4),
                retention_mark: None,
            },
            ingester_id: "i".into(),
            wal_through: 0,
            created_at_ms,
        }
    }

    fn rule() -> DayRule {
        DayRule { settled_before_hour: 10 * 24, quiet_since_ms: 1_000, max_bytes: 1_000, limit: 10 }
    }

    fn days(files: &[FileRecord], rule: DayRule) -> Vec<i64> {
        days_to_merge(files, rule).iter().map(|d| d.key.hour / 24).collect()
    }

    #[test]
    fn settled_quiet_split_small_days_merge_newest_first() {
        let files = [
            file(1, 24, "a", 0),
            file(2, 25, "b", 0),
            file(3, 48, "c", 0),
            file(4, 50, "d", 0),
            // Day 9 is not settled: the rule's bound is the end of day 9.
            file(5, 9 * 24 + 1, "e", 0),
            file(6, 10 * 24 + 1, "f", 0),
            file(7, 10 * 24 + 2, "g", 0),
        ];
        assert_eq!(days(&files, rule()), [2, 1]);
        assert_eq!(days(&files, DayRule { limit: 1, ..rule() }), [2], "newest first");
        assert_eq!(days(&files, DayRule { max_bytes: 199, ..rule() }), Vec::<i64>::new(), "too large");
        let merged = days_to_merge(&files, rule());
        assert_eq!(merged[0].hours.iter().map(|f| f.id).collect::<Vec<_>>(), [3, 4], "oldest hour first");
    }

    #[test]
    fn a_day_still_changing_split_within_an_hour_or_already_one_object_waits() {
        let recent = [file(1, 24, "a", 0), file(2, 25, "b", 1_001)];
        assert!(days(&recent, rule()).is_empty(), "a file recorded after the quiet bound");
        let two_in_an_hour = [file(1, 24, "a", 0), file(2, 24, "b", 0), file(3, 25, "c", 0)];
        assert!(days(&two_in_an_hour, rule()).is_empty(), "the hour's own compaction comes first");
        let one_object = [file(1, 24, "day", 0), file(2, 25, "day", 0)];
        assert!(days(&one_object, rule()).is_empty(), "already merged");
        let empty = [
            file(1, 24, "a", 0),
            FileRecord { file: NewFile { rows: 0, ..file(2, 25, "b", 0).file }, ..file(2, 25, "b", 0) },
        ];
        assert!(days(&empty, rule()).is_empty(), "a day with an empty file keeps its objects");
    }
}
