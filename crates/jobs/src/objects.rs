//! Reading and deleting the Parquet objects the jobs work on.

use arrow::array::RecordBatch;
use bytes::Bytes;
use hourglass_catalog::NewFile;
use hourglass_storage::{ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_types::PartitionKey;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{Error, Result};

/// Every batch of the Parquet object at `path`.
pub(crate) async fn read_batches(store: &dyn ObjectStore, path: &str) -> Result<Vec<RecordBatch>> {
    let object = |source| Error::Object { path: path.to_string(), source };
    let bytes: Bytes = store.get(&Path::from(path)).await.map_err(object)?.bytes().await.map_err(object)?;
    let parquet = |source| Error::ReadParquet { path: path.to_string(), source };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet)?.build().map_err(parquet)?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
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
