//! Backfill jobs: rebuilds of a derived table's partitions from the raw files, queued by an
//! admin and worked through by compactors, with their progress in the catalog so that a job
//! stopped anywhere resumes where it was.

use hourglass_types::{TableName, TenantId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::dialect::Dialect;
use crate::migrate::now_ms;
use crate::rows::{non_negative, tenant_from_db};
use crate::sql_catalog::query_err;
use crate::{Error, Result};

/// Where a backfill is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillState {
    /// Waiting for a compactor.
    Queued,
    /// A compactor is working through it (or was, until it stopped renewing its claim).
    Running,
    /// Every partition of the range is rebuilt.
    Done,
    /// Stopped by an error it cannot get past; `error` says which.
    Failed,
    /// Stopped by an admin; partitions already rebuilt stay rebuilt.
    Cancelled,
}

impl BackfillState {
    /// The name the catalog and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Done, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// What to rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBackfill {
    /// The derived table.
    pub table: TableName,
    /// Only this tenant's rows; `None` for every tenant.
    pub tenant: Option<TenantId>,
    /// First hour of the range (hours since the epoch).
    pub from_hour: i64,
    /// First hour after the range.
    pub to_hour: i64,
    /// The processor version to rebuild with.
    pub processor_version: i32,
}

/// A backfill as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    /// Catalog id.
    pub id: i64,
    /// What it rebuilds.
    pub spec: NewBackfill,
    /// Where it is.
    pub state: BackfillState,
    /// Its progress.
    pub progress: BackfillProgress,
    /// The compactor working on it (or that last did).
    pub owner: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was queued, epoch ms (the catalog's clock, as every time here).
    pub created_at_ms: i64,
    /// When a compactor first claimed it.
    pub started_at_ms: Option<i64>,
    /// When its owner last reported progress.
    pub updated_at_ms: i64,
    /// When it ended.
    pub finished_at_ms: Option<i64>,
}

/// How far a backfill got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillProgress {
    /// Hours before this one are rebuilt; a resumed job starts here.
    pub next_hour: i64,
    /// Partitions rebuilt.
    pub partitions_done: u64,
    /// Partitions left as they were because their raw files are gone (retention).
    pub partitions_skipped: u64,
    /// Raw rows read.
    pub rows_read: u64,
    /// Derived rows written.
    pub rows_written: u64,
}

