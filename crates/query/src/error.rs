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
    /// The query ran past its time limit.
    #[error("query did not finish within {seconds} s; narrow the time range or aggregate")]
    Timeout {
        /// The limit in seconds.
        seconds: u64,
    },
    /// The query task was cancelled or panicked.
    #[error("query task ended unexpectedly: {0}")]
    Task(String),
}

impl Error {
    /// How the failure should be reported to clients.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotReadOnly(_) => ErrorKind::PermissionDenied,
            Self::ResultTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Self::Timeout { .. } => ErrorKind::QueryTimeout,
            Self::Task(_) => ErrorKind::Internal,
            Self::DataFusion(e) => classify(e),
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
