//! The gateway's Prometheus metrics.

use hourglass_types::metrics::Counter;

/// HTTP requests answered with an error status.
pub static HTTP_ERRORS: Counter =
    Counter::new("hourglass_http_errors_total", "HTTP requests answered with a 4xx or 5xx status.");

/// Forwarded requests a node refused and another was tried for.
pub static FORWARD_RETRIES: Counter = Counter::new(
    "hourglass_gateway_forward_retries_total",
    "Forwarded requests that a node refused and the gateway retried on another node.",
);

/// Appends every gateway metric in Prometheus text format.
pub fn render(out: &mut String) {
    HTTP_ERRORS.render(out);
    FORWARD_RETRIES.render(out);
}
