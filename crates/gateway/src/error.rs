//! The one place where error kinds become HTTP statuses and JSON error bodies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hourglass_types::ErrorKind;
use hourglass_types::error::display_chain;

/// Seconds a client should wait before retrying a 429 or 503.
const RETRY_AFTER_SECS: u32 = 1;

/// An error answered to an HTTP client: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    code: &'static str,
    message: String,
    path: Option<String>,
}

impl ApiError {
    /// An error of `kind` with a message for the client.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, code: kind.code(), message: message.into(), path: None }
    }

    /// The same error pointing at a field of the request body, such as `filters[1][2]`.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The same error with a more specific code than its kind's, for example to tell the
    /// query limits apart.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// The status code for a kind.
    pub fn status(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::QueryTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::LimitExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::CONFLICT),
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<hourglass_ingest::Error> for ApiError {
    fn from(e: hourglass_ingest::Error) -> Self {
        Self::new(e.kind(), display_chain(&e))
    }
}

impl From<hourglass_query::Error> for ApiError {
    fn from(e: hourglass_query::Error) -> Self {
        Self::new(e.kind(), display_chain(&e)).with_code(e.code())
    }
}

impl From<hourglass_report::Error> for ApiError {
    fn from(e: hourglass_report::Error) -> Self {
        match e {
            hourglass_report::Error::Request(r) => {
                Self::new(ErrorKind::InvalidArgument, r.message).with_code(r.code).with_path(r.path)
            }
            hourglass_report::Error::Query(q) => Self::from(q),
            other => Self::new(other.kind(), display_chain(&other)).with_code(other.code()),
        }
    }
}

impl From<hourglass_catalog::Error> for ApiError {
    fn from(e: hourglass_catalog::Error) -> Self {
        Self::new(e.kind(), display_chain(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = Self::status(self.kind);
        let message = if status.is_server_error() && self.kind != ErrorKind::QueryTimeout {
            // The detail (paths, driver messages) goes to the log, not to the client.
            tracing::warn!(status = status.as_u16(), error = %self.message, "request failed");
            match self.kind {
                ErrorKind::Unavailable => "temporarily unavailable; retry shortly".to_string(),
                _ => "internal error; the server log has the details".to_string(),
            }
        } else {
            self.message
        };
        crate::metrics::HTTP_ERRORS.inc();
        let mut body = serde_json::json!({"error": {"code": self.code, "message": message}});
        if let Some(path) = self.path {
            body["error"]["path"] = serde_json::Value::String(path);
        }
        let mut response = (status, axum::Json(body)).into_response();
        if self.kind.is_retryable() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
