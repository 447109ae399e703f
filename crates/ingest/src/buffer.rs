//! The ingester's in-memory buffer: Arrow batches per partition, waiting to be persisted and
//! readable by queries meanwhile.
//!
//! New events go to the *active* chunk. A persist freezes the active chunk (a new one takes its
//! place), writes the frozen chunk's partitions to Parquet, records them in the catalog, and only
//! then drops the frozen chunk. Every chunk knows the highest WAL segment it holds (`max_seq`),
//! which is how a querier tells whether a frozen chunk is already in the catalog's files.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use hourglass_types::partition::{hour_of, shard_of};
use hourglass_types::schema::col;
use hourglass_types::{TableName, TenantId};

use crate::{Error, Result};

/// Key under which an event is de-duplicated: a 128-bit hash of (tenant, event_id). Two
/// independent 64-bit hashes make a collision (which would drop an event) practically impossible
/// while keeping the index at 16 bytes per event.
pub(crate) type DedupKey = u128;

/// The de-duplication key of an event.
pub(crate) fn dedup_key(tenant: &str, event_id: &str) -> DedupKey {
    let half = |seed: u8| {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        tenant.hash(&mut h);
        event_id.hash(&mut h);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// Small batches are merged once a partition has this many, so that queries over the buffer
/// do not iterate thousands of tiny batches.
const MERGE_AFTER_BATCHES: usize = 16;

#[derive(Debug, Default)]
struct TableData {
    sealed: Vec<RecordBatch>,
    tail: Vec<RecordBatch>,
}

impl TableData {
    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.tail.push(batch);
        if self.tail.len() >= MERGE_AFTER_BATCHES {
            let schema = self.tail[0].schema();
            let merged = concat_batches(&schema, &self.tail)?;
            self.tail.clear();
            if merged.num_rows() >= 8192 {
                self.sealed.push(merged);
            } else {
                self.tail.push(merged);
            }
        }
        Ok(())
    }

    fn batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.sealed.iter().chain(self.tail.iter())
    }
}

#[derive(Debug, Default)]
struct PartitionData {
    raw: TableData,
    events: TableData,
}

impl PartitionData {
    /// The table's buffered data; rollups are never buffered.
    fn table(&self, table: TableName) -> Option<&TableData> {
        match table {
            TableName::RawEvents => Some(&self.raw),
            TableName::Events => Some(&self.events),
            TableName::Rollups => None,
        }
    }
}

/// A set of buffered partitions that is persisted as a unit.
#[derive(Debug, Default)]
pub struct Chunk {
    partitions: BTreeMap<(i64, u32), PartitionData>,
    keys: HashSet<DedupKey>,
    max_seq: u64,
    rows: usize,
    bytes: usize,
    first_insert_ms: Option<i64>,
}

impl Chunk {
    /// Highest WAL segment whose events are in this chunk.
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    /// Buffered raw events.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate memory held by the chunk's batches.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the first event arrived in this chunk (server clock, epoch ms).
    pub fn first_insert_ms(&self) -> Option<i64> {
        self.first_insert_ms
    }

    /// Every partition with its batches of `table`: `(hour, shard, batches)`.
    pub fn partitions(&self, table: TableName) -> impl Iterator<Item = (i64, u32, Vec<RecordBatch>)> + '_ {
        self.partitions.iter().map(move |((hour, shard), p)| {
            (*hour, *shard, p.table(table).into_iter().flat_map(|t| t.batches().cloned()).collect())
        })
    }
}

/// What a query sees of one chunk for one tenant.
#[derive(Debug, Clone)]
pub struct ChunkSnapshot {
    /// Highest WAL segment in the chunk; skip the chunk if the catalog's persisted position for
    /// this ingester is at or beyond it.
    pub max_seq: u64,
    /// The tenant's rows.
    pub batches: Vec<RecordBatch>,
}

/// How long the keys of persisted events stay in the de-duplication index, so that a client
/// retry that arrives just after a persist is still recognised.
const RECENT_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Most persisted keys kept for [`RECENT_WINDOW_MS`] (16 bytes each plus set overhead); the
/// oldest sets are dropped first past it, so memory stays bounded at any ingest rate.
const RECENT_MAX_KEYS: usize = 4_000_000;

