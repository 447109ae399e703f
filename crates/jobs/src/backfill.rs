//! Backfills: rebuilding `events` from the immutable raw files, partition by partition, while
//! ingest and queries go on.
//!
//! A compactor claims a queued backfill in the catalog and works through its hours in order.
//! Each (hour, shard) partition is rebuilt from that partition's `raw_events` files with the
//! job's processor version and the tenants' current settings, then swapped for the old
//! `events` files in one catalog transaction ([`Catalog::replace_files`]): a query lists
//! either the old files or the new ones, never both and never neither. After each hour the
//! job records where it is, so a job whose compactor died resumes at that hour, and a
//! partition rebuilt twice comes out the same (the processor is a pure function of the raw
//! rows, the version and the settings). Rollups of the rebuilt hours go stale because newer
//! events files landed in their windows, and the rollup job computes them again; `sessions`
//! is computed from `events` when read.
//!
//! Retention applies as the job goes: rows of tenants whose events retention has passed are
//! not written, and the events of tenants whose raw events are gone (their raw retention is
//! shorter) are carried over from the old files as they are, not lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use hourglass_catalog::{
    Backfill, BackfillProgress, Catalog, Error as CatalogError, FileFilter, FileRecord, NewFile, SettingsCache,
};
use hourglass_processor::{Options, humans, process};
use hourglass_storage::ParquetOptions;
use hourglass_types::schema::{self, col};
use hourglass_types::settings::RetentionDays;
use hourglass_types::{Clock, PartitionKey, SystemClock, TableName, TenantId};
use object_store::ObjectStore;

use crate::compactor::conform;
use crate::dedupe::SeenEvents;
use crate::objects::{delete_quietly, read_batches, write_partition_file};
use crate::retention::{HourRule, Policies, tenant_mask};
use crate::{Error, Result};

const HOUR_MS: i64 = 3_600_000;

/// How backfills are run.
#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Names this runner in the catalog (the node id): a restarted node takes its own running
    /// job back at once.
    pub owner: String,
    /// A running job whose owner reported nothing for this long is taken over by another
    /// compactor.
    pub lease: Duration,
    /// How rebuilt files are written.
    pub parquet: ParquetOptions,
    /// How often a partition is rebuilt again when its files change under the rebuild (a
    /// compaction or a persist committed first) before the job fails.
    pub attempts: usize,
    /// The deployment's retention, for tenants that set none.
    pub retention: RetentionDays,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            owner: "compactor".to_string(),
            lease: Duration::from_secs(120),
            parquet: ParquetOptions::default(),
            attempts: 8,
            retention: RetentionDays::default(),
        }
    }
}

/// What one pass did: the job it ran, if any, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// The job run.
    pub job: Option<i64>,
    /// Its progress when the pass ended.
    pub progress: BackfillProgress,
    /// Whether it stopped because it was cancelled or taken over.
    pub stopped: bool,
}

/// Runs backfills, one at a time per process; any number of processes at once.
#[derive(Debug)]
pub struct Backfiller {
    config: BackfillConfig,
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
}

/// What retention leaves of one hour: the rules of its raw and its events.
struct HourRules {
    raw: HourRule,
    events: HourRule,
}

/// One rebuilt partition's outcome.
enum Rebuilt {
    /// Swapped in: raw rows read, rows written.
    Done { read: u64, written: u64 },
    /// Left alone: it has derived files but no raw files to rebuild them from.
    NoRaw,
    /// Nothing to do: no raw or derived files.
    Empty,
}

impl Backfiller {
    /// A runner over this store and catalog.
    pub fn new(config: BackfillConfig, store: Arc<dyn ObjectStore>, catalog: Arc<dyn Catalog>) -> Self {
        Self { config, store, catalog }
    }

