//! Hourglass ingester: validates events, commits them to the WAL (group commit), buffers them
//! as Arrow batches that queries can read at once, and persists the buffer as hourly Parquet
//! files recorded in the catalog.
//!
//! The path of one request: [`parse`] splits and validates the body; [`batch`] builds the
//! `raw_events` batch and its WAL entry; the processor derives the `events` batch; the
//! committer de-duplicates by `(tenant, event_id)`, writes one WAL segment for every request
//! waiting (so concurrent requests share one sync), inserts into the [`buffer`] and answers.
//! The persister turns the buffer into Parquet on size and age thresholds and at shutdown.

pub mod arrow_input;
pub mod batch;
pub mod buffer;
mod committer;
mod dedupe;
pub mod geoip;
mod ingester;
#[cfg(test)]
mod ingester_tests;
pub mod limits;
pub mod measurement_protocol;
pub mod metrics;
pub mod parse;
mod persister;
mod replay;

use hourglass_types::ErrorKind;

pub use buffer::ChunkSnapshot;
pub use geoip::{GeoIp, GeoIpError};
pub use ingester::{IngestOutcome, Ingester, IngesterConfig};
pub use limits::IngestLimits;
pub use parse::EventError;
pub use replay::ReplayReport;

/// Errors from ingesting and persisting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body as a whole cannot be read.
    #[error("{message}")]
    BadBody {
        /// What is wrong with it.
        message: String,
    },
    /// The request exceeds a size limit.
    #[error("{message}")]
    TooLarge {
        /// Which limit and by how much.
        message: String,
    },
    /// The buffer is full until a persist completes.
    #[error("ingest buffer holds {buffered} bytes, over its limit of {limit}; retry shortly")]
    Overloaded {
        /// Bytes buffered now.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The ingester is shutting down or stopped.
    #[error("ingester is shutting down")]
    ShuttingDown,
    /// The WAL could not be written or read.
    #[error("write-ahead log")]
    Wal(#[from] hourglass_wal::Error),
    /// A group commit failed; every request in the group gets this.
    #[error("write-ahead log write failed: {message}")]
    WalWrite {
        /// The underlying failure.
        message: String,
    },
    /// The catalog failed.
    #[error("catalog")]
    Catalog(#[from] hourglass_catalog::Error),
    /// A Parquet file could not be built.
    #[error("building a parquet file")]
    Storage(#[from] hourglass_storage::Error),
    /// A Parquet file could not be stored.
    #[error("storing {path}")]
    Put {
        /// Object key.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// Arrow failed while building or slicing batches.
    #[error("arrow")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The processor failed.
    #[error("processing raw events")]
    Process(#[from] hourglass_processor::ProcessError),
    /// A WAL entry does not hold a `raw_events` batch.
    #[error("WAL entry does not hold a raw_events batch")]
    WalSchema,
    /// A WAL segment holds entries this version cannot read.
    #[error(
        "WAL segment {segment} holds events in a format this version cannot read; run the version that wrote it until it has persisted them"
    )]
    WalIncompatible {
        /// The segment.
        segment: u64,
    },
    /// A batch lacks a required column.
    #[error("batch has no usable column {column}")]
    MissingColumn {
        /// The column.
        column: &'static str,
    },
}

impl Error {
    /// How the failure should be reported to clients.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BadBody { .. } => ErrorKind::InvalidArgument,
            Self::TooLarge { .. } => ErrorKind::PayloadTooLarge,
            Self::Overloaded { .. } => ErrorKind::ResourceExhausted,
            Self::Wal(e) => e.kind(),
            Self::ShuttingDown | Self::WalWrite { .. } | Self::Put { .. } => ErrorKind::Unavailable,
            Self::Catalog(e) => e.kind(),
            Self::Storage(_)
            | Self::Arrow(_)
            | Self::Process(_)
            | Self::WalSchema
            | Self::WalIncompatible { .. }
            | Self::MissingColumn { .. } => ErrorKind::Internal,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