/// The columns [`from_row`] reads, as a literal for `concat!` (sqlx takes only literal SQL).
macro_rules! columns {
    () => {
        "id, table_name, tenant_id, from_hour, to_hour, processor_version, state, next_hour, partitions_done, \
         partitions_skipped, rows_read, rows_written, owner, error, created_at, started_at, updated_at, finished_at"
    };
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_row(row: &AnyRow) -> Result<Backfill> {
    let read = |source| Error::Query { operation: "reading a backfill", source };
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(read);
    let opt_int = |name: &str| row.try_get::<Option<i64>, _>(name).map_err(read);
    let opt_text = |name: &str| row.try_get::<Option<String>, _>(name).map_err(read);
    let table: String = row.try_get("table_name").map_err(read)?;
    let table = TableName::parse(&table).ok_or(Error::Invalid { what: "table name", value: table })?;
    let state: String = row.try_get("state").map_err(read)?;
    let state = BackfillState::parse(&state).ok_or(Error::Invalid { what: "backfill state", value: state })?;
    let version = int("processor_version")?;
    Ok(Backfill {
        id: int("id")?,
        spec: NewBackfill {
            table,
            tenant: opt_text("tenant_id")?.map(tenant_from_db).transpose()?,
            from_hour: int("from_hour")?,
            to_hour: int("to_hour")?,
            processor_version: i32::try_from(version)
                .map_err(|_| Error::Invalid { what: "processor version", value: version.to_string() })?,
        },
        state,
        progress: BackfillProgress {
            next_hour: int("next_hour")?,
            partitions_done: non_negative("partition count", int("partitions_done")?)?,
            partitions_skipped: non_negative("partition count", int("partitions_skipped")?)?,
            rows_read: non_negative("row count", int("rows_read")?)?,
            rows_written: non_negative("row count", int("rows_written")?)?,
        },
        owner: opt_text("owner")?,
        error: opt_text("error")?,
        created_at_ms: int("created_at")?,
        started_at_ms: opt_int("started_at")?,
        updated_at_ms: int("updated_at")?,
        finished_at_ms: opt_int("finished_at")?,
    })
}

pub(crate) async fn create(pool: &AnyPool, spec: &NewBackfill) -> Result<Backfill> {
    let now = now_ms();
    let row = sqlx::query(concat!(
        "INSERT INTO backfills (table_name, tenant_id, from_hour, to_hour, processor_version, state, next_hour, \
         partitions_done, partitions_skipped, rows_read, rows_written, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'queued', $3, 0, 0, 0, 0, $6, $6) RETURNING ",
        columns!()
    ))
    .bind(spec.table.as_str())
    .bind(spec.tenant.as_ref().map(|t| t.as_str().to_string()))
    .bind(spec.from_hour)
    .bind(spec.to_hour)
    .bind(i64::from(spec.processor_version))
    .bind(now)
    .fetch_one(pool)
    .await
    .map_err(query_err("queueing a backfill"))?;
    from_row(&row)
}

pub(crate) async fn list(pool: &AnyPool, limit: u32) -> Result<Vec<Backfill>> {
    let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM backfills ORDER BY id DESC LIMIT $1"))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(query_err("listing backfills"))?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get(pool: &AnyPool, id: i64) -> Result<Option<Backfill>> {
    let row = sqlx::query(concat!("SELECT ", columns!(), " FROM backfills WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(query_err("reading a backfill"))?;
    row.as_ref().map(from_row).transpose()
}

/// A job `owner` ($1) may take: queued, or running but abandoned (no progress since $2), or
/// running under `owner`'s own name (the same node, restarted).
macro_rules! claimable {
    () => {
        "(state = 'queued' OR (state = 'running' AND (owner = $1 OR updated_at < $2)))"
    };
}

pub(crate) async fn claim(pool: &AnyPool, dialect: Dialect, owner: &str, lease_ms: i64) -> Result<Option<Backfill>> {
    let now = now_ms();
    let stale_before = now - lease_ms;
    let mut tx = pool.begin_with(dialect.begin_write()).await.map_err(query_err("starting a backfill claim"))?;
    let candidate: Option<i64> =
        sqlx::query_scalar(concat!("SELECT id FROM backfills WHERE ", claimable!(), " ORDER BY id LIMIT 1"))
            .bind(owner)
            .bind(stale_before)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_err("finding a backfill to run"))?;
    let Some(id) = candidate else {
        tx.rollback().await.map_err(query_err("ending a backfill claim"))?;
        return Ok(None);
    };
    // The condition is tested again under the row lock: of two compactors that found the
    // same job, the second finds it freshly claimed and takes nothing.
    let row = sqlx::query(concat!(
        "UPDATE backfills SET state = 'running', owner = $1, updated_at = $3, started_at = COALESCE(started_at, $3) \
         WHERE id = $4 AND ",
        claimable!(),
        " RETURNING ",
        columns!()
    ))
    .bind(owner)
    .bind(stale_before)
    .bind(now)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(query_err("claiming a backfill"))?;
    tx.commit().await.map_err(query_err("committing a backfill claim"))?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn record_progress(pool: &AnyPool, id: i64, owner: &str, p: &BackfillProgress) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE backfills SET next_hour = $3, partitions_done = $4, partitions_skipped = $5, rows_read = $6, \
         rows_written = $7, updated_at = $8 WHERE id = $1 AND owner = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(p.next_hour)
    .bind(signed(p.partitions_done))
    .bind(signed(p.partitions_skipped))
    .bind(signed(p.rows_read))
    .bind(signed(p.rows_written))
    .bind(now_ms())
    .execute(pool)
    .await
    .map_err(query_err("recording backfill progress"))?;
    Ok(updated.rows_affected() == 1)
}

pub(crate) async fn finish(pool: &AnyPool, id: i64, owner: &str, error: Option<&str>) -> Result<bool> {
    let now = now_ms();
    let state = if error.is_some() { BackfillState::Failed } else { BackfillState::Done };
    let updated = sqlx::query(
        "UPDATE backfills SET state = $3, error = $4, updated_at = $5, finished_at = $5 \
         WHERE id = $1 AND owner = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(state.as_str())
    .bind(error)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_err("finishing a backfill"))?;
    Ok(updated.rows_affected() == 1)
}

pub(crate) async fn cancel(pool: &AnyPool, id: i64) -> Result<Option<Backfill>> {
    let now = now_ms();
    sqlx::query(
        "UPDATE backfills SET state = 'cancelled', updated_at = $2, finished_at = $2 \
         WHERE id = $1 AND state IN ('queued', 'running')",
    )
    .bind(id)
    .bind(now)
    .execute(pool)
    .await
    .map_err(query_err("cancelling a backfill"))?;
    get(pool, id).await
}

/// The `events` files of one hour derived by one processor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionHour {
    /// The hour (hours since the epoch).
    pub hour: i64,
    /// The processor version.
    pub processor_version: i32,
    /// Files of that version in the hour.
    pub files: u64,
    /// Rows in them.
    pub rows: u64,
}

/// A run of hours whose `events` files were derived by one processor version: every hour
/// with events between `from_hour` and `to_hour` has files of this version (and possibly of
/// others too, while a backfill of part of the tenants or of the hour is under way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    /// The processor version.
    pub processor_version: i32,
    /// First hour of the run (hours since the epoch).
    pub from_hour: i64,
    /// First hour after the run.
    pub to_hour: i64,
    /// Hours in the run that hold events.
    pub hours: u64,
    /// Files of this version in the run.
    pub files: u64,
    /// Rows in those files.
    pub rows: u64,
}

