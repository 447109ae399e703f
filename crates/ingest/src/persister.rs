//! Persisting the buffer: freeze the active chunk, write one Parquet file per table and
//! partition, record them and the WAL position in the catalog in one transaction, then drop
//! the chunk and delete the WAL segments it came from.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::compute::concat_batches;
use hourglass_catalog::NewFile;
use hourglass_storage::{encode_parquet, sort_for_parquet};
use hourglass_types::schema;
use hourglass_types::{PartitionKey, TableName};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::{mpsc, oneshot};

use crate::buffer::Chunk;
use crate::ingester::Shared;
use crate::{Error, Result, metrics};

/// Generation of files written by ingest. Reprocessing writes later generations.
const INGEST_GENERATION: u64 = 1;

/// How often the persister checks the size and age thresholds.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Requests to the persister.
pub(crate) enum PersistCommand {
    /// Persist everything buffered now and answer when done.
    Flush(oneshot::Sender<Result<()>>),
    /// Persist everything, answer, and stop.
    Shutdown(oneshot::Sender<Result<()>>),
}

/// Longest wait between retries of a failing persist.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) async fn run_persister(shared: Arc<Shared>, mut rx: mpsc::Receiver<PersistCommand>) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u32 = 0;
    let mut retry_at = Instant::now();
    loop {
        let command = tokio::select! {
            _ = tick.tick() => None,
            command = rx.recv() => match command {
                Some(c) => Some(c),
                None => return,
            },
        };
        match command {
            None => {
                if Instant::now() < retry_at || !due(&shared) {
                    continue;
                }
                match persist_all(&shared).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let backoff = CHECK_INTERVAL.saturating_mul(1 << failures.min(7)).min(MAX_BACKOFF);
                        retry_at = Instant::now() + backoff;
                        metrics::PERSIST_ERRORS.inc();
                        tracing::warn!(
                            error = %hourglass_types::error::display_chain(&e),
                            retry_in_ms = backoff.as_millis() as u64,
                            "persist failed; will retry"
                        );
                    }
                }
            }
            Some(PersistCommand::Flush(reply)) => {
                let _ = reply.send(persist_all(&shared).await);
            }
            Some(PersistCommand::Shutdown(reply)) => {
                let mut result = persist_all(&shared).await;
                for attempt in 1..=3 {
                    if result.is_ok() {
                        break;
                    }
                    tracing::warn!(attempt, "final persist failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                    result = persist_all(&shared).await;
                }
                let _ = reply.send(result);
                return;
            }
        }
    }
}

/// Whether the active chunk crossed a threshold, or an earlier persist is waiting for a retry.
fn due(shared: &Shared) -> bool {
    let buffer = shared.read_buffer();
    let active = buffer.active();
    persist_due(active.bytes(), active.first_insert_ms(), buffer.has_frozen(), shared.clock.now_ms(), &shared.config)
}

/// The persist rule: the active chunk is over the size threshold, its oldest event is over
/// the age threshold, or a frozen chunk failed to persist and must be retried.
pub(crate) fn persist_due(
    active_bytes: usize,
    first_insert_ms: Option<i64>,
    has_frozen: bool,
    now_ms: i64,
    config: &crate::IngesterConfig,
) -> bool {
    let old = first_insert_ms.is_some_and(|t| now_ms - t >= config.persist_max_age_ms);
    has_frozen || old || (active_bytes > 0 && active_bytes >= config.persist_max_bytes)
}

/// Persists every frozen chunk left by an earlier failed attempt, then freezes the active
/// chunk and persists it. The active chunk is frozen only once nothing older is pending, so a
/// failing store does not splinter the buffer into many small chunks (and later small files);
/// meanwhile the active chunk grows until ingest is refused with 429.
pub(crate) async fn persist_all(shared: &Shared) -> Result<()> {
    persist_frozen(shared).await?;
    let froze = {
        let mut buffer = shared.write_buffer();
        buffer.freeze().is_some()
    };
    if froze {
        persist_frozen(shared).await?;
    }
    Ok(())
}

async fn persist_frozen(shared: &Shared) -> Result<()> {
    let frozen = shared.read_buffer().frozen_chunks();
    for chunk in frozen {
        let started = Instant::now();
        persist_chunk(shared, &chunk).await?;
        {
            let mut buffer = shared.write_buffer();
            buffer.release(&chunk, shared.clock.now_ms());
            Shared::update_gauges(&buffer);
        }
        metrics::PERSIST_SECONDS.observe(started.elapsed());
        // The catalog now covers these segments; failing to delete them only costs space,
        // since replay skips segments at or below the persisted position.
        if let Err(e) = shared.wal.delete_through(chunk.max_seq()).await {
            tracing::warn!(error = %hourglass_types::error::display_chain(&e), "deleting persisted WAL segments failed");
        }
    }
    Ok(())
}

async fn persist_chunk(shared: &Shared, chunk: &Chunk) -> Result<()> {
    let mut files = Vec::new();
    for table in TableName::INGESTED {
        for (hour, shard, batches) in chunk.partitions(table) {
            if batches.is_empty() {
                continue;
            }
            let key = PartitionKey { table, hour, shard };
            let merged = concat_batches(&schema::of(table), &batches)?;
            let Some((sorted, stats)) = sort_for_parquet(&merged)? else {
                continue;
            };
            let data = encode_parquet(&sorted, &shared.config.parquet)?;
            let path = key.file_key(INGEST_GENERATION, &uuid::Uuid::new_v4().to_string());
            let bytes = data.len() as u64;
            let stored = shared.store.put(&Path::from(path.as_str()), PutPayload::from(data)).await;
            if let Err(source) = stored {
                remove_uncommitted(shared, &files).await;
                return Err(Error::Put { path, source });
            }
            metrics::PERSISTED_FILES.inc();
            let version = (table == TableName::Events).then_some(shared.config.processor_version);
            files.push(NewFile::new(key, INGEST_GENERATION, path, bytes, stats, version));
        }
    }
    shared.catalog.commit_persist(&shared.config.ingester_id, chunk.max_seq(), &files).await?;
    tracing::info!(
        ingester = %shared.config.ingester_id,
        wal_through = chunk.max_seq(),
        files = files.len(),
        events = chunk.rows(),
        "persisted"
    );
    Ok(())
}

/// Deletes files written by a persist that failed before its catalog commit. (After a failed
/// commit the files are left alone: the commit may have succeeded despite the error.)
async fn remove_uncommitted(shared: &Shared, files: &[NewFile]) {
    for f in files {
        if let Err(e) = shared.store.delete(&Path::from(f.path.as_str())).await {
            tracing::warn!(path = %f.path, error = %e, "removing an uncommitted parquet file failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IngesterConfig;

    #[test]
    fn persists_on_size_age_and_pending_retries() {
        let config = IngesterConfig { persist_max_bytes: 100, persist_max_age_ms: 1_000, ..Default::default() };
        assert!(!persist_due(0, None, false, 5_000, &config), "empty buffer");
        assert!(!persist_due(99, Some(4_500), false, 5_000, &config), "small and young");
        assert!(persist_due(100, Some(4_500), false, 5_000, &config), "size threshold");
        assert!(persist_due(1, Some(4_000), false, 5_000, &config), "age threshold");
        assert!(persist_due(0, None, true, 5_000, &config), "a failed persist is retried");
    }
}
