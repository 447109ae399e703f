//! The querier's Prometheus metrics.

use hourglass_types::metrics::{Counter, Histogram};

/// Query latency, planning to last batch.
pub static QUERY_SECONDS: Histogram = Histogram::new("hourglass_query_seconds", "Time to plan and run one SQL query.");
/// Failed queries.
pub static QUERY_ERRORS: Counter = Counter::new("hourglass_query_errors_total", "SQL queries that failed.");
/// Parquet files a query planned to read after catalog pruning.
pub static FILES_SCANNED: Counter =
    Counter::new("hourglass_query_files_scanned_total", "Parquet files planned for scanning after catalog pruning.");

/// Appends every querier metric in Prometheus text format.
pub fn render(out: &mut String) {
    QUERY_SECONDS.render(out);
    QUERY_ERRORS.render(out);
    FILES_SCANNED.render(out);
}
