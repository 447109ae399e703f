//! Merging each partition's small files into one, as a stream within a memory limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use hourglass_catalog::{Catalog, Error as CatalogError, FileFilter, FileRecord};
use hourglass_storage::ParquetOptions;
use hourglass_types::{Clock, PartitionKey, TableName};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::day_objects::{DayRule, DayToMerge, days_to_merge, write_day};
use crate::merge_stream::{MergeShape, UPLOAD_PART_BYTES, merge_files};
use crate::objects::delete_quietly;
use crate::{Error, Result};

const HOUR_MS: i64 = 3_600_000;

/// Nodes silent this long are removed from `system.nodes` (their WAL, if any, stays).
const FORGET_NODES_AFTER: Duration = Duration::from_secs(24 * 3600);

/// When and how much the compactor merges.
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Recorded in the catalog as the writer of merged files.
    pub writer_id: String,
    /// A partition whose hour ended at least this long ago is merged as soon as it holds two
    /// files (late events keep arriving for a while after an hour ends).
    pub min_age: Duration,
    /// A younger partition is merged once it holds this many files, so the open hour does not
    /// pile up small files.
    pub max_open_files: usize,
    /// Most Parquet bytes read for one merge; the smallest files go first.
    pub max_input_bytes: u64,
    /// Memory one merge may hold: its inputs' row groups and batches and the row group being
    /// written. A partition larger than this merges as a stream, in several passes when its
    /// files' row groups do not all fit at once.
    pub memory_limit: u64,
    /// How long a replaced object stays readable before it is deleted (by the catalog's clock).
    pub garbage_grace: Duration,
    /// A querier whose heartbeat is younger than this holds back the deletion of objects
    /// removed after its oldest running query started (the node lease).
    pub readers_lease: Duration,
    /// How merged files are written.
    pub parquet: ParquetOptions,
    /// An object the catalog does not know is taken for one never committed (and queued as
    /// garbage) once it is this old: far longer than any write takes to be recorded.
    pub orphan_age: Duration,
    /// A UTC day that ended this long ago has its hours merged into one object per shard;
    /// `None` leaves hours in objects of their own.
    pub merge_days_after: Option<Duration>,
    /// A day's hours are merged only when their files are at most this large together.
    pub max_day_bytes: u64,
    /// Most days of each table merged in one pass, newest first (a first start on a long
    /// history merges it over several passes, with hour merges and garbage collection between).
    pub days_per_pass: usize,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            writer_id: "compactor".to_string(),
            min_age: Duration::from_secs(10 * 60),
            max_open_files: 16,
            max_input_bytes: 512 * 1024 * 1024,
            memory_limit: 256 * 1024 * 1024,
            garbage_grace: Duration::from_secs(10 * 60),
            readers_lease: Duration::from_secs(30),
            parquet: ParquetOptions::default(),
            orphan_age: Duration::from_secs(24 * 3600),
            merge_days_after: Some(Duration::from_secs(2 * 3600)),
            max_day_bytes: 256 * 1024 * 1024,
            days_per_pass: 16,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Partitions merged.
    pub merged: usize,
    /// Files replaced by merged ones.
    pub files_in: usize,
    /// Events dropped because another copy of the same event was kept.
    pub duplicates_dropped: usize,
    /// Merges abandoned because another compactor replaced the same files first.
    pub lost_races: usize,
    /// Replaced objects deleted after their grace period.
    pub garbage_deleted: usize,
    /// Objects never committed, found by the sweep and queued as garbage.
    pub orphans_queued: usize,
    /// Days (of one table and shard) whose hours were merged into one object.
    pub days_merged: usize,
}

/// Merges small files; one pass at a time per process, any number of processes at once.
#[derive(Debug)]
pub struct Compactor {
    config: CompactorConfig,
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    /// When the last sweep for objects never committed ran.
    last_sweep: std::sync::Mutex<Option<Instant>>,
}