/// The active chunk and the frozen chunks being persisted.
#[derive(Debug)]
pub struct Buffer {
    shards: u32,
    active: Chunk,
    frozen: Vec<Arc<Chunk>>,
    /// Keys of recently persisted chunks, oldest first, with the time they were persisted.
    recent: std::collections::VecDeque<(i64, HashSet<DedupKey>)>,
    recent_keys: usize,
}

impl Buffer {
    /// An empty buffer partitioning tenants over `shards` shards.
    pub fn new(shards: u32) -> Self {
        Self {
            shards: shards.max(1),
            active: Chunk::default(),
            frozen: Vec::new(),
            recent: std::collections::VecDeque::new(),
            recent_keys: 0,
        }
    }

    /// Whether an event key is buffered (active or frozen) or was persisted recently.
    pub(crate) fn contains(&self, key: &DedupKey) -> bool {
        self.active.keys.contains(key)
            || self.frozen.iter().any(|c| c.keys.contains(key))
            || self.recent.iter().any(|(_, keys)| keys.contains(key))
    }

    /// Memory held by every chunk.
    pub fn bytes(&self) -> usize {
        self.active.bytes + self.frozen.iter().map(|c| c.bytes).sum::<usize>()
    }

    /// Events held by every chunk.
    pub fn rows(&self) -> usize {
        self.active.rows + self.frozen.iter().map(|c| c.rows).sum::<usize>()
    }

    /// The active chunk.
    pub fn active(&self) -> &Chunk {
        &self.active
    }

