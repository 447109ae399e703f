//! Errors of the report API: request errors carry a stable code and the JSON path of the
//! offending field; everything else wraps the querier's or catalog's error.

use hourglass_types::ErrorKind;

/// Stable error codes of invalid report requests (HTTP 400).
pub mod code {
    /// The body is not a JSON object, or a field has the wrong type or is unknown.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// A metric name is unknown, or a metric is not available in this report.
    pub const UNKNOWN_METRIC: &str = "unknown_metric";
    /// A dimension name is unknown, or a dimension is not available in this report.
    pub const UNKNOWN_DIMENSION: &str = "unknown_dimension";
    /// More than one `time:*` dimension.
    pub const MULTIPLE_TIME_DIMENSIONS: &str = "multiple_time_dimensions";
    /// A filter expression is malformed.
    pub const INVALID_FILTER: &str = "invalid_filter";
    /// A `matches` pattern does not compile.
    pub const INVALID_REGEX: &str = "invalid_regex";
    /// The date range (or a comparison range) is malformed or empty.
    pub const INVALID_DATE_RANGE: &str = "invalid_date_range";
    /// The time zone is not an IANA name.
    pub const INVALID_TIMEZONE: &str = "invalid_timezone";
    /// `order_by` names something the report does not return, or a bad direction.
    pub const INVALID_ORDER_BY: &str = "invalid_order_by";
    /// `having` is malformed.
    pub const INVALID_HAVING: &str = "invalid_having";
    /// `limit` or `offset` is out of range.
    pub const INVALID_PAGINATION: &str = "invalid_pagination";
    /// `compare` is malformed.
    pub const INVALID_COMPARE: &str = "invalid_compare";
}

/// A request the API refuses, with what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RequestError {
    /// One of [`code`].
    pub code: &'static str,
    /// JSON path of the offending part, such as `filters[1][2]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl RequestError {
    /// An error of `code` at `path`.
    pub fn new(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, path: path.into(), message: message.into() }
    }
}

/// Why a report could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Reading events failed.
    #[error("reading events")]
    Query(#[from] hourglass_query::Error),
    /// The catalog failed.
    #[error("catalog")]
    Catalog(#[from] hourglass_catalog::Error),
    /// Events could not be sessionized.
    #[error("sessionizing events")]
    Process(#[from] hourglass_processor::ProcessError),
    /// Arrow failed while reshaping events.
    #[error("arrow")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Events read back lack a column the report needs.
    #[error("events lack column {0}")]
    MissingColumn(&'static str),
    /// Another source of events failed (the rollup job's file reader).
    #[error("reading events")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// How the failure is reported to clients.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Request(_) => ErrorKind::InvalidArgument,
            Self::Query(e) => e.kind(),
            Self::Catalog(e) => e.kind(),
            Self::Process(_) | Self::Arrow(_) | Self::MissingColumn(_) | Self::Source(_) => ErrorKind::Internal,
        }
    }

    /// The stable code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Request(e) => e.code,
            Self::Query(e) => e.code(),
            other => other.kind().code(),
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
