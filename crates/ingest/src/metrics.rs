//! The ingester's Prometheus metrics.

use hourglass_types::metrics::{Counter, Gauge, Histogram};

/// Events accepted and made durable.
pub static EVENTS_INGESTED: Counter =
    Counter::new("hourglass_ingest_events_total", "Events accepted and written to the WAL.");
/// Request body bytes received by ingest (after decompression).
pub static BYTES_INGESTED: Counter =
    Counter::new("hourglass_ingest_bytes_total", "Ingest request body bytes, after decompression.");
/// Events rejected by validation.
pub static EVENTS_REJECTED: Counter =
    Counter::new("hourglass_ingest_rejected_events_total", "Events rejected by validation.");
/// Events dropped as re-sends of a buffered event.
pub static EVENTS_DUPLICATE: Counter = Counter::new(
    "hourglass_ingest_duplicate_events_total",
    "Events dropped because the same (tenant, event_id) was already buffered.",
);
/// WAL segment writes (each one durable group commit).
pub static WAL_SYNC_SECONDS: Histogram =
    Histogram::new("hourglass_wal_sync_seconds", "Time to write and sync one WAL segment.");
/// Requests sharing WAL segments.
pub static WAL_GROUPED_REQUESTS: Counter = Counter::new(
    "hourglass_wal_grouped_requests_total",
    "Ingest requests committed; divide by hourglass_wal_sync_seconds_count for requests per sync.",
);
/// Damaged WAL segments found at replay.
pub static WAL_CORRUPT_SEGMENTS: Counter = Counter::new(
    "hourglass_wal_corrupt_segments_total",
    "WAL segments found damaged at replay (complete entries before the damage are kept).",
);
/// Persist duration.
pub static PERSIST_SECONDS: Histogram =
    Histogram::new("hourglass_persist_seconds", "Time to persist one buffer chunk to Parquet and the catalog.");
/// Parquet files written.
pub static PERSISTED_FILES: Counter =
    Counter::new("hourglass_persist_files_total", "Parquet files written by persists.");
/// Persist failures (retried).
pub static PERSIST_ERRORS: Counter =
    Counter::new("hourglass_persist_errors_total", "Persist attempts that failed and will be retried.");
/// Buffered bytes.
pub static BUFFER_BYTES: Gauge =
    Gauge::new("hourglass_ingest_buffer_bytes", "Memory held by the ingest buffer (active and persisting chunks).");
/// Buffered rows.
pub static BUFFER_EVENTS: Gauge = Gauge::new("hourglass_ingest_buffer_events", "Events held by the ingest buffer.");

/// Appends every ingester metric in Prometheus text format.
pub fn render(out: &mut String) {
    for c in [
        &EVENTS_INGESTED,
        &BYTES_INGESTED,
        &EVENTS_REJECTED,
        &EVENTS_DUPLICATE,
        &WAL_GROUPED_REQUESTS,
        &WAL_CORRUPT_SEGMENTS,
        &PERSISTED_FILES,
        &PERSIST_ERRORS,
    ] {
        c.render(out);
    }
    WAL_SYNC_SECONDS.render(out);
    PERSIST_SECONDS.render(out);
    BUFFER_BYTES.render(out);
    BUFFER_EVENTS.render(out);
}