    /// Adds one request's events, from WAL segment `seq`, to the active chunk.
    ///
    /// `raw` and `events` (the processor's output, with its bot flag) hold the same rows in the
    /// same order; `keys` are their de-duplication keys. Bots are kept in raw only.
    pub(crate) fn insert(
        &mut self,
        raw: &RecordBatch,
        events: &RecordBatch,
        keys: &[DedupKey],
        seq: u64,
        now_ms: i64,
    ) -> Result<()> {
        if raw.num_rows() == 0 {
            return Ok(());
        }
        let tenants = string_column(raw, col::TENANT_ID)?;
        let times = time_column(raw)?;
        let mut part_of_row = Vec::with_capacity(raw.num_rows());
        let mut last_tenant: Option<(&str, u32)> = None;
        for i in 0..raw.num_rows() {
            let tenant = tenants.value(i);
            let shard = match last_tenant {
                Some((t, s)) if t == tenant => s,
                _ => shard_of(tenant, self.shards),
            };
            last_tenant = Some((tenant, shard));
            part_of_row.push((hour_of(times.value(i)), shard));
        }

        let first = part_of_row[0];
        let groups: Vec<((i64, u32), Option<UInt32Array>)> = if part_of_row.iter().all(|p| *p == first) {
            vec![(first, None)]
        } else {
            let mut by_part: BTreeMap<(i64, u32), Vec<u32>> = BTreeMap::new();
            for (i, p) in part_of_row.iter().enumerate() {
                by_part.entry(*p).or_default().push(i as u32);
            }
            by_part.into_iter().map(|(p, idx)| (p, Some(UInt32Array::from(idx)))).collect()
        };

        let chunk = &mut self.active;
        for (part, indices) in groups {
            let (raw_part, staged_part) = match indices {
                None => (raw.clone(), events.clone()),
                Some(idx) => (take_record_batch(raw, &idx)?, take_record_batch(events, &idx)?),
            };
            // Bots stay in raw_events only.
            let events_part = hourglass_processor::humans(&staged_part)?;
            chunk.bytes += raw_part.get_array_memory_size() + events_part.get_array_memory_size();
            let data = chunk.partitions.entry(part).or_default();
            data.raw.push(raw_part)?;
            data.events.push(events_part)?;
        }
        chunk.keys.extend(keys.iter().copied());
        chunk.rows += raw.num_rows();
        chunk.max_seq = chunk.max_seq.max(seq);
        chunk.first_insert_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Freezes the active chunk for persisting and starts a new one; `None` if it is empty.
    pub fn freeze(&mut self) -> Option<Arc<Chunk>> {
        if self.active.rows == 0 {
            return None;
        }
        let chunk = Arc::new(std::mem::take(&mut self.active));
        self.frozen.push(Arc::clone(&chunk));
        Some(chunk)
    }

    /// Whether a frozen chunk is waiting to be persisted.
    pub fn has_frozen(&self) -> bool {
        !self.frozen.is_empty()
    }

    /// The frozen chunks, oldest first.
    pub fn frozen_chunks(&self) -> Vec<Arc<Chunk>> {
        self.frozen.clone()
    }

    /// Drops a frozen chunk once the catalog records its files, keeping its keys for a while
    /// so that retries of its events are still recognised.
    pub fn release(&mut self, chunk: &Arc<Chunk>, now_ms: i64) {
        self.frozen.retain(|c| !Arc::ptr_eq(c, chunk));
        self.recent_keys += chunk.keys.len();
        self.recent.push_back((now_ms, chunk.keys.clone()));
        while let Some((at, keys)) = self.recent.front() {
            if now_ms - *at <= RECENT_WINDOW_MS && self.recent_keys <= RECENT_MAX_KEYS {
                break;
            }
            self.recent_keys -= keys.len();
            self.recent.pop_front();
        }
    }

    /// Clones the handles of every batch of `table` that may hold `tenant`'s rows for hours in
    /// `hours` (inclusive); cheap, so it runs under the buffer lock. Row filtering by tenant is
    /// done afterwards by [`filter_snapshot`], outside the lock.
    pub fn snapshot(&self, table: TableName, tenant: &TenantId, hours: (i64, i64)) -> Vec<(u64, Vec<RecordBatch>)> {
        let shard = shard_of(tenant.as_str(), self.shards);
        self.frozen
            .iter()
            .map(|c| c.as_ref())
            .chain(std::iter::once(&self.active))
            .map(|chunk| {
                let batches = chunk
                    .partitions
                    .range((hours.0, 0)..=(hours.1, u32::MAX))
                    .filter(|((_, s), _)| *s == shard)
                    .flat_map(|(_, p)| p.table(table).into_iter().flat_map(|t| t.batches().cloned()))
                    .collect();
                (chunk.max_seq, batches)
            })
            .collect()
    }
}

/// Keeps only `tenant`'s rows of the batches from [`Buffer::snapshot`].
pub fn filter_snapshot(tenant: &TenantId, chunks: Vec<(u64, Vec<RecordBatch>)>) -> Result<Vec<ChunkSnapshot>> {
    chunks
        .into_iter()
        .map(|(max_seq, batches)| {
            let mut kept = Vec::with_capacity(batches.len());
            for batch in batches {
                let tenants = string_column(&batch, col::TENANT_ID)?;
                let mask: BooleanArray = tenants.iter().map(|t| Some(t == Some(tenant.as_str()))).collect();
                let filtered = match mask.true_count() {
                    0 => continue,
                    n if n == batch.num_rows() => batch,
                    _ => filter_record_batch(&batch, &mask)?,
                };
                kept.push(filtered);
            }
            Ok(ChunkSnapshot { max_seq, batches: kept })
        })
        .collect()
}

fn string_column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        .ok_or(Error::MissingColumn { column: name })
}

fn time_column(batch: &RecordBatch) -> Result<&TimestampMillisecondArray> {
    batch
        .column_by_name(col::TIMESTAMP)
        .and_then(|a| a.as_any().downcast_ref::<TimestampMillisecondArray>())
        .ok_or(Error::MissingColumn { column: col::TIMESTAMP })
}

/// The de-duplication keys of a raw batch's rows.
pub(crate) fn keys_of(raw: &RecordBatch) -> Result<Vec<DedupKey>> {
    let tenants = string_column(raw, col::TENANT_ID)?;
    let ids = string_column(raw, col::EVENT_ID)?;
    Ok((0..raw.num_rows()).map(|i| dedup_key(tenants.value(i), ids.value(i))).collect())
}

#[cfg(test)]
mod tests;

/// The tenant of a batch's first row; `None` for an empty batch or one without the column.
pub(crate) fn tenant_of(raw: &RecordBatch) -> Option<String> {
    let tenants = string_column(raw, col::TENANT_ID).ok()?;
    (!tenants.is_empty()).then(|| tenants.value(0).to_string())
}
