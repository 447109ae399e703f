//! Reading and deleting the Parquet objects the jobs work on.

use arrow::array::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
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
