//! Reading and deleting the Parquet objects the jobs work on.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use hourglass_catalog::{NewFile, Segment};
use hourglass_storage::{ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_types::PartitionKey;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::properties::WriterProperties;

use crate::merge_stream::UPLOAD_PART_BYTES;
use crate::{Error, Result};

/// A stored Parquet object of known size, read by ranges as a stream needs them.
pub(crate) struct StoredFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn store_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoredFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(store_err) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(store_err) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata =
                ParquetMetaDataReader::new().with_arrow_reader_options(options).load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// The row groups of `segment`: those whose first column chunk starts inside it, the rule
/// DataFusion applies to a scan's byte range, so jobs and queries read the same rows.
pub(crate) fn segment_row_groups(groups: &[RowGroupMetaData], segment: &Segment) -> Vec<usize> {
    groups
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            let first = g.column(0);
            let offset = first.dictionary_page_offset().unwrap_or_else(|| first.data_page_offset());
            u64::try_from(offset).is_ok_and(|o| segment.holds(o))
        })
        .map(|(i, _)| i)
        .collect()
}

/// A stream of the rows of `file`, `batch_rows` at a time: the whole object, or only its
/// segment's row groups; only the `columns` named (those the file has), or all of them.
pub(crate) async fn open_file(
    store: &Arc<dyn ObjectStore>,
    file: &NewFile,
    batch_rows: usize,
    columns: Option<&[&str]>,
) -> Result<ParquetRecordBatchStream<StoredFile>> {
    let path = file.path.as_str();
    let failed = |source| Error::ReadParquet { path: path.to_string(), source };
    let reader = StoredFile { store: Arc::clone(store), path: Path::from(path), size: file.object_bytes() };
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(failed)?.with_batch_size(batch_rows);
    if let Some(segment) = &file.segment {
        let groups = segment_row_groups(builder.metadata().row_groups(), segment);
        builder = builder.with_row_groups(groups);
    }
    if let Some(columns) = columns {
        let roots: Vec<usize> = columns.iter().filter_map(|c| builder.schema().index_of(c).ok()).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    builder.build().map_err(failed)
}

/// Every batch of `file` (its segment only, when it shares a day object).
pub(crate) async fn read_batches(store: &Arc<dyn ObjectStore>, file: &NewFile) -> Result<Vec<RecordBatch>> {
    let stream = open_file(store, file, 8192, None).await?;
    stream.try_collect().await.map_err(|source| Error::ReadParquet { path: file.path.clone(), source })
}

/// A Parquet object being written to the store in parts (the smallest S3 takes, one filling
/// and one uploading); deleted again whenever it is not finished.
pub(crate) struct Upload {
    /// Its key.
    pub path: String,
    /// The writer filling it.
    pub writer: AsyncArrowWriter<BufWriter>,
}

impl Upload {
    /// Starts a new object of `key` and `generation` with rows of `schema`.
    pub(crate) fn start(
        store: &Arc<dyn ObjectStore>,
        key: PartitionKey,
        generation: u64,
        schema: &SchemaRef,
        props: WriterProperties,
    ) -> Result<Self> {
        let path = key.file_key(generation, &uuid::Uuid::new_v4().to_string());
        let sink = BufWriter::with_capacity(Arc::clone(store), Path::from(path.as_str()), UPLOAD_PART_BYTES)
            .with_max_concurrency(1);
        let writer = AsyncArrowWriter::try_new(sink, Arc::clone(schema), Some(props))
            .map_err(|source| Error::WriteParquet { path: path.clone(), source })?;
        Ok(Self { path, writer })
    }

    /// Closes the object after `written` (how filling it went) and returns its size; when
    /// filling, closing or sizing it failed, deletes it and returns the error.
    pub(crate) async fn finish<T>(self, store: &dyn ObjectStore, written: Result<T>) -> Result<(T, u64)> {
        let Self { path, writer } = self;
        let value = match written {
            Ok(value) => value,
            Err(e) => {
                drop(writer);
                delete_quietly(store, &path).await;
                return Err(e);
            }
        };
        if let Err(source) = writer.close().await {
            delete_quietly(store, &path).await;
            return Err(Error::WriteParquet { path, source });
        }
        match store.head(&Path::from(path.as_str())).await {
            Ok(meta) => Ok((value, meta.size)),
            Err(source) => {
                delete_quietly(store, &path).await;
                Err(Error::Object { path, source })
            }
        }
    }
}

/// Deletes an object nothing refers to (one written for a commit that did not happen); a
/// failure only costs space, so it is logged.
pub(crate) async fn delete_quietly(store: &dyn ObjectStore, path: &str) {
    match store.delete(&Path::from(path)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(path, error = %e, "deleting an unreferenced object failed"),
    }
}

/// Sorts `batch` as every file is sorted, writes it as a new object of `key` and
/// `generation`, and returns the file to record; `None` for an empty batch (nothing written).
pub(crate) async fn write_partition_file(
    store: &dyn ObjectStore,
    key: PartitionKey,
    generation: u64,
    batch: &RecordBatch,
    parquet: &ParquetOptions,
    processor_version: Option<i32>,
) -> Result<Option<NewFile>> {
    let Some((sorted, stats)) = sort_for_parquet(batch)? else { return Ok(None) };
    let data = encode_parquet(&sorted, parquet)?;
    drop(sorted);
    let path = key.file_key(generation, &uuid::Uuid::new_v4().to_string());
    let bytes = data.len() as u64;
    store
        .put(&Path::from(path.as_str()), PutPayload::from(data))
        .await
        .map_err(|source| Error::Object { path: path.clone(), source })?;
    Ok(Some(NewFile::new(key, generation, path, bytes, stats, processor_version)))
}
