//! The gateway's Prometheus metrics.

use hourglass_types::metrics::Counter;

/// HTTP requests answered with an error status.
pub static HTTP_ERRORS: Counter =
    Counter::new("hourglass_http_errors_total", "HTTP requests answered with a 4xx or 5xx status.");

/// Appends every gateway metric in Prometheus text format.
pub fn render(out: &mut String) {
    HTTP_ERRORS.render(out);
}
