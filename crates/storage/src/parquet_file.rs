//! Encoding one partition's rows as a Parquet file laid out for tenant pruning.
//!
//! Rows are sorted by (tenant_id, timestamp) so that a tenant's rows are contiguous: row-group
//! statistics and the page index then let a querier skip almost everything that belongs to
//! other tenants sharing the file.

use arrow::array::{Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use bytes::Bytes;
use hourglass_types::FileStats;
use hourglass_types::schema::col;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::{Error, Result};

/// Columns written without statistics: free text, or values no query prunes on.
const UNPRUNED_COLUMNS: &[&str] = &[
    col::EVENT_ID,
    col::URL,
    col::REFERRER,
    col::TITLE,
    col::USER_AGENT,
    col::CLIENT_ID,
    col::USER_ID,
    col::IP_HASH,
    col::IP_HASH_PREV,
    // Rollups' visitor sets and sketches: opaque bytes.
    "visitors",
    "visitors_hll",
    "sessions_hll",
];

/// Columns whose values are (nearly) all distinct, so dictionary encoding only costs.
const UNIQUE_COLUMNS: &[&str] = &[col::EVENT_ID];

/// Tunables of the Parquet files Hourglass writes.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Rows per row group. Smaller groups prune more finely but cost more metadata.
    pub row_group_rows: usize,
    /// Rows per data page, the unit the page index prunes.
    pub page_rows: usize,
    /// zstd compression level.
    pub zstd_level: i32,
    /// Whether pages are compressed at all (rollups are read far more often than written, and
    /// their visitor ids do not compress).
    pub compress: bool,
    /// Most bytes of distinct values a column's dictionary collects in a row group before the
    /// column falls back to plain encoding: what each column's encoder may hold in memory.
    pub dictionary_page_bytes: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        // Level 1: persisting competes with ingest for CPU, and compaction rewrites these files.
        Self {
            row_group_rows: 128 * 1024,
            page_rows: 8 * 1024,
            zstd_level: 1,
            compress: true,
            dictionary_page_bytes: 1024 * 1024,
        }
    }
}

fn tenant_column(batch: &RecordBatch) -> Result<&StringArray> {
    batch
        .column_by_name(col::TENANT_ID)
        .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        .ok_or(Error::MissingColumn { column: col::TENANT_ID })
}

fn time_column(batch: &RecordBatch) -> Result<&TimestampMillisecondArray> {
    batch
        .column_by_name(col::TIMESTAMP)
        .and_then(|a| a.as_any().downcast_ref::<TimestampMillisecondArray>())
        .ok_or(Error::MissingColumn { column: col::TIMESTAMP })
}

/// Sorts `batch` by (tenant_id, timestamp) and computes its [`FileStats`]; `None` when empty.
pub fn sort_for_parquet(batch: &RecordBatch) -> Result<Option<(RecordBatch, FileStats)>> {
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let tenant = tenant_column(batch)?;
    let time = time_column(batch)?;
    // Sorting by a string column row by row is slow; rank the few distinct tenants once and
    // sort integer keys instead.
    let mut names: Vec<&str> = tenant.iter().flatten().collect();
    names.sort_unstable();
    names.dedup();
    let rank: std::collections::HashMap<&str, u32> = names.iter().enumerate().map(|(i, n)| (*n, i as u32)).collect();
    let mut keys: Vec<(u32, i64, u32)> = (0..batch.num_rows())
        .map(|i| {
            let t = if tenant.is_valid(i) { rank.get(tenant.value(i)).copied().unwrap_or(u32::MAX) } else { u32::MAX };
            (t, time.value(i), i as u32)
        })
        .collect();
    keys.sort_unstable();
    let indices = UInt32Array::from_iter_values(keys.into_iter().map(|(_, _, i)| i));
    let sorted = take_record_batch(batch, &indices)?;
    let tenant = tenant_column(&sorted)?;
    let time = time_column(&sorted)?;
    let last = sorted.num_rows() - 1;
    let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
    for t in time.values().iter() {
        min_time = min_time.min(*t);
        max_time = max_time.max(*t);
    }
    let stats = FileStats {
        min_tenant: tenant.value(0).to_string(),
        max_tenant: tenant.value(last).to_string(),
        min_time_ms: min_time,
        max_time_ms: max_time,
        rows: sorted.num_rows() as u64,
    };
    Ok(Some((sorted, stats)))
}