/// Folds per-hour versions into runs, by version, then by time. Hours without events do not
/// break a run; an hour with events of other versions only does.
pub fn version_ranges(hours: &[VersionHour]) -> Vec<VersionRange> {
    let mut data_hours: Vec<i64> = hours.iter().map(|h| h.hour).collect();
    data_hours.sort_unstable();
    data_hours.dedup();
    let mut versions: Vec<i32> = hours.iter().map(|h| h.processor_version).collect();
    versions.sort_unstable();
    versions.dedup();
    let mut ranges = Vec::new();
    for version in versions {
        let mine: std::collections::HashMap<i64, &VersionHour> =
            hours.iter().filter(|h| h.processor_version == version).map(|h| (h.hour, h)).collect();
        let mut current: Option<VersionRange> = None;
        for hour in &data_hours {
            match (mine.get(hour), current.as_mut()) {
                (Some(h), Some(run)) => {
                    run.to_hour = hour + 1;
                    run.hours += 1;
                    run.files += h.files;
                    run.rows += h.rows;
                }
                (Some(h), None) => {
                    current = Some(VersionRange {
                        processor_version: version,
                        from_hour: *hour,
                        to_hour: hour + 1,
                        hours: 1,
                        files: h.files,
                        rows: h.rows,
                    });
                }
                (None, Some(_)) => ranges.extend(current.take()),
                (None, None) => {}
            }
        }
        ranges.extend(current);
    }
    ranges.sort_by_key(|r| (r.from_hour, r.processor_version));
    ranges
}

pub(crate) async fn version_hours(pool: &AnyPool) -> Result<Vec<VersionHour>> {
    let rows = sqlx::query(
        "SELECT hour, processor_version, COUNT(*) AS files, CAST(SUM(rows) AS BIGINT) AS total FROM files \
         WHERE table_name = 'events' AND processor_version IS NOT NULL \
         GROUP BY hour, processor_version ORDER BY hour, processor_version",
    )
    .fetch_all(pool)
    .await
    .map_err(query_err("listing processor versions"))?;
    rows.iter()
        .map(|row| {
            let read = |source| Error::Query { operation: "reading processor versions", source };
            let version: i64 = row.try_get("processor_version").map_err(read)?;
            Ok(VersionHour {
                hour: row.try_get("hour").map_err(read)?,
                processor_version: i32::try_from(version)
                    .map_err(|_| Error::Invalid { what: "processor version", value: version.to_string() })?,
                files: non_negative("file count", row.try_get("files").map_err(read)?)?,
                rows: non_negative("row count", row.try_get("total").map_err(read)?)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(hour: i64, processor_version: i32) -> VersionHour {
        VersionHour { hour, processor_version, files: 1, rows: 10 }
    }

    #[test]
    fn runs_skip_empty_hours_and_break_at_other_versions() {
        let hours = [hour(10, 3), hour(11, 3), hour(15, 3), hour(16, 4), hour(17, 3), hour(17, 4), hour(18, 4)];
        let ranges: Vec<(i32, i64, i64, u64)> =
            version_ranges(&hours).iter().map(|r| (r.processor_version, r.from_hour, r.to_hour, r.hours)).collect();
        assert_eq!(ranges, [(3, 10, 16, 3), (4, 16, 19, 3), (3, 17, 18, 1)]);
    }
}