/// How often a compactor lists storage for objects never committed.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// One partition's files of one processor version: the unit of a merge. Generations are
/// not kept apart: late events persisted after a backfill (generation 1) merge with the
/// rebuilt files, and the merged file takes the newest generation.
type Group = (i64, u32, Option<i32>);

impl Compactor {
    /// A compactor over this store and catalog.
    pub fn new(
        config: CompactorConfig,
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { config, store, catalog, clock, last_sweep: std::sync::Mutex::new(None) }
    }

    /// Runs passes every `interval` until `stop` resolves.
    pub async fn run(&self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        crate::every("compaction", interval, stop, || self.run_once()).await;
    }

    /// One pass: every eligible partition of every table is merged, the hours of settled days
    /// are merged into day objects, then garbage past its grace period is deleted.
    pub async fn run_once(&self) -> Result<CompactionReport> {
        let mut report = CompactionReport::default();
        // Rollups are one file per hour or per day, written by the rollup job.
        for table in TableName::INGESTED {
            let filter = FileFilter { table, tenant: None, min_time_ms: None, max_time_ms: None };
            let listing = self.catalog.list_files(&filter).await?;
            // Planned before the hours merge: a day is taken only when each of its hours is
            // down to one file, which no hour merge below touches.
            let days = match self.config.merge_days_after {
                Some(after) => {
                    let quiet_since_ms = self.clock.now_ms() - after.as_millis() as i64;
                    let rule = DayRule {
                        settled_before_hour: quiet_since_ms.div_euclid(HOUR_MS),
                        quiet_since_ms,
                        max_bytes: self.config.max_day_bytes,
                        limit: self.config.days_per_pass,
                    };
                    days_to_merge(&listing.files, rule)
                }
                None => Vec::new(),
            };
            let mut groups: BTreeMap<Group, Vec<FileRecord>> = BTreeMap::new();
            for f in listing.files {
                let key = (f.file.hour, f.file.shard, f.file.processor_version);
                groups.entry(key).or_default().push(f);
            }
            for ((hour, shard, _), files) in groups {
                let Some((picked, shape)) = self.pick(hour, files) else { continue };
                let generation = picked.iter().map(|f| f.file.generation).max().unwrap_or(1);
                self.merge(PartitionKey { table, hour, shard }, generation, picked, shape, &mut report).await?;
            }
            for day in days {
                // One day that fails (an object gone meanwhile, a store error) must not hold
                // back the other days and garbage collection; the next pass tries it again.
                if let Err(e) = self.merge_day(&day, &mut report).await {
                    tracing::warn!(
                        table = day.key.table.as_str(),
                        day = day.key.hour / 24,
                        shard = day.key.shard,
                        error = %hourglass_types::error::display_chain(&e),
                        "merging a day's hours failed"
                    );
                }
            }
        }
        if self.sweep_due() {
            // A failed sweep must not hold back garbage collection; the next one tries again.
            match self.sweep_orphans().await {
                Ok(queued) => report.orphans_queued = queued,
                Err(e) => tracing::warn!(error = %hourglass_types::error::display_chain(&e), "orphan sweep failed"),
            }
        }
        report.garbage_deleted = self.collect_garbage().await?;
        let forgotten = self.catalog.forget_nodes_older_than(FORGET_NODES_AFTER).await?;
        if forgotten > 0 {
            tracing::info!(nodes = forgotten, "forgot nodes silent for a day");
        }
        Ok(report)
    }