/// Encodes a batch already sorted by [`sort_for_parquet`] as a Parquet file.
pub fn encode_parquet(sorted: &RecordBatch, options: &ParquetOptions) -> Result<Bytes> {
    let schema = sorted.schema();
    let props = writer_properties(&schema, options)?;
    let mut buffer = Vec::with_capacity(sorted.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, Some(props))?;
    writer.write(sorted)?;
    writer.close()?;
    Ok(Bytes::from(buffer))
}

/// How every partition file is written: sorted by (tenant_id, timestamp), with page
/// statistics where queries prune, compressed as `options` say. Also for writers that stream
/// rows already in that order.
pub fn writer_properties(schema: &arrow::datatypes::Schema, options: &ParquetOptions) -> Result<WriterProperties> {
    let tenant_idx = schema.index_of(col::TENANT_ID).map_err(|_| Error::MissingColumn { column: col::TENANT_ID })?;
    let time_idx = schema.index_of(col::TIMESTAMP).map_err(|_| Error::MissingColumn { column: col::TIMESTAMP })?;
    let sorting = vec![
        SortingColumn { column_idx: tenant_idx as i32, descending: false, nulls_first: false },
        SortingColumn { column_idx: time_idx as i32, descending: false, nulls_first: false },
    ];
    let compression = if options.compress {
        Compression::ZSTD(ZstdLevel::try_new(options.zstd_level)?)
    } else {
        Compression::UNCOMPRESSED
    };
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_data_page_row_count_limit(options.page_rows.max(1))
        .set_dictionary_page_size_limit(options.dictionary_page_bytes.max(1024))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(sorting));
    // Long free-text and unique columns are never pruned on: their min/max statistics cost
    // CPU at every write and bytes in every footer, and unique values defeat dictionaries.
    for name in UNPRUNED_COLUMNS {
        let path = ColumnPath::from(*name);
        builder = builder.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
        if UNIQUE_COLUMNS.contains(name) {
            builder = builder.set_column_dictionary_enabled(path, false);
        }
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn batch(tenants: &[&str], times: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(col::TENANT_ID, DataType::Utf8, false),
            Field::new(col::TIMESTAMP, hourglass_types::schema::timestamp_type(), false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(tenants.to_vec())),
                Arc::new(TimestampMillisecondArray::from(times.to_vec()).with_timezone("UTC")),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn sorts_by_tenant_then_time_and_reports_ranges() {
        let input = batch(&["b", "a", "b", "a"], &[5, 9, 1, 3]);
        let (sorted, stats) = sort_for_parquet(&input).expect("sort").expect("rows");
        assert_eq!(sorted, batch(&["a", "a", "b", "b"], &[3, 9, 1, 5]));
        assert_eq!(
            stats,
            FileStats { min_tenant: "a".into(), max_tenant: "b".into(), min_time_ms: 1, max_time_ms: 9, rows: 4 }
        );
        assert!(sort_for_parquet(&batch(&[], &[])).expect("empty").is_none());
    }

    #[test]
    fn parquet_round_trips_with_page_index() {
        let (sorted, _) = sort_for_parquet(&batch(&["a", "b"], &[1, 2])).expect("sort").expect("rows");
        let bytes = encode_parquet(&sorted, &ParquetOptions::default()).expect("encode");
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            bytes,
            parquet::arrow::arrow_reader::ArrowReaderOptions::new()
                .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required),
        )
        .expect("reader");
        let meta = builder.metadata().clone();
        assert!(meta.column_index().is_some(), "page index must be written");
        let batches: Vec<_> = builder.build().expect("build").collect::<Result<_, _>>().expect("read");
        assert_eq!(batches, vec![sorted]);
    }
}
