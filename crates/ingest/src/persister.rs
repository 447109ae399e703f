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

pub(crate) async fn run_persister(shared: Arc<Shared>, mut rx: mpsc::Receiver<PersistCommand>) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                if due(&shared)
                    && let Err(e) = persist_all(&shared).await
                {
                    metrics::PERSIST_ERRORS.inc();
                    tracing::warn!(error = %hourglass_types::error::display_chain(&e), "persist failed; will retry");
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
    let old = active
        .first_insert_ms()
        .is_some_and(|t| shared.clock.now_ms() - t >= shared.config.persist_max_age_ms);
    old || active.bytes() >= shared.config.persist_max_bytes || buffer.has_frozen()
}

/// Freezes the active chunk and persists every frozen chunk, oldest first.
pub(crate) async fn persist_all(shared: &Shared) -> Result<()> {
    let frozen = {
        let mut buffer = shared.write_buffer();
        buffer.freeze();
        buffer.frozen_chunks()
    };
    for chunk in frozen {
        let started = Instant::now();
        persist_chunk(shared, &chunk).await?;
        {
            let mut buffer = shared.write_buffer();
            buffer.release(&chunk);
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
    for table in TableName::ALL {
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
            shared
                .store
                .put(&Path::from(path.as_str()), PutPayload::from(data))
                .await
                .map_err(|source| Error::Put {
                    path: path.clone(),
                    source,
                })?;
            metrics::PERSISTED_FILES.inc();
            files.push(NewFile {
                table,
                hour,
                shard,
                generation: INGEST_GENERATION,
                path,
                min_tenant: stats.min_tenant,
                max_tenant: stats.max_tenant,
                min_time_ms: stats.min_time_ms,
                max_time_ms: stats.max_time_ms,
                rows: stats.rows,
                bytes,
                processor_version: (table == TableName::Events)
                    .then_some(hourglass_processor::PROCESSOR_VERSION),
            });
        }
    }
    shared
        .catalog
        .commit_persist(&shared.config.ingester_id, chunk.max_seq(), &files)
        .await?;
    tracing::info!(
        ingester = %shared.config.ingester_id,
        wal_through = chunk.max_seq(),
        files = files.len(),
        events = chunk.rows(),
        "persisted"
    );
    Ok(())
}