    /// The files of a partition to merge now, smallest first within the byte budget and the
    /// memory limit, and how the merge spends memory.
    fn pick(&self, hour: i64, mut files: Vec<FileRecord>) -> Option<(Vec<FileRecord>, MergeShape)> {
        let settled = (hour + 1) * HOUR_MS + self.config.min_age.as_millis() as i64 <= self.clock.now_ms();
        let needed = if settled { 2 } else { self.config.max_open_files.max(2) };
        if files.len() < needed {
            return None;
        }
        files.sort_by_key(|f| (f.file.bytes, f.id));
        let plan = MemoryPlan::new(self.config.memory_limit, self.config.parquet.row_group_rows);
        let mut bytes_left = self.config.max_input_bytes;
        let mut held = 0u64;
        let mut picked: Vec<FileRecord> = Vec::new();
        for f in files {
            let holds = plan.row_group_bytes(&f);
            // Two files always merge, even past the limit: the partition must converge.
            let fits = bytes_left >= f.file.bytes && held + holds <= plan.inputs && picked.len() < MAX_MERGE_INPUTS;
            if !fits && picked.len() >= 2 {
                break;
            }
            bytes_left = bytes_left.saturating_sub(f.file.bytes);
            held += holds;
            picked.push(f);
        }
        if picked.len() < 2 {
            return None;
        }
        Some((picked, plan.shape()))
    }

    async fn merge(
        &self,
        key: PartitionKey,
        generation: u64,
        files: Vec<FileRecord>,
        shape: MergeShape,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let version = files[0].file.processor_version;
        let table_schema = hourglass_types::schema::of(key.table);
        // Copies of one event are identical but for when they arrived, so any one may stay.
        let merged =
            merge_files(&self.store, key, generation, &files, &table_schema, &self.config.parquet, shape, version)
                .await?;
        let (dropped, rows_in) = (merged.duplicates, merged.rows_in);
        let Some(merged_file) = merged.file else { return Ok(()) };
        let (path, rows) = (merged_file.path.clone(), merged_file.rows);
        let ids: Vec<i64> = files.iter().map(|f| f.id).collect();
        match self.catalog.replace_files(&self.config.writer_id, &ids, &[merged_file]).await {
            Ok(()) => {
                report.merged += 1;
                report.files_in += files.len();
                report.duplicates_dropped += dropped;
                tracing::info!(
                    table = key.table.as_str(),
                    hour = key.hour,
                    shard = key.shard,
                    files = files.len(),
                    rows_in,
                    rows,
                    duplicates = dropped,
                    "merged partition"
                );
                Ok(())
            }
            Err(CatalogError::FilesGone { .. }) => {
                report.lost_races += 1;
                delete_quietly(self.store.as_ref(), &path).await;
                Ok(())
            }
            Err(e) => {
                // The commit may have happened despite the error: leave the object; if it is
                // unreferenced, it only costs space.
                Err(e.into())
            }
        }
    }

