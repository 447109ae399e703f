//! The querier's view of ingester buffers.

use arrow::array::RecordBatch;
use async_trait::async_trait;
use hourglass_types::{TableName, TenantId};

/// Rows an ingester has acknowledged but not yet persisted, in chunks that are persisted as
/// units.
#[derive(Debug, Clone)]
pub struct BufferedChunk {
    /// The ingester holding the chunk.
    pub ingester_id: String,
    /// Highest WAL segment in the chunk. Once the catalog's persisted position for the
    /// ingester reaches it, the chunk's rows are in the catalog's files and the chunk must be
    /// skipped.
    pub max_seq: u64,
    /// The tenant's rows, with the table's schema.
    pub batches: Vec<RecordBatch>,
}

/// A source of unpersisted rows: the in-process ingester in embedded mode, a remote one later.
///
/// The querier calls [`BufferSource::snapshot`] *before* it lists the catalog's files; together
/// with the chunk's `max_seq` that ordering makes every event visible exactly once while a
/// persist moves it from buffer to file.
#[async_trait]
pub trait BufferSource: Send + Sync + std::fmt::Debug {
    /// `tenant`'s buffered rows of `table` with timestamps that may fall in
    /// `[from_ms, to_ms)` (whole hours are returned; the query filters precisely).
    async fn snapshot(
        &self,
        table: TableName,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BufferedChunk>, Box<dyn std::error::Error + Send + Sync>>;
}
