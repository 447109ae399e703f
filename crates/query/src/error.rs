//! Query errors and their classification.

use datafusion::error::DataFusionError;
use hourglass_types::ErrorKind;

/// Errors from planning and running queries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// DataFusion refused or failed the query.
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    /// The statement is not a read-only query.
    #[error("only read-only queries are allowed: {0}")]
    NotReadOnly(String),
    /// The result is larger than the configured limit.
    #[error("query result exceeds {limit} bytes; add a LIMIT or aggregate")]
    ResultTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The result has more rows than the configured limit.
    #[error("query result has more than {limit} rows; add a LIMIT or aggregate")]
    TooManyRows {
        /// The configured limit.
        limit: usize,
    },
    /// The query ran past its time limit.
    #[error("query did not finish within {seconds} s; narrow the time range or aggregate")]
    Timeout {
        /// The limit in seconds.
        seconds: u64,
    },
    /// The query needed more memory than one query may use, in an operator that cannot spill.
    #[error(
        "query needs more than its memory limit of {limit} bytes; narrow the time range, aggregate more, or group by fewer distinct values"
    )]
    MemoryLimit {
        /// The per-query limit.
        limit: usize,
    },
    /// Running queries hold the querier's memory; this one could not get its share.
    #[error("the querier's memory is taken by running queries; retry shortly")]
    QuerierBusy,
    /// The tenant has too many queries running and waiting.
    #[error("{0}")]
    TooManyQueries(String),
    /// The admin or the client cancelled the query.
    #[error("query cancelled {0}")]
    Cancelled(&'static str),
    /// The query task was cancelled or panicked.
    #[error("query task ended unexpectedly: {0}")]
    Task(String),
}

impl Error {
    /// How the failure should be reported to clients.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotReadOnly(_) => ErrorKind::PermissionDenied,
            Self::ResultTooLarge { .. } | Self::TooManyRows { .. } => ErrorKind::PayloadTooLarge,
            Self::Timeout { .. } => ErrorKind::QueryTimeout,
            Self::MemoryLimit { .. } => ErrorKind::LimitExceeded,
            Self::QuerierBusy | Self::TooManyQueries(_) => ErrorKind::ResourceExhausted,
            Self::Cancelled(_) => ErrorKind::Cancelled,
            Self::Task(_) => ErrorKind::Internal,
            Self::DataFusion(e) => classify(e),
        }
    }

    /// A stable code that tells each limit apart, for JSON error bodies and gRPC metadata.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ResultTooLarge { .. } => "result_too_large",
            Self::TooManyRows { .. } => "too_many_rows",
            Self::MemoryLimit { .. } => "query_memory_limit",
            Self::QuerierBusy => "querier_busy",
            Self::TooManyQueries(_) => "too_many_queries",
            Self::Cancelled(_) => "query_cancelled",
            other => other.kind().code(),
        }
    }
}

fn classify(e: &DataFusionError) -> ErrorKind {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_)
        | DataFusionError::ArrowError(..)
        | DataFusionError::Execution(_) => ErrorKind::InvalidArgument,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourceExhausted,
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) | DataFusionError::External(_) => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
