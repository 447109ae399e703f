//! Rollup files that hold more than one hour: a settled UTC day's hours merged into one file,
//! and the rewrites that keep such a file the only home of its hours' rows when one of them is
//! computed again or expires.
//!
//! A report over a month would otherwise open 720 hourly objects, and the cost of a cold read
//! is per object (its footer, its page index), not per row. Rows stay by hour inside the day
//! file, so reports in any time zone, and staleness, still work hour by hour: each hour's state
//! in the catalog names the file holding its rows, and every hour's rows are in exactly one
//! live file, so SQL over `rollups` never counts an hour twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::TimestampMillisecondType;
use hourglass_catalog::{Catalog, FileFilter, FileRecord, NewRollupHour, RollupCommit};
use hourglass_storage::ParquetOptions;
use hourglass_types::schema::{self, col};
use hourglass_types::{PartitionKey, TableName};
use object_store::ObjectStore;

use crate::objects::{delete_quietly, read_batches, write_partition_file};
use crate::{Error, Result};

const HOUR_MS: i64 = 3_600_000;
const DAY_HOURS: i64 = 24;

/// The first hour of the UTC day holding `hour`.
pub(crate) fn day_of(hour: i64) -> i64 {
    hour.div_euclid(DAY_HOURS) * DAY_HOURS
}

/// An hour computed again, waiting to be written into the shared file its rows are in.
#[derive(Debug)]
pub(crate) struct PendingHour {
    /// Its new state.
    pub state: NewRollupHour,
    /// Its new rows (`None`: it has none).
    pub rows: Option<RecordBatch>,
}

/// Writes and swaps rollup files: what the rollup job and retention share.
pub(crate) struct RollupFiles<'a> {
    /// Where rollup objects live.
    pub store: &'a Arc<dyn ObjectStore>,
    /// Where their hours are recorded.
    pub catalog: &'a dyn Catalog,
    /// How rollup files are written.
    pub parquet: &'a ParquetOptions,
}

