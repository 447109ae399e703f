//! Hourglass object storage: building the object store, a durable local-directory backend, and
//! the Parquet files that hold each partition.
//!
//! Everything Hourglass persists (Parquet files and WAL segments) goes through the
//! [`object_store::ObjectStore`] abstraction, so the same code runs on a local directory in
//! embedded mode and on any S3-compatible service in a cluster.

pub mod counted;
mod durable_local;
mod parquet_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::memory::InMemory;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

pub use durable_local::DurableLocalFileSystem;
pub use hourglass_types::FileStats;
pub use parquet_file::{ParquetOptions, encode_parquet, sort_for_parquet, writer_properties};

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
    /// An S3-compatible service.
    S3(S3Config),
    /// Process memory: lost at exit. For tests and throwaway demos only.
    Memory,
}

/// How to reach an S3-compatible object store.
///
/// Credentials come from the standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...); the fields here override the matching
/// `AWS_*` variables when set.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// Bucket holding every Hourglass object.
    pub bucket: String,
    /// Endpoint URL of a non-AWS service (MinIO, Garage, moto...); path-style requests are used.
    pub endpoint: Option<String>,
    /// Region; `us-east-1` when neither this nor `AWS_REGION` is set.
    pub region: Option<String>,
    /// Access key id and secret; taken from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` when
    /// `None`.
    pub access_key: Option<(String, String)>,
    /// Whether the store honours `If-None-Match` on PUT. Hourglass's WAL relies on it to refuse
    /// overwriting a segment; a store that ignores it (Garage) must rely on unique ingester ids.
    pub conditional_put: bool,
    /// How long one request may take before it is abandoned.
    pub request_timeout: Duration,
    /// How long retries of one operation may go on before the error is reported. Kept short so
    /// that an unreachable store turns into `503 Retry-After` on ingest rather than a hang.
    pub retry_timeout: Duration,
}

impl S3Config {
    /// A configuration for `bucket` with Hourglass's defaults.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            access_key: None,
            conditional_put: true,
            request_timeout: Duration::from_secs(60),
            retry_timeout: Duration::from_secs(10),
        }
    }

    fn build(&self) -> Result<Arc<dyn ObjectStore>> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok())
            .filter(|e| !e.is_empty());
        let plain_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        if let Some(endpoint) = &endpoint {
            builder =
                builder.with_endpoint(endpoint).with_allow_http(plain_http).with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        } else if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            builder = builder.with_region("us-east-1");
        }
        if let Some((id, secret)) = &self.access_key {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let conditional = if self.conditional_put { S3ConditionalPut::ETagMatch } else { S3ConditionalPut::Disabled };
        let retry = RetryConfig { max_retries: 5, retry_timeout: self.retry_timeout, ..RetryConfig::default() };
        let client = ClientOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(Duration::from_secs(5))
            .with_allow_http(plain_http);
        let store = builder.with_conditional_put(conditional).with_retry(retry).with_client_options(client).build()?;
        Ok(Arc::new(store))
    }
}

impl ObjectStoreConfig {
    /// Builds the store described by this configuration; its requests are counted in
    /// [`counted`]'s metrics.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>> {
        let store: Arc<dyn ObjectStore> = match self {
            Self::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(|source| Error::DataDir { dir: dir.clone(), source })?;
                Arc::new(DurableLocalFileSystem::new(dir)?)
            }
            Self::S3(config) => config.build()?,
            Self::Memory => Arc::new(InMemory::new()),
        };
        Ok(Arc::new(counted::CountedStore(store)))
    }

    /// A short description for logs and `system.nodes`, with no secrets in it.
    pub fn describe(&self) -> String {
        match self {
            Self::Local { dir } => format!("local:{}", dir.display()),
            Self::S3(config) => match &config.endpoint {
                Some(endpoint) => format!("s3://{} at {endpoint}", config.bucket),
                None => format!("s3://{}", config.bucket),
            },
            Self::Memory => "memory".to_string(),
        }
    }
}

/// Checks that the store answers: lists one page under `prefix`. Readiness probes use it.
pub async fn probe(store: &dyn ObjectStore, prefix: &str) -> Result<()> {
    use futures::TryStreamExt;
    let prefix = object_store::path::Path::from(prefix);
    let mut listing = store.list(Some(&prefix));
    listing.try_next().await?;
    Ok(())
}
