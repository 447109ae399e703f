//! Hourglass object storage: building the object store, a durable local-directory backend, and
//! the Parquet files that hold each partition.
//!
//! Everything Hourglass persists (Parquet files and WAL segments) goes through the
//! [`object_store::ObjectStore`] abstraction, so the same code runs on a local directory in
//! embedded mode and on any S3-compatible service in a cluster.

mod durable_local;
mod parquet_file;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;

pub use durable_local::DurableLocalFileSystem;
pub use parquet_file::{FileStats, ParquetOptions, encode_parquet, sort_for_parquet};

/// Errors from building stores and encoding files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory could not be created or opened.
    #[error("opening the data directory {dir}")]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The object store rejected its configuration.
    #[error("configuring the object store")]
    ObjectStore(#[from] object_store::Error),
    /// Arrow failed while sorting or slicing a batch.
    #[error("preparing a batch for parquet")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The Parquet writer failed.
    #[error("encoding parquet")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A batch lacks a column the file layout needs.
    #[error("batch has no usable column {column}")]
    MissingColumn {
        /// The missing column.
        column: &'static str,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where Hourglass keeps its objects.
#[derive(Debug, Clone)]
pub enum ObjectStoreConfig {
    /// A local directory, with every write synced to disk before it is acknowledged.
    Local {
        /// Root directory of the objects.
        dir: PathBuf,
    },
}

impl ObjectStoreConfig {
    /// Builds the store described by this configuration.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>> {
        match self {
            Self::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(|source| Error::DataDir { dir: dir.clone(), source })?;
                Ok(Arc::new(DurableLocalFileSystem::new(dir)?))
            }
        }
    }
}