    /// Merges a settled day's hours into one object, keeping a file (a segment) per hour.
    async fn merge_day(&self, day: &DayToMerge, report: &mut CompactionReport) -> Result<()> {
        let table_schema = hourglass_types::schema::of(day.key.table);
        let segments = write_day(&self.store, day, &table_schema, &self.config.parquet).await?;
        let Some(path) = segments.first().map(|f| f.path.clone()) else { return Ok(()) };
        let ids: Vec<i64> = day.hours.iter().map(|f| f.id).collect();
        match self.catalog.repack_files(&self.config.writer_id, &ids, &segments).await {
            Ok(()) => {
                report.days_merged += 1;
                tracing::info!(
                    table = day.key.table.as_str(),
                    day = day.key.hour / 24,
                    shard = day.key.shard,
                    hours = segments.len(),
                    bytes = segments[0].object_bytes(),
                    "merged a day's hours into one object"
                );
                Ok(())
            }
            Err(CatalogError::FilesGone { .. }) => {
                report.lost_races += 1;
                delete_quietly(self.store.as_ref(), &path).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an hour has passed since the last sweep (or none ran); marks it as run.
    fn sweep_due(&self) -> bool {
        let Ok(mut last) = self.last_sweep.lock() else { return false };
        if last.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Queues as garbage the objects under the tables' and imports' prefixes that the catalog
    /// does not know and that are older than `orphan_age`; returns how many.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        crate::orphans::sweep(self.store.as_ref(), self.catalog.as_ref(), self.config.orphan_age).await
    }

    async fn collect_garbage(&self) -> Result<usize> {
        let mut deleted = 0;
        loop {
            let paths =
                self.catalog.garbage_older_than(self.config.garbage_grace, self.config.readers_lease, 500).await?;
            if paths.is_empty() {
                return Ok(deleted);
            }
            for path in &paths {
                match self.store.delete(&Path::from(path.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(source) => return Err(Error::Object { path: path.clone(), source }),
                }
            }
            self.catalog.forget_garbage(&paths).await?;
            deleted += paths.len();
        }
    }
}

/// The schema of a merge of files that may come from different versions: the table's columns
/// that some file has, in the table's order, then any column only older files have. A column
/// some file lacks becomes nullable, and is null for that file's rows.
pub(crate) fn merged_schema(table: &SchemaRef, files: &[SchemaRef]) -> SchemaRef {
    let mut fields: Vec<Field> = Vec::new();
    let known = table.fields().iter().map(|f| f.as_ref().clone());
    let stored = files.iter().flat_map(|s| s.fields().iter().map(|f| f.as_ref().clone()).collect::<Vec<_>>());
    for field in known.chain(stored) {
        if fields.iter().any(|f| f.name() == field.name()) {
            continue;
        }
        let everywhere = files.iter().all(|s| s.field_with_name(field.name()).is_ok());
        if !files.iter().any(|s| s.field_with_name(field.name()).is_ok()) {
            continue;
        }
        let nullable = field.is_nullable() || !everywhere;
        fields.push(field.with_nullable(nullable));
    }
    Arc::new(Schema::new(fields))
}

/// How a merge's memory limit is shared: two upload parts first, then of the rest three
/// eighths for the inputs' row groups, a quarter for decoded batches, a quarter for the row
/// group being written, and an eighth left for the ids of the current tenant's events and the
/// writer's bookkeeping. Row groups are estimated
/// from the catalog (bytes and rows per file), since reading every footer to plan would cost
/// more; decoded sizes are measured by the merge on its first batches.
struct MemoryPlan {
    /// Bytes of row groups the inputs may hold at once.
    inputs: u64,
    /// Bytes of decoded batches.
    batches: u64,
    /// Bytes the writer may hold.
    output: u64,
    /// Rows per row group the files were written with.
    row_group_rows: u64,
}

/// Most files one merge reads: each holds a decoded batch, whatever its size.
const MAX_MERGE_INPUTS: usize = 32;

impl MemoryPlan {
    fn new(limit: u64, row_group_rows: usize) -> Self {
        let limit = limit.saturating_sub(2 * UPLOAD_PART_BYTES as u64);
        Self {
            inputs: limit * 3 / 8,
            batches: limit / 4,
            output: limit / 4,
            row_group_rows: row_group_rows.max(1) as u64,
        }
    }

    /// The bytes a reader of `f` holds for one row group: its column chunks as stored, and
    /// about three times that again as pages are decompressed and dictionaries decoded.
    fn row_group_bytes(&self, f: &FileRecord) -> u64 {
        let rows = f.file.rows.max(1);
        let stored = if rows <= self.row_group_rows { f.file.bytes } else { f.file.bytes * self.row_group_rows / rows };
        4 * stored
    }

    /// The memory a merge's batches and output may take.
    fn shape(&self) -> MergeShape {
        MergeShape {
            batch_bytes: self.batches,
            output_bytes: self.output,
            max_row_group_rows: self.row_group_rows as usize,
        }
    }
}

/// `batch` in the merge's schema: columns matched by name, a missing one filled with nulls, a
/// column whose type changed cast to the current type.
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            Some(column) => arrow::compute::cast(column, field.data_type()),
            None => Ok(new_null_array(field.data_type(), rows)),
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
