//! The rollup job: materializes `sql/rollups/*.sql` per closed UTC hour for every tenant, and
//! computes an hour again when late events, a persist, compaction or reprocessing change the
//! events its sessions were made of.
//!
//! For hour H, each tenant with events in H is sessionized over a window around H, widened
//! until every session touching H is whole (the report engine's own windowing, so rollups and
//! raw answers see the same sessions). The hour's facts (its events with their sessions'
//! labels, the sessions starting in it) go through each rollup's SQL with the `visitor_set`
//! and `hll` aggregates; the rows of all rollups become one Parquet object of the `rollups`
//! table, swapped in with the hour's state in one catalog transaction. The state records the
//! window and the newest events file id read, so the hour goes stale as soon as an events file
//! lands in its window. Once a UTC day has settled, its hours' rows are merged into one file
//! (`days.rs`), which an hour computed again later is written back into.

mod days;
mod hour_cache;
mod udaf;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use hourglass_catalog::{Catalog, NewRollupHour, RollupCommit, SettingsCache};
use hourglass_processor::sessions::SessionRules;
use hourglass_report::dataset;
use hourglass_report::facts::FactsBuilder;
use hourglass_report::rollups::{self, definitions_version};
use hourglass_report::time::TimeRange;
use hourglass_storage::ParquetOptions;
use hourglass_types::schema::{self, col};
use hourglass_types::{Clock, TenantId};
use object_store::ObjectStore;

pub(crate) use self::days::RollupFiles;
use self::days::{PendingHour, day_of};
use self::hour_cache::HourCache;
use crate::{Error, Result};

const HOUR_MS: i64 = 3_600_000;

/// When and how much the rollup job computes.
#[derive(Debug, Clone)]
pub struct RollupConfig {
    /// An hour is rolled up once it ended at least this long ago; younger hours are answered
    /// from events (their sessions are still growing, and every persist would redo them).
    pub settle: Duration,
    /// Most hours computed in one pass (newest first), so a pass over a long history of
    /// un-rolled-up hours ends and starts over with what changed meanwhile.
    pub hours_per_pass: u32,
    /// How rollup files are written.
    pub parquet: ParquetOptions,
    /// A UTC day's hours are merged into one file once the day ended at least this long ago
    /// (`None`: never), so a report over a month opens 30 objects rather than 720.
    pub merge_days_after: Option<Duration>,
    /// Most days merged in one pass.
    pub days_per_pass: u32,
    /// A day whose hour files are larger than this together keeps them: they are big enough
    /// to be read on their own, and a merge holds the whole day in memory.
    pub max_day_bytes: u64,
}

/// How rollup files are written: small uncompressed pages, because a report reads one
/// tenant's few rows from each of many files, and a page is the least it can read and decode.
pub(crate) fn rollup_parquet() -> ParquetOptions {
    ParquetOptions { page_rows: 1024, compress: false, ..ParquetOptions::default() }
}

impl Default for RollupConfig {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(30 * 60),
            hours_per_pass: 48,
            parquet: rollup_parquet(),
            merge_days_after: Some(Duration::from_secs(2 * 3600)),
            days_per_pass: 32,
            max_day_bytes: 256 << 20,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Hours computed and committed.
    pub hours: usize,
    /// Rows written over those hours.
    pub rows: u64,
    /// Hours another job committed first.
    pub lost_races: usize,
    /// Days whose hours were merged into one file.
    pub days_merged: usize,
}

/// What became of one computed hour.
enum Computed {
    /// Committed with this many rows (0: it has none, and nothing was written).
    Committed(u64),
    /// Another job changed the hour first.
    Lost,
    /// Its rows are in a file with other hours: the new ones wait to be written with them.
    Shared { file_id: i64, pending: PendingHour },
}

/// Computes rollup hours; any number may run at once (the catalog arbitrates each hour).
#[derive(Debug)]
pub struct RollupJob {
    config: RollupConfig,
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    settings: SettingsCache,
}

impl RollupJob {
    /// A job over this store and catalog.
    pub fn new(
        config: RollupConfig,
        store: Arc<dyn ObjectStore>,
        catalog: Arc<dyn Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let settings = SettingsCache::new(Arc::clone(&catalog));
        Self { config, store, catalog, clock, settings }
    }

    /// Runs passes every `interval` until `stop` resolves.
    pub async fn run(&self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        crate::every("rollup", interval, stop, || self.run_once()).await;
    }