impl RollupFiles<'_> {
    /// Writes `batch` as a rollups file of the partition starting at `first_hour` and commits
    /// it with `commit`. Returns false, deleting the object again, when another job changed
    /// those hours first.
    pub(crate) async fn write_and_commit(
        &self,
        first_hour: i64,
        generation: u64,
        batch: &RecordBatch,
        commit: &RollupCommit,
    ) -> Result<bool> {
        let key = PartitionKey { table: TableName::Rollups, hour: first_hour, shard: 0 };
        let written = write_partition_file(self.store.as_ref(), key, generation, batch, self.parquet, None).await?;
        let file = written.ok_or(Error::Shape("a rollup file with no rows"))?;
        if self.catalog.commit_rollups(commit, &file).await? {
            Ok(true)
        } else {
            delete_quietly(self.store.as_ref(), &file.path).await;
            Ok(false)
        }
    }

    /// The live rollup files holding rows of the UTC day starting at `day`, by id.
    async fn day_files(&self, day: i64) -> Result<BTreeMap<i64, FileRecord>> {
        let filter = FileFilter {
            table: TableName::Rollups,
            tenant: None,
            min_time_ms: Some(day * HOUR_MS),
            max_time_ms: Some((day + DAY_HOURS) * HOUR_MS),
        };
        Ok(self.catalog.list_files(&filter).await?.files.into_iter().map(|f| (f.id, f)).collect())
    }

    /// Writes the shared file `file_id` again: the hours of `computed` with their new rows,
    /// the hours of `expired` without theirs, every other hour in it as it was. Returns false
    /// when the file or its hours changed meanwhile (nothing is written then), and true when
    /// the new file is committed, or the old one removed because nothing is left in it.
    pub(crate) async fn rewrite(
        &self,
        file_id: i64,
        computed: Vec<PendingHour>,
        expired: &BTreeSet<i64>,
    ) -> Result<bool> {
        let Some(first) = computed.first().map(|p| p.state.hour).or_else(|| expired.first().copied()) else {
            return Ok(true);
        };
        let day = day_of(first);
        let Some(file) = self.day_files(day).await?.remove(&file_id) else { return Ok(false) };
        let states = self.catalog.rollup_hours(day, day + DAY_HOURS).await?;
        // An hour without rows has no state to remove.
        let expired: BTreeSet<i64> =
            states.iter().filter(|s| s.file_id == file_id && expired.contains(&s.hour)).map(|s| s.hour).collect();
        let changed: BTreeSet<i64> = computed.iter().map(|p| p.state.hour).chain(expired.iter().copied()).collect();
        let carried: BTreeSet<i64> =
            states.iter().filter(|s| s.file_id == file_id && !changed.contains(&s.hour)).map(|s| s.hour).collect();
        // New rows first: their schema is this build's, and carried rows are cast to it.
        let mut batches: Vec<RecordBatch> = computed.iter().filter_map(|p| p.rows.clone()).collect();
        batches.extend(rows_in_hours(read_batches(self.store, &file.file).await?, &carried)?);
        let generation = computed
            .iter()
            .map(|p| u64::try_from(p.state.input_file_id).unwrap_or(0))
            .fold(file.file.generation, u64::max);
        let commit = RollupCommit {
            computed: computed.into_iter().map(|p| (p.state, Some(file_id))).collect(),
            carried: carried.iter().map(|h| (*h, file_id)).collect(),
            expired: expired.iter().map(|h| (*h, file_id)).collect(),
        };
        if batches.iter().all(|b| b.num_rows() == 0) {
            // Nothing left to hold: the file goes whole with the hours in it (an hour that
            // still has events is computed again by the next pass).
            return Ok(self.catalog.expire_files(&[file_id]).await? > 0);
        }
        let batch = concat(&batches)?;
        drop(batches);
        self.write_and_commit(file.file.hour, generation, &batch, &commit).await
    }

    /// Merges the hours of the UTC day starting at `day` into one file, as the catalog chose
    /// it (`Catalog::mergeable_rollup_days`). Returns whether it merged: an hour or file that
    /// changed since makes the commit refuse, and a later pass sees the day as it is then.
    pub(crate) async fn merge_day(&self, day: i64) -> Result<bool> {
        let states = self.catalog.rollup_hours(day, day + DAY_HOURS).await?;
        let mut hours_of: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        for s in &states {
            hours_of.entry(s.file_id).or_default().insert(s.hour);
        }
        if hours_of.len() < 2 {
            return Ok(false);
        }
        let files = self.day_files(day).await?;
        let mut batches = Vec::new();
        let mut generation = 0;
        for (id, hours) in &hours_of {
            let Some(f) = files.get(id) else { return Ok(false) };
            generation = generation.max(f.file.generation);
            batches.extend(rows_in_hours(read_batches(self.store, &f.file).await?, hours)?);
        }
        let batch = concat(&batches)?;
        drop(batches);
        let commit =
            RollupCommit { carried: states.iter().map(|s| (s.hour, s.file_id)).collect(), ..RollupCommit::default() };
        self.write_and_commit(day, generation, &batch, &commit).await
    }
}

/// `batches` as one batch of the first one's schema, the others' columns taken by name and
/// cast to it (a file written before a column was added has it as nulls).
fn concat(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let schema = batches.first().map_or_else(schema::rollups, |b| b.schema());
    let mut conformed = Vec::with_capacity(batches.len());
    for batch in batches {
        if batch.schema() == schema {
            conformed.push(batch.clone());
            continue;
        }
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            columns.push(match batch.column_by_name(field.name()) {
                Some(c) if c.data_type() == field.data_type() => Arc::clone(c),
                Some(c) => cast(c, field.data_type())?,
                None => new_null_array(field.data_type(), batch.num_rows()),
            });
        }
        conformed.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
    }
    Ok(concat_batches(&schema, &conformed)?)
}

/// The rows of `batches` whose hour is in `hours`.
fn rows_in_hours(batches: Vec<RecordBatch>, hours: &BTreeSet<i64>) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let times = batch
            .column_by_name(col::TIMESTAMP)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or(Error::Shape("rollup timestamps"))?;
        let keep: BooleanArray =
            times.iter().map(|t| Some(t.is_some_and(|t| hours.contains(&t.div_euclid(HOUR_MS))))).collect();
        let kept = filter_record_batch(&batch, &keep)?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
    }
    Ok(out)
}
