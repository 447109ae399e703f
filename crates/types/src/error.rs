//! The small set of error kinds every protocol maps to its own status codes.

use std::fmt;

/// How a failure should be reported to a client, whatever the protocol.
///
/// Each crate's error type classifies itself into one of these; HTTP, Flight and the
/// PostgreSQL wire each translate kinds to status codes in exactly one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or asks for something impossible (HTTP 400).
    InvalidArgument,
    /// The caller did not present valid credentials (HTTP 401).
    Unauthenticated,
    /// The credentials are valid but do not allow this action (HTTP 403).
    PermissionDenied,
    /// The named thing does not exist (HTTP 404).
    NotFound,
    /// The thing already exists or the state changed underneath (HTTP 409).
    Conflict,
    /// The request is larger than a configured limit (HTTP 413).
    PayloadTooLarge,
    /// A quota or memory limit is reached; retry later (HTTP 429/503 with Retry-After).
    ResourceExhausted,
    /// A dependency is down or the process is shutting down; retryable (HTTP 503).
    Unavailable,
    /// A query ran past its time limit (HTTP 504).
    QueryTimeout,
    /// A request needs more than one request may use (for example a query's memory limit);
    /// retrying the same request will fail again (HTTP 422).
    LimitExceeded,
    /// Someone stopped the request: the admin, or the client through its protocol's cancel
    /// (HTTP 499, as gRPC gateways map `CANCELLED`).
    Cancelled,
    /// A bug or an unexpected state (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// A stable snake_case code for JSON error bodies.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::QueryTimeout => "query_timeout",
            Self::LimitExceeded => "limit_exceeded",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
        }
    }

    /// Whether a client may retry the same request later and expect success.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::ResourceExhausted | Self::Unavailable)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Formats an error with its whole `source()` chain, `outer: inner: innermost`.
///
/// Error messages in Hourglass do not repeat their source's text, so this is the one place
/// that joins them for logs and responses.
pub fn display_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}