    /// Looks for a job every `interval` and runs it, until `stop` resolves (a job stopped
    /// midway resumes at its current hour on the next claim).
    pub async fn run(&self, interval: Duration, stop: impl Future<Output = ()>) {
        crate::every("backfill", interval, stop, || self.run_once()).await;
    }

    /// Claims the next job, if there is one, and runs it to its end (or until it is
    /// cancelled or taken over).
    pub async fn run_once(&self) -> Result<BackfillReport> {
        let Some(job) = self.catalog.claim_backfill(&self.config.owner, self.config.lease).await? else {
            return Ok(BackfillReport::default());
        };
        tracing::info!(
            job = job.id,
            table = job.spec.table.as_str(),
            tenant = job.spec.tenant.as_ref().map(TenantId::as_str),
            from_hour = job.spec.from_hour,
            to_hour = job.spec.to_hour,
            next_hour = job.progress.next_hour,
            processor_version = job.spec.processor_version,
            "running backfill"
        );
        let mut progress = job.progress;
        match self.work(&job, &mut progress).await {
            Ok(true) => {
                self.catalog.finish_backfill(job.id, &self.config.owner, None).await?;
                tracing::info!(job = job.id, ?progress, "backfill done");
                Ok(BackfillReport { job: Some(job.id), progress, stopped: false })
            }
            Ok(false) => {
                tracing::info!(job = job.id, "backfill stopped: cancelled or taken over");
                Ok(BackfillReport { job: Some(job.id), progress, stopped: true })
            }
            Err(e) if e.is_permanent() => {
                let message = hourglass_types::error::display_chain(&e);
                tracing::warn!(job = job.id, error = %message, "backfill failed");
                self.catalog.finish_backfill(job.id, &self.config.owner, Some(&message)).await?;
                Ok(BackfillReport { job: Some(job.id), progress, stopped: true })
            }
            // The catalog or the store is unavailable: the job stays claimed and this or
            // another compactor resumes it.
            Err(e) => Err(e),
        }
    }

