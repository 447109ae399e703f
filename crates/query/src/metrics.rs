//! The querier's Prometheus metrics.

use hourglass_types::metrics::{Counter, Gauge, Histogram};

/// Query latency, planning to last batch.
pub static QUERY_SECONDS: Histogram = Histogram::new("hourglass_query_seconds", "Time to plan and run one SQL query.");
/// Failed queries.
pub static QUERY_ERRORS: Counter = Counter::new("hourglass_query_errors_total", "SQL queries that failed.");
/// Parquet files a query planned to read after catalog pruning.
pub static FILES_SCANNED: Counter =
    Counter::new("hourglass_query_files_scanned_total", "Parquet files planned for scanning after catalog pruning.");

/// Queries holding a slot.
pub static QUERIES_RUNNING: Gauge = Gauge::new("hourglass_queries_running", "Queries running now.");
/// Queries waiting for a slot.
pub static QUERIES_QUEUED: Gauge =
    Gauge::new("hourglass_queries_queued", "Queries waiting for a slot in their tenant's turn.");
/// Queries refused because their tenant had too many running and waiting.
pub static QUERIES_REFUSED: Counter = Counter::new(
    "hourglass_queries_refused_total",
    "Queries refused because their tenant had too many queries running and waiting.",
);
/// Spill files written by queries past their memory limit.
pub static SPILLS: Counter = Counter::new(
    "hourglass_query_spills_total",
    "Spill files queries wrote to disk to stay within their memory limit.",
);
/// Bytes spilled to disk by queries.
pub static SPILLED_BYTES: Counter = Counter::new(
    "hourglass_query_spilled_bytes_total",
    "Bytes queries spilled to disk to stay within their memory limit.",
);

/// Appends every querier metric in Prometheus text format.
pub fn render(out: &mut String) {
    QUERY_SECONDS.render(out);
    QUERY_ERRORS.render(out);
    FILES_SCANNED.render(out);
    QUERIES_RUNNING.render(out);
    QUERIES_QUEUED.render(out);
    QUERIES_REFUSED.render(out);
    SPILLS.render(out);
    SPILLED_BYTES.render(out);
    crate::caches::render(out);
}
