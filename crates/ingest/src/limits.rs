//! Configurable limits on what one ingest request may contain.

/// Limits enforced on every ingest request, each with a clear error when exceeded.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest request body accepted, as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression; guards against compression bombs.
    pub max_decompressed_bytes: usize,
    /// Most events in one request.
    pub max_events_per_request: usize,
    /// Longest string field or property value, in bytes.
    pub max_string_bytes: usize,
    /// Most entries in `props`.
    pub max_props: usize,
    /// How far ahead of the server clock a timestamp may be, in milliseconds.
    pub max_future_ms: i64,
    /// How far behind the server clock a timestamp may be, in milliseconds. Bounds how many
    /// hourly partitions one request can touch.
    pub max_past_ms: i64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_events_per_request: 10_000,
            max_string_bytes: 8 * 1024,
            max_props: 64,
            max_future_ms: 60 * 60 * 1000,
            max_past_ms: 31 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Longest client-chosen `event_id`, in bytes.
pub const MAX_EVENT_ID_BYTES: usize = 128;
/// Longest event `name`, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest property key, in bytes.
pub const MAX_PROP_KEY_BYTES: usize = 256;
