//! Merging a partition's files into one as a stream.
//!
//! Every partition file is sorted by (tenant_id, timestamp), so a k-way merge of the files in
//! that order yields the merged file's rows already sorted: the merge holds one row group and
//! one batch per input, and the writer one output row group, whatever the partition's size.
//! Copies of an event (the same tenant and `event_id`) are dropped as the rows go by; since
//! rows come tenant by tenant, the ids remembered are only the current tenant's.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use futures::StreamExt;
use hourglass_catalog::{FileRecord, NewFile};
use hourglass_storage::{FileStats, ParquetOptions, writer_properties};
use hourglass_types::PartitionKey;
use hourglass_types::schema::col;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::async_writer::AsyncArrowWriter;

use crate::compactor::{conform, merged_schema};
use crate::dedupe::SeenEvents;
use crate::objects::{StoredFile, Upload, delete_quietly, open_file};
use crate::{Error, Result};

/// Rows decoded from an input at a time: small, so that k inputs hold little.
const INPUT_BATCH_ROWS: usize = 1024;

/// Bytes of each part the merged file is uploaded in: the smallest S3 accepts. The writer
/// holds the part it fills and the one being uploaded.
pub(crate) const UPLOAD_PART_BYTES: usize = 5 * 1024 * 1024;

/// How a streaming merge spends memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MergeShape {
    /// Bytes of decoded rows the merge may hold: the inputs' current batches, the batches
    /// pending rows point into, and the batch being written.
    pub batch_bytes: u64,
    /// Bytes the writer may hold: one output row group.
    pub output_bytes: u64,
    /// Most rows per output row group.
    pub max_row_group_rows: usize,
}

impl MergeShape {
    /// Rows per written batch and per output row group, for rows of `row_bytes` decoded
    /// bytes each, from `inputs` inputs.
    fn sizes(&self, row_bytes: u64, inputs: usize) -> (usize, usize) {
        let row_bytes = row_bytes.max(1);
        // Measured: an input holds about three times its decoded batch (page buffers and
        // dictionaries as it decodes, and the batch pending rows still point into); a written
        // batch is built, filtered and encoded, about four times its rows; the writer holds
        // its encoded row group and the column encoders' state, about twice its rows.
        let held_by_inputs = 3 * (inputs * INPUT_BATCH_ROWS) as u64 * row_bytes;
        let left = self.batch_bytes.saturating_sub(held_by_inputs);
        let out_rows = (left / (4 * row_bytes)).clamp(128, 8192) as usize;
        let group_rows =
            (self.output_bytes / (2 * row_bytes)).clamp(1024, self.max_row_group_rows.max(1024) as u64) as usize;
        (out_rows, group_rows)
    }
}

/// A merged file and what the merge dropped.
#[derive(Debug)]
pub(crate) struct Merged {
    /// The file to record; `None` when the inputs held no rows.
    pub file: Option<NewFile>,
    /// Rows read.
    pub rows_in: u64,
    /// Copies of events dropped.
    pub duplicates: usize,
}

/// One input: its stream and the batch being read.
struct Cursor {
    stream: ParquetRecordBatchStream<StoredFile>,
    path: String,
    batch: RecordBatch,
    tenants: StringArray,
    times: TimestampMillisecondArray,
    row: usize,
    /// Index of `batch` among the batches the pending output rows point into.
    slot: usize,
    done: bool,
}

impl Cursor {
    /// Loads the next non-empty batch; false at the end of the input.
    async fn advance(&mut self, schema: &SchemaRef) -> Result<bool> {
        while let Some(next) = self.stream.next().await {
            let batch = next.map_err(|source| Error::ReadParquet { path: self.path.clone(), source })?;
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = conform(&batch, schema)?;
            self.tenants = batch
                .column_by_name(col::TENANT_ID)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or(Error::Shape("tenant_id as Utf8"))?
                .clone();
            self.times = batch
                .column_by_name(col::TIMESTAMP)
                .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
                .ok_or(Error::Shape("timestamp as milliseconds"))?
                .clone();
            self.batch = batch;
            self.row = 0;
            return Ok(true);
        }
        self.done = true;
        Ok(false)
    }