    /// Rebuilds the job's remaining hours; `false` when it is no longer this runner's job.
    async fn work(&self, job: &Backfill, progress: &mut BackfillProgress) -> Result<bool> {
        if job.spec.table != TableName::Events {
            return Err(Error::Backfill(format!("table {} cannot be rebuilt; only events can", job.spec.table)));
        }
        hourglass_processor::supported(job.spec.processor_version).map_err(|e| Error::Backfill(e.to_string()))?;
        let settings = SettingsCache::new(Arc::clone(&self.catalog));
        let policies = Policies::load(self.catalog.as_ref(), self.config.retention, SystemClock.now_ms()).await?;
        let tenant = job.spec.tenant.as_ref();
        for hour in progress.next_hour.max(job.spec.from_hour)..job.spec.to_hour {
            let rules = HourRules { raw: policies.raw_events.rule(hour), events: policies.events.rule(hour) };
            // Within an hour only the claim is renewed: a job resumed midway through an hour
            // rebuilds the whole hour again, so its counts are recorded once, at its end.
            let at_hour_start = *progress;
            let mut partitions: BTreeMap<u32, (Vec<FileRecord>, Vec<FileRecord>)> = BTreeMap::new();
            for f in self.files(TableName::RawEvents, tenant, hour, None).await? {
                partitions.entry(f.file.shard).or_default().0.push(f);
            }
            for f in self.files(TableName::Events, tenant, hour, None).await? {
                partitions.entry(f.file.shard).or_default().1.push(f);
            }
            for (i, (shard, (raw, old))) in partitions.into_iter().enumerate() {
                if i > 0 && !self.catalog.record_backfill_progress(job.id, &self.config.owner, &at_hour_start).await? {
                    return Ok(false);
                }
                let key = PartitionKey { table: TableName::Events, hour, shard };
                match self.rebuild_with_retries(job, key, raw, old, &settings, &rules).await? {
                    Rebuilt::Done { read, written } => {
                        progress.partitions_done += 1;
                        progress.rows_read += read;
                        progress.rows_written += written;
                    }
                    Rebuilt::NoRaw => progress.partitions_skipped += 1,
                    Rebuilt::Empty => {}
                }
            }
            progress.next_hour = hour + 1;
            if !self.catalog.record_backfill_progress(job.id, &self.config.owner, progress).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The files of `table` in `hour` (and `shard`, if given) that may hold `tenant`'s rows,
    /// oldest first.
    async fn files(
        &self,
        table: TableName,
        tenant: Option<&TenantId>,
        hour: i64,
        shard: Option<u32>,
    ) -> Result<Vec<FileRecord>> {
        let filter = FileFilter {
            table,
            tenant: tenant.cloned(),
            min_time_ms: Some(hour * HOUR_MS),
            max_time_ms: Some((hour + 1) * HOUR_MS),
        };
        let mut files: Vec<FileRecord> = self
            .catalog
            .list_files(&filter)
            .await?
            .files
            .into_iter()
            .filter(|f| f.file.hour == hour && shard.is_none_or(|s| f.file.shard == s))
            .collect();
        files.sort_by_key(|f| f.id);
        Ok(files)
    }

    /// Rebuilds a partition from the files listed for it, listing them again each time they
    /// changed under the rebuild.
    async fn rebuild_with_retries(
        &self,
        job: &Backfill,
        key: PartitionKey,
        mut raw: Vec<FileRecord>,
        mut old: Vec<FileRecord>,
        settings: &SettingsCache,
        rules: &HourRules,
    ) -> Result<Rebuilt> {
        let tenant = job.spec.tenant.as_ref();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.rebuild(job, key, &raw, &old, settings, rules).await {
                Err(Error::Catalog(CatalogError::FilesGone { .. })) if attempt < self.config.attempts => {
                    tracing::debug!(job = job.id, hour = key.hour, shard = key.shard, attempt, "partition changed");
                    raw = self.files(TableName::RawEvents, tenant, key.hour, Some(key.shard)).await?;
                    old = self.files(TableName::Events, tenant, key.hour, Some(key.shard)).await?;
                }
                Err(Error::Catalog(CatalogError::FilesGone { .. })) => {
                    return Err(Error::Backfill(format!(
                        "partition hour {} shard {} changed under {attempt} rebuilds in a row",
                        key.hour, key.shard
                    )));
                }
                other => return other,
            }
        }
    }

    /// Rebuilds one partition and swaps it in.
    async fn rebuild(
        &self,
        job: &Backfill,
        key: PartitionKey,
        raw: &[FileRecord],
        old: &[FileRecord],
        settings: &SettingsCache,
        rules: &HourRules,
    ) -> Result<Rebuilt> {
        // Raw files the retention pass has not removed yet are not rebuilt from either.
        if raw.is_empty() || rules.raw == HourRule::ExpireAll {
            return Ok(if old.is_empty() { Rebuilt::Empty } else { Rebuilt::NoRaw });
        }
        let generation = old.iter().map(|f| f.file.generation).max().unwrap_or(1) + 1;
        let mut written: Vec<NewFile> = Vec::new();
        let outcome = self.write_partition(job, key, generation, raw, old, settings, rules, &mut written).await;
        let (read, rows) = match outcome {
            Ok(counts) => counts,
            Err(e) => {
                self.delete_quietly(&written).await;
                return Err(e);
            }
        };
        let removed: Vec<i64> = old.iter().map(|f| f.id).collect();
        match self.catalog.replace_files(&self.config.owner, &removed, &written).await {
            Ok(()) => {
                tracing::debug!(job = job.id, hour = key.hour, shard = key.shard, read, rows, "partition rebuilt");
                Ok(Rebuilt::Done { read, written: rows })
            }
            Err(e @ CatalogError::FilesGone { .. }) => {
                self.delete_quietly(&written).await;
                Err(e.into())
            }
            // The commit may have happened despite the error: leave the objects.
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the partition's new files into `written`; returns the raw rows read and the
    /// rows written.
    #[allow(clippy::too_many_arguments)]
    async fn write_partition(
        &self,
        job: &Backfill,
        key: PartitionKey,
        generation: u64,
        raw: &[FileRecord],
        old: &[FileRecord],
        settings: &SettingsCache,
        rules: &HourRules,
        written: &mut Vec<NewFile>,
    ) -> Result<(u64, u64)> {
        let tenant = job.spec.tenant.as_ref();
        let (mut read, mut rows) = (0, 0);
        let rebuilt = |t: &str| tenant.is_none_or(|s| s.as_str() == t) && rules.raw.keeps(t);
        // A tenant's backfill rewrites only the files holding its rows: the other tenants'
        // rows of those files are carried over as they are, with their own version; so are
        // the rows of tenants whose raw events are gone.
        if tenant.is_some() || rules.raw != HourRule::KeepAll {
            for f in old {
                let mut kept = Vec::new();
                for batch in read_batches(&self.store, &f.file).await? {
                    let carried = tenant_mask(&batch, |t| !rebuilt(t) && rules.events.keeps(t))?;
                    let others = filter_record_batch(&batch, &carried)?;
                    if others.num_rows() > 0 {
                        kept.push(others);
                    }
                }
                if let Some(file) = self.put(key, generation, &kept, f.file.processor_version).await? {
                    rows += file.rows;
                    written.push(file);
                }
            }
        }
        let mut seen = SeenEvents::default();
        let raw_schema = schema::raw_events();
        for f in raw {
            let mut out = Vec::new();
            for batch in read_batches(&self.store, &f.file).await? {
                let batch = conform(&batch, &raw_schema)?;
                let batch =
                    filter_record_batch(&batch, &tenant_mask(&batch, |t| rebuilt(t) && rules.events.keeps(t))?)?;
                read += batch.num_rows() as u64;
                for (run_tenant, slice) in tenant_runs(&batch)? {
                    let config = match TenantId::new(&run_tenant) {
                        Ok(id) => settings.get(&id).await?,
                        Err(_) => None,
                    };
                    let options = Options::for_tenant(config.as_ref().map(|c| &c.settings), job.spec.processor_version);
                    let events = humans(&process(&slice, &options)?)?;
                    let (unique, _) = seen.keep_first(events)?;
                    if unique.num_rows() > 0 {
                        out.push(unique);
                    }
                }
            }
            if let Some(file) = self.put(key, generation, &out, Some(job.spec.processor_version)).await? {
                rows += file.rows;
                written.push(file);
            }
        }
        Ok((read, rows))
    }

    /// Writes `batches` (rows of one partition) as one file; `None` when they are empty.
    async fn put(
        &self,
        key: PartitionKey,
        generation: u64,
        batches: &[RecordBatch],
        processor_version: Option<i32>,
    ) -> Result<Option<NewFile>> {
        let Some(first) = batches.first() else { return Ok(None) };
        let merged = concat_batches(&first.schema(), batches)?;
        write_partition_file(self.store.as_ref(), key, generation, &merged, &self.config.parquet, processor_version)
            .await
    }

    async fn delete_quietly(&self, files: &[NewFile]) {
        for f in files {
            delete_quietly(self.store.as_ref(), &f.path).await;
        }
    }
}

/// The batch cut into runs of one tenant (raw files are sorted by tenant, so each tenant is
/// one run per batch), each with its tenant id.
fn tenant_runs(batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
    let tenants = batch
        .column_by_name(col::TENANT_ID)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(Error::Shape("tenant_id as Utf8"))?;
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=batch.num_rows() {
        if i == batch.num_rows() || tenants.value(i) != tenants.value(start) {
            runs.push((tenants.value(start).to_string(), batch.slice(start, i - start)));
            start = i;
        }
    }
    Ok(runs)
}
