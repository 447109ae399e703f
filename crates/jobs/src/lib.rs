//! Hourglass background jobs, run by the compactor role (and by `hourglass serve`).
//!
//! - [`Compactor`]: merges a partition's small Parquet files into one, dropping events stored
//!   twice (the same `event_id` of the same tenant, which a client retry routed to two
//!   ingesters can produce), and swaps the files in the catalog atomically.
//! - Garbage collection, part of each compaction pass: objects the catalog no longer references
//!   are deleted once a grace period has passed, so a query that listed them just before they
//!   were replaced can still read them.
//! - [`Backfiller`]: rebuilds `events` from the raw files for a range, with a chosen processor
//!   version, swapping each partition atomically; jobs are queued in the catalog.
//! - [`Retention`]: removes data older than each tenant's retention of each table, whole
//!   files once every tenant's has passed, else by rewriting files without those tenants.
//! - [`RollupJob`]: materializes the rollups of `sql/rollups/` per closed UTC hour, and again
//!   when late events change an hour's sessions.

mod backfill;
mod compactor;
mod day_objects;
mod dedupe;
mod merge_stream;
mod objects;
mod orphans;
mod retention;
mod rollup;

pub use backfill::{BackfillConfig, BackfillReport, Backfiller};
pub use compactor::{CompactionReport, Compactor, CompactorConfig};
pub use retention::{HourRule, Policies, Retention, RetentionConfig, RetentionReport, TablePolicy};
pub use rollup::{RollupConfig, RollupJob, RollupReport};

/// Errors of a compaction or rollup pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog failed.
    #[error("catalog")]
    Catalog(#[from] hourglass_catalog::Error),
    /// Reading or writing an object failed.
    #[error("object {path}")]
    Object {
        /// The object's key.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A Parquet file could not be read.
    #[error("reading parquet {path}")]
    ReadParquet {
        /// The object's key.
        path: String,
        /// The reader's error.
        source: parquet::errors::ParquetError,
    },
    /// A merged file could not be written.
    #[error("writing parquet {path}")]
    WriteParquet {
        /// The object's key.
        path: String,
        /// The writer's error.
        source: parquet::errors::ParquetError,
    },
    /// Merging batches failed.
    #[error("merging batches")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Encoding the merged file failed.
    #[error("encoding the merged file")]
    Storage(#[from] hourglass_storage::Error),
    /// Rollup SQL failed.
    #[error("running rollup SQL")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Sessionizing a tenant's events failed.
    #[error("sessionizing events")]
    Report(#[source] Box<hourglass_report::Error>),
    /// A column has an unexpected type.
    #[error("unexpected column shape: expected {0}")]
    Shape(&'static str),
    /// The processor refused a batch.
    #[error("processing raw events")]
    Process(#[from] hourglass_processor::ProcessError),
    /// A backfill cannot go on.
    #[error("{0}")]
    Backfill(String),
    /// A file holds another number of rows than the catalog recorded for it.
    #[error("{path} holds {found} rows where the catalog records {recorded}")]
    RowCount {
        /// The object.
        path: String,
        /// Rows read.
        found: u64,
        /// Rows the catalog records.
        recorded: u64,
    },
}

impl Error {
    /// Whether running the same work again would fail the same way (bad data, a version this
    /// build lacks), as opposed to a catalog or store that may answer next time.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Catalog(_) | Self::Object { .. })
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `pass` every `interval` until `stop` resolves, logging what each pass did (when it did
/// anything) or why it failed; a failed pass is tried again at the next tick. A pass still
/// running when `stop` resolves is abandoned: every job commits its work to the catalog in
/// atomic steps, so a stopped pass leaves at most an unreferenced object, as a crash would,
/// and a long backfill does not hold up shutdown.
pub(crate) async fn every<R, F, Fut>(
    what: &str,
    interval: std::time::Duration,
    stop: impl Future<Output = ()>,
    mut pass: F,
) where
    R: std::fmt::Debug + Default + PartialEq,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R>>,
{
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let outcome = tokio::select! {
            _ = &mut stop => return,
            outcome = pass() => outcome,
        };
        match outcome {
            Ok(report) if report != R::default() => tracing::info!(?report, "{what} pass"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %hourglass_types::error::display_chain(&e), "{what} pass failed"),
        }
    }
}
