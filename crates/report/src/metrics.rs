//! The report API's Prometheus metrics.

use hourglass_types::metrics::{Counter, Histogram};

/// Time to answer one report request.
pub static REPORT_SECONDS: Histogram =
    Histogram::new("hourglass_report_seconds", "Time to answer one report or realtime request.");
/// Reports answered from raw events only.
pub static REPORTS_RAW: Counter =
    Counter::new("hourglass_report_raw_total", "Reports (and comparison ranges) answered from raw events only.");

/// Reports answered at least in part from rollups.
pub static REPORTS_ROLLUP: Counter =
    Counter::new("hourglass_report_rollup_total", "Reports answered at least in part from rollups.");

/// Appends every report metric in Prometheus text format.
pub fn render(out: &mut String) {
    REPORT_SECONDS.render(out);
    REPORTS_RAW.render(out);
    REPORTS_ROLLUP.render(out);
    crate::cache::render(out);
}