    /// One pass: the newest hours without a fresh rollup of the current definitions.
    pub async fn run_once(&self) -> Result<RollupReport> {
        let settled_ms = self.clock.now_ms() - self.config.settle.as_millis() as i64;
        // Hours that ended at or before the settle point.
        let before_hour = settled_ms.div_euclid(HOUR_MS);
        let version = definitions_version();
        let backlog = self.catalog.rollup_backlog(before_hour, &version, self.config.hours_per_pass).await?;
        let mut report = RollupReport::default();
        if !backlog.is_empty() {
            // Read before any events: a file that lands during the pass is newer, and makes
            // the hours whose windows it falls in stale again.
            let input_file_id = self.catalog.events_high_water(i64::MIN / HOUR_MS, i64::MAX / HOUR_MS).await?;
            // Hours go newest first and each reads its neighbours: one cache for the pass
            // reads each hour of events once.
            let cache = HourCache::new(Arc::clone(&self.store), Arc::clone(&self.catalog), dataset::columns(true));
            let mut shared: BTreeMap<i64, Vec<PendingHour>> = BTreeMap::new();
            for hour in backlog {
                let outcome = self.compute_with(hour, &version, &cache, input_file_id).await?;
                cache.forget_after(hour + 2).await;
                match outcome {
                    Computed::Committed(rows) => {
                        report.hours += 1;
                        report.rows += rows;
                    }
                    Computed::Lost => report.lost_races += 1,
                    Computed::Shared { file_id, pending } => shared.entry(file_id).or_default().push(pending),
                }
            }
            // A merged day is written once for all its hours the pass computed.
            for (file_id, pending) in shared {
                let (hours, rows) = (pending.len(), pending.iter().map(|p| p.state.rows).sum::<u64>());
                if self.files().rewrite(file_id, pending, &BTreeSet::new()).await? {
                    report.hours += hours;
                    report.rows += rows;
                } else {
                    report.lost_races += hours;
                }
            }
        }
        report.days_merged = self.merge_days(&version).await?;
        Ok(report)
    }

    fn files(&self) -> RollupFiles<'_> {
        RollupFiles { store: &self.store, catalog: self.catalog.as_ref(), parquet: &self.config.parquet }
    }

    /// Merges the hours of settled days into one file per day, newest days first.
    async fn merge_days(&self, version: &str) -> Result<usize> {
        let Some(after) = self.config.merge_days_after else { return Ok(0) };
        let settled_hour = (self.clock.now_ms() - after.as_millis() as i64).div_euclid(HOUR_MS);
        // Days that ended by the settle point.
        let end = day_of(settled_hour);
        let (max_bytes, limit) = (self.config.max_day_bytes, self.config.days_per_pass);
        let days = self.catalog.mergeable_rollup_days(end, version, max_bytes, limit).await?;
        let files = self.files();
        let mut merged = 0;
        for day in days {
            if files.merge_day(day).await? {
                tracing::debug!(day_hour = day, "rollup day merged");
                merged += 1;
            }
        }
        Ok(merged)
    }

    async fn rules_of(&self, tenant: &str) -> Result<SessionRules> {
        let Ok(id) = TenantId::new(tenant) else { return Ok(SessionRules::default()) };
        let config = self.settings.get(&id).await?;
        Ok(config.map(|c| SessionRules::from(&c.settings)).unwrap_or_default())
    }

    /// Computes and commits `hour`; the rows written, or `None` when another job committed
    /// the hour first.
    pub async fn compute_hour(&self, hour: i64, version: &str) -> Result<Option<u64>> {
        // Read before the events: any file that lands later has a larger id and makes the
        // hour stale again.
        let input_file_id = self.catalog.events_high_water(i64::MIN / HOUR_MS, i64::MAX / HOUR_MS).await?;
        let cache = HourCache::new(Arc::clone(&self.store), Arc::clone(&self.catalog), dataset::columns(true));
        Ok(match self.compute_with(hour, version, &cache, input_file_id).await? {
            Computed::Committed(rows) => Some(rows),
            Computed::Lost => None,
            Computed::Shared { file_id, pending } => {
                let rows = pending.state.rows;
                self.files().rewrite(file_id, vec![pending], &BTreeSet::new()).await?.then_some(rows)
            }
        })
    }

    async fn compute_with(&self, hour: i64, version: &str, cache: &HourCache, input_file_id: i64) -> Result<Computed> {
        let day = day_of(hour);
        let states = self.catalog.rollup_hours(day, day + 24).await?;
        let previous = states.iter().find(|r| r.hour == hour).map(|r| r.file_id);
        let shared = previous.is_some_and(|f| states.iter().filter(|r| r.file_id == f).count() > 1);
        let range = TimeRange { start_ms: hour * HOUR_MS, end_ms: (hour + 1) * HOUR_MS };
        let mut facts = FactsBuilder::new(range);
        let mut window = range;
        for tenant in cache.tenants(hour).await? {
            let rules = self.rules_of(&tenant).await?;
            let data = dataset::load(&cache.tenant(&tenant), range, &rules, true).await.map_err(report_error)?;
            window.start_ms = window.start_ms.min(data.window.start_ms);
            window.end_ms = window.end_ms.max(data.window.end_ms);
            facts.add(&tenant, &data, &rules);
        }
        let facts = facts.finish()?;
        let rows = run_rollups(&facts).await?;
        let state = NewRollupHour {
            hour,
            input_file_id,
            window_start_hour: window.start_ms.div_euclid(HOUR_MS),
            window_end_hour: (window.end_ms - 1).div_euclid(HOUR_MS),
            definitions: version.to_string(),
            rows: rows.as_ref().map_or(0, |b| b.num_rows() as u64),
        };
        if let (true, Some(file_id)) = (shared, previous) {
            return Ok(Computed::Shared { file_id, pending: PendingHour { state, rows } });
        }
        let Some(batch) = rows else {
            return Ok(Computed::Committed(0));
        };
        let row_count = state.rows;
        let generation = u64::try_from(input_file_id).unwrap_or(0);
        let commit = RollupCommit { computed: vec![(state, previous)], ..RollupCommit::default() };
        if self.files().write_and_commit(hour, generation, &batch, &commit).await? {
            tracing::debug!(hour, rows = row_count, "rollup hour committed");
            Ok(Computed::Committed(row_count))
        } else {
            Ok(Computed::Lost)
        }
    }
}