    /// The sort key of the current row; a missing tenant sorts last, as files are written.
    fn key(&self) -> (Option<&str>, i64) {
        let tenant = self.tenants.is_valid(self.row).then(|| self.tenants.value(self.row));
        (tenant, self.times.value(self.row))
    }
}

/// Whether key `a` sorts before key `b` (tenant first, a missing tenant last, then time).
fn before(a: (Option<&str>, i64), b: (Option<&str>, i64)) -> bool {
    match (a.0, b.0) {
        (Some(x), Some(y)) if x != y => x < y,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        _ => a.1 < b.1,
    }
}

/// The running statistics of the rows written.
#[derive(Default)]
struct Stats {
    min_tenant: Option<String>,
    max_tenant: Option<String>,
    min_time_ms: i64,
    max_time_ms: i64,
    rows: u64,
}

impl Stats {
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let tenants = batch
            .column_by_name(col::TENANT_ID)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or(Error::Shape("tenant_id"))?;
        let times = batch
            .column_by_name(col::TIMESTAMP)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or(Error::Shape("timestamp"))?;
        if self.rows == 0 {
            self.min_tenant = Some(tenants.value(0).to_string());
            (self.min_time_ms, self.max_time_ms) = (i64::MAX, i64::MIN);
        }
        self.max_tenant = Some(tenants.value(batch.num_rows() - 1).to_string());
        for t in times.values().iter() {
            self.min_time_ms = self.min_time_ms.min(*t);
            self.max_time_ms = self.max_time_ms.max(*t);
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

/// Merges `inputs` (files of partition `key`) into one new object of `generation`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn merge_files(
    store: &Arc<dyn ObjectStore>,
    key: PartitionKey,
    generation: u64,
    inputs: &[FileRecord],
    table_schema: &SchemaRef,
    parquet: &ParquetOptions,
    shape: MergeShape,
    processor_version: Option<i32>,
) -> Result<Merged> {
    let mut opened = Vec::with_capacity(inputs.len());
    for f in inputs {
        let stream = open_file(store, &f.file, INPUT_BATCH_ROWS, None).await?;
        let schema = Arc::clone(stream.schema());
        opened.push((f.file.path.clone(), schema, stream));
    }
    let schemas: Vec<SchemaRef> = opened.iter().map(|(_, s, _)| Arc::clone(s)).collect();
    let schema = merged_schema(table_schema, &schemas);
    let empty = RecordBatch::new_empty(Arc::clone(&schema));
    let mut cursors = Vec::with_capacity(opened.len());
    for (path, _, stream) in opened {
        let mut cursor = Cursor {
            stream,
            path,
            batch: empty.clone(),
            tenants: StringArray::from(Vec::<&str>::new()),
            times: TimestampMillisecondArray::from(Vec::<i64>::new()),
            row: 0,
            slot: 0,
            done: false,
        };
        cursor.advance(&schema).await?;
        cursors.push(cursor);
    }

    // The first batches tell how large a decoded row is.
    let row_bytes = cursors
        .iter()
        .filter(|c| c.batch.num_rows() > 0)
        .map(|c| (c.batch.get_array_memory_size() / c.batch.num_rows()) as u64)
        .max()
        .unwrap_or(1);
    let (out_rows, row_group_rows) = shape.sizes(row_bytes, cursors.len());
    // Each column's dictionary encoder holds up to its dictionary's bytes beside the row group.
    let dictionary_page_bytes = (shape.output_bytes as usize / (4 * schema.fields().len().max(1)))
        .clamp(16 * 1024, parquet.dictionary_page_bytes);
    let options = ParquetOptions { row_group_rows, dictionary_page_bytes, ..parquet.clone() };
    let props = writer_properties(&schema, &options)?;
    let Upload { path, writer } = Upload::start(store, key, generation, &schema, props)?;
    let mut merge =
        Merge { writer, dedupe: SeenEvents::tenant_by_tenant(), stats: Stats::default(), duplicates: 0, path };
    let outcome = merge.run(&mut cursors, &schema, out_rows).await;
    let Merge { writer, stats, duplicates, path, .. } = merge;
    let (rows_in, bytes) = Upload { path: path.clone(), writer }.finish(store.as_ref(), outcome).await?;
    let (Some(min_tenant), Some(max_tenant)) = (stats.min_tenant, stats.max_tenant) else {
        delete_quietly(store.as_ref(), &path).await;
        return Ok(Merged { file: None, rows_in, duplicates });
    };
    let stats = FileStats {
        min_tenant,
        max_tenant,
        min_time_ms: stats.min_time_ms,
        max_time_ms: stats.max_time_ms,
        rows: stats.rows,
    };
    let file = NewFile::new(key, generation, path, bytes, stats, processor_version);
    Ok(Merged { file: Some(file), rows_in, duplicates })
}

/// The output side of a merge.
struct Merge {
    writer: AsyncArrowWriter<BufWriter>,
    dedupe: SeenEvents,
    stats: Stats,
    duplicates: usize,
    path: String,
}

impl Merge {
    /// Merges the cursors to the end; returns the rows read.
    async fn run(&mut self, cursors: &mut [Cursor], schema: &SchemaRef, batch_rows: usize) -> Result<u64> {
        let mut rows_in = 0u64;
        // Batches the pending rows point into, by slot; each cursor's current batch is one.
        let mut slots: Vec<RecordBatch> = Vec::new();
        for cursor in cursors.iter_mut() {
            cursor.slot = slots.len();
            slots.push(cursor.batch.clone());
        }
        let mut pending: Vec<(usize, usize)> = Vec::with_capacity(batch_rows);
        loop {
            let mut best: Option<usize> = None;
            for (i, cursor) in cursors.iter().enumerate() {
                if cursor.done {
                    continue;
                }
                if best.is_none_or(|b| before(cursor.key(), cursors[b].key())) {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            let cursor = &mut cursors[i];
            pending.push((cursor.slot, cursor.row));
            rows_in += 1;
            cursor.row += 1;
            if cursor.row == cursor.batch.num_rows() && cursor.advance(schema).await? {
                cursor.slot = slots.len();
                slots.push(cursor.batch.clone());
            }
            if pending.len() >= batch_rows {
                self.write(&slots, &pending).await?;
                pending.clear();
                // Only the cursors' current batches can be pointed into from now on.
                slots.clear();
                for cursor in cursors.iter_mut().filter(|c| !c.done) {
                    cursor.slot = slots.len();
                    slots.push(cursor.batch.clone());
                }
            }
        }
        if !pending.is_empty() {
            self.write(&slots, &pending).await?;
        }
        Ok(rows_in)
    }

    async fn write(&mut self, slots: &[RecordBatch], rows: &[(usize, usize)]) -> Result<()> {
        let refs: Vec<&RecordBatch> = slots.iter().collect();
        let merged = interleave_record_batch(&refs, rows)?;
        let (unique, dropped) = self.dedupe.keep_first(merged)?;
        self.duplicates += dropped;
        self.stats.add(&unique)?;
        self.writer.write(&unique).await.map_err(|source| Error::WriteParquet { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_tenant_then_time_with_missing_tenants_last() {
        assert!(before((Some("a"), 9), (Some("b"), 1)));
        assert!(before((Some("a"), 1), (Some("a"), 2)));
        assert!(!before((Some("a"), 2), (Some("a"), 2)), "ties keep the first input first");
        assert!(before((Some("z"), 9), (None, 0)));
        assert!(!before((None, 0), (Some("a"), 9)));
    }
}