fn report_error(e: hourglass_report::Error) -> Error {
    Error::Report(Box::new(e))
}

/// Runs every rollup's SQL over `facts` and returns their rows in the `rollups` schema.
async fn run_rollups(facts: &hourglass_report::facts::Facts) -> Result<Option<RecordBatch>> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    udaf::register(&ctx);
    for (name, batch) in facts.tables() {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
        ctx.register_table(name, Arc::new(table))?;
    }
    let target = schema::rollups();
    let mut out = Vec::new();
    for rollup in rollups::all() {
        let batches = ctx.sql(rollup.sql).await?.collect().await?;
        for batch in batches {
            if batch.num_rows() > 0 {
                out.push(conform(&batch, rollup.name, &target)?);
            }
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(concat_batches(&target, &out)?))
}

/// A rollup's SQL result in the `rollups` schema: `hour` becomes `timestamp`, the rollup's
/// name is added, dimensions it lacks are null, counts and revenue of absent halves are 0.
fn conform(batch: &RecordBatch, rollup: &str, target: &SchemaRef) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let source = match field.name().as_str() {
            name if name == col::ROLLUP_NAME => {
                columns.push(Arc::new(StringArray::from(vec![rollup; rows])));
                continue;
            }
            name if name == col::TIMESTAMP => batch.column_by_name("hour"),
            name => batch.column_by_name(name),
        };
        let column = match source {
            Some(c) if c.data_type() == field.data_type() => Arc::clone(c),
            Some(c) => cast(c, field.data_type())?,
            None => new_null_array(field.data_type(), rows),
        };
        // Sums over an empty half are null in SQL; the table stores 0.
        let column = if !field.is_nullable() && column.null_count() > 0 { fill_zero(&column)? } else { column };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(Arc::clone(target), columns)?)
}

/// `column` with nulls replaced by zero (integers and floats).
fn fill_zero(column: &ArrayRef) -> Result<ArrayRef> {
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::DataType;
    Ok(match column.data_type() {
        DataType::Int64 => {
            let a = column.as_any().downcast_ref::<Int64Array>().ok_or(Error::Shape("Int64"))?;
            Arc::new(a.iter().map(|v| Some(v.unwrap_or(0))).collect::<Int64Array>())
        }
        DataType::Float64 => {
            let a = column.as_any().downcast_ref::<Float64Array>().ok_or(Error::Shape("Float64"))?;
            Arc::new(a.iter().map(|v| Some(v.unwrap_or(0.0))).collect::<Float64Array>())
        }
        _ => Arc::clone(column),
    })
}
