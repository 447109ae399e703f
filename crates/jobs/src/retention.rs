//! Retention: data older than a tenant's retention of a table leaves the catalog, then storage.
//!
//! Tenants share files, so a partition is removed whole only once every tenant's retention of
//! its table has passed; before that, a file holding rows of tenants whose retention passed is
//! rewritten without them and swapped in atomically, like a compaction. A file found clean
//! (or rewritten) carries the rule it satisfies as its retention mark, so each file is read
//! once per change of its hour's rule rather than on every pass. Removed and replaced objects
//! become garbage, deleted by the compactor after the grace period. Rollups follow `events`:
//! whole rollup hours expire with the events hour, and a purge of events files makes the
//! rollup hours over them stale, so the rollup job computes them again without the purged
//! tenants. A merged day of rollups is rewritten without each hour that expires, and leaves
//! whole with its last hour.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use hourglass_catalog::{Catalog, Error as CatalogError, FileFilter, FileRecord};
use hourglass_storage::ParquetOptions;
use hourglass_types::schema::col;
use hourglass_types::settings::RetentionDays;
use hourglass_types::{Clock, PartitionKey, TableName};

use crate::objects::{delete_quietly, read_batches, write_partition_file};
use crate::rollup::{RollupFiles, rollup_parquet};
use crate::{Error, Result};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Files expired in one catalog transaction.
const EXPIRE_BATCH: usize = 500;

/// How long data is kept and who rewrites files.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Recorded in the catalog as the writer of rewritten files.
    pub writer_id: String,
    /// The deployment's days per table, for tenants that set none (`None`: forever).
    pub defaults: RetentionDays,
    /// How rewritten files are written.
    pub parquet: ParquetOptions,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            writer_id: "compactor".to_string(),
            defaults: RetentionDays::default(),
            parquet: ParquetOptions::default(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files removed whole: every tenant's retention of their hour had passed.
    pub files_expired: u64,
    /// Files rewritten without the rows of tenants whose retention had passed.
    pub files_purged: u64,
    /// Rows those rewrites dropped.
    pub rows_purged: u64,
    /// Files read and found to hold no expired rows.
    pub files_clean: u64,
    /// Rewrites abandoned because another job replaced the file first (done next pass).
    pub lost_races: u64,
}

/// What a table's retention does to the rows of one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HourRule {
    /// Every tenant's rows stay.
    KeepAll,
    /// Every tenant's retention has passed.
    ExpireAll,
    /// These tenants' retention has passed; the others' rows stay.
    Drop(BTreeSet<String>),
    /// Only these tenants' rows stay (the deployment default has passed, these tenants keep
    /// their data longer).
    KeepOnly(BTreeSet<String>),
}

impl HourRule {
    /// Whether `tenant`'s rows of the hour stay.
    pub fn keeps(&self, tenant: &str) -> bool {
        match self {
            Self::KeepAll => true,
            Self::ExpireAll => false,
            Self::Drop(gone) => !gone.contains(tenant),
            Self::KeepOnly(kept) => kept.contains(tenant),
        }
    }

    /// A stable name of the rule, recorded on the files that satisfy it.
    fn mark(&self) -> String {
        let (kind, tenants) = match self {
            Self::KeepAll => return "keep-all".to_string(),
            Self::ExpireAll => return "expire-all".to_string(),
            Self::Drop(t) => ("drop", t),
            Self::KeepOnly(t) => ("keep", t),
        };
        format!("{kind}:{}:{:032x}", tenants.len(), fingerprint(tenants))
    }

    /// What a file holding tenants `min..=max` needs, by the catalog's tenant range alone.
    fn needs(&self, min: &str, max: &str) -> Needs {
        let range = || (std::ops::Bound::Included(min), std::ops::Bound::Included(max));
        match self {
            Self::KeepAll => Needs::Nothing,
            Self::ExpireAll => Needs::Expiry,
            Self::Drop(gone) if gone.range::<str, _>(range()).next().is_none() => Needs::Nothing,
            Self::KeepOnly(kept) if kept.range::<str, _>(range()).next().is_none() => Needs::Expiry,
            Self::KeepOnly(kept) if min == max && kept.contains(min) => Needs::Nothing,
            Self::Drop(_) | Self::KeepOnly(_) => Needs::Reading,
        }
    }
}

/// What the catalog's tenant range says of a file.
enum Needs {
    Nothing,
    Expiry,
    Reading,
}

/// A 128-bit FNV-1a hash of the sorted tenant ids: stable across builds, unlike the
/// standard library's hasher, since marks outlive the process that wrote them.
fn fingerprint(tenants: &BTreeSet<String>) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for tenant in tenants {
        for byte in tenant.bytes().chain(std::iter::once(0)) {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// One table's retention at one moment: from which hour on each tenant's rows stay.
#[derive(Debug, Clone, Default)]
pub struct TablePolicy {
    /// Hours before this are expired for tenants that set no retention (`None`: kept).
    default_cutoff: Option<i64>,
    /// Tenants with their own retention, and their cutoff hours.
    tenants: BTreeMap<String, i64>,
}

/// The first hour kept by a retention of `days` at `now_ms`: an hour goes once it ended
/// `days` days ago.
fn cutoff_hour(now_ms: i64, days: u32) -> i64 {
    (now_ms - i64::from(days) * DAY_MS).div_euclid(HOUR_MS)
}

impl TablePolicy {
    /// The rule for `hour`.
    pub fn rule(&self, hour: i64) -> HourRule {
        let default_expired = self.default_cutoff.is_some_and(|c| hour < c);
        let (kept, gone): (Vec<&String>, Vec<&String>) = {
            let (k, g): (Vec<_>, Vec<_>) = self.tenants.iter().partition(|(_, cutoff)| hour >= **cutoff);
            (k.into_iter().map(|(t, _)| t).collect(), g.into_iter().map(|(t, _)| t).collect())
        };
        match (default_expired, kept.is_empty(), gone.is_empty()) {
            (false, _, true) => HourRule::KeepAll,
            (false, _, false) => HourRule::Drop(gone.into_iter().cloned().collect()),
            (true, true, _) => HourRule::ExpireAll,
            (true, false, _) => HourRule::KeepOnly(kept.into_iter().cloned().collect()),
        }
    }
}

/// Every table's retention at one moment.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Of `raw_events`.
    pub raw_events: TablePolicy,
    /// Of `events`, and of the rollups derived from them.
    pub events: TablePolicy,
}

impl Policies {
    /// The policies of the deployment's `defaults` and every tenant's settings at `now_ms`.
    pub async fn load(catalog: &dyn Catalog, defaults: RetentionDays, now_ms: i64) -> Result<Self> {
        let mut policies = Self {
            raw_events: TablePolicy {
                default_cutoff: defaults.raw_events.map(|d| cutoff_hour(now_ms, d)),
                ..Default::default()
            },
            events: TablePolicy {
                default_cutoff: defaults.events.map(|d| cutoff_hour(now_ms, d)),
                ..Default::default()
            },
        };
        for (tenant, settings) in catalog.all_tenant_settings().await? {
            let own = settings.retention;
            if let Some(days) = own.raw_events {
                policies.raw_events.tenants.insert(tenant.as_str().to_string(), cutoff_hour(now_ms, days));
            }
            if let Some(days) = own.events {
                policies.events.tenants.insert(tenant.as_str().to_string(), cutoff_hour(now_ms, days));
            }
        }
        Ok(policies)
    }

    /// The policy of `table` (rollups follow events).
    pub fn of(&self, table: TableName) -> &TablePolicy {
        match table {
            TableName::RawEvents => &self.raw_events,
            TableName::Events | TableName::Rollups => &self.events,
        }
    }
}

/// Removes expired data; one pass at a time per process, any number of processes at once.
#[derive(Debug)]
pub struct Retention {
    config: RetentionConfig,
    store: Arc<dyn object_store::ObjectStore>,
    catalog: Arc<dyn Catalog>,
    clock: Arc<dyn Clock>,
    rollup_parquet: ParquetOptions,
}

impl Retention {
    /// A retention job over this store and catalog.
    pub fn new(
        config: RetentionConfig,
        store: Arc<dyn object_store::ObjectStore>,
        catalog: Arc<dyn Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { config, store, catalog, clock, rollup_parquet: rollup_parquet() }
    }

    /// Runs passes every `interval` until `stop` resolves.
    pub async fn run(&self, interval: Duration, stop: impl Future<Output = ()>) {
        crate::every("retention", interval, stop, || self.run_once()).await;
    }

    /// One pass over every table.
    pub async fn run_once(&self) -> Result<RetentionReport> {
        let policies = Policies::load(self.catalog.as_ref(), self.config.defaults, self.clock.now_ms()).await?;
        let mut report = RetentionReport::default();
        for table in TableName::ALL {
            self.table_pass(table, policies.of(table), &mut report).await?;
        }
        Ok(report)
    }

    async fn table_pass(&self, table: TableName, policy: &TablePolicy, report: &mut RetentionReport) -> Result<()> {
        let filter = FileFilter { table, tenant: None, min_time_ms: None, max_time_ms: None };
        let files = self.catalog.list_files(&filter).await?.files;
        let mut expire = Vec::new();
        let mut clean: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut rules: BTreeMap<i64, HourRule> = BTreeMap::new();
        for f in files {
            let rule = rules.entry(f.file.hour).or_insert_with(|| policy.rule(f.file.hour));
            if *rule == HourRule::KeepAll {
                continue;
            }
            let mark = rule.mark();
            if f.file.retention_mark.as_deref() == Some(mark.as_str()) {
                continue;
            }
            match rule.needs(&f.file.min_tenant, &f.file.max_tenant) {
                Needs::Nothing => clean.entry(mark).or_default().push(f.id),
                // A merged day of rollups: its first hour expired, later ones may not have.
                Needs::Expiry if table == TableName::Rollups && last_hour(&f) > f.file.hour => {
                    match self.expire_rollup_hours(&f, policy).await? {
                        DayExpiry::Whole => expire.push(f.id),
                        DayExpiry::Rewritten => report.files_purged += 1,
                        DayExpiry::LostRace => report.lost_races += 1,
                        DayExpiry::Nothing => {}
                    }
                }
                Needs::Expiry => expire.push(f.id),
                // A purge of events makes the rollup hours over them stale, and the rollup
                // job computes them again from what is left.
                Needs::Reading if table == TableName::Rollups => {}
                Needs::Reading => match self.purge(&f, rule, mark.clone()).await? {
                    Purged::Clean => {
                        report.files_clean += 1;
                        clean.entry(mark).or_default().push(f.id);
                    }
                    Purged::Empty => expire.push(f.id),
                    Purged::Rewritten { rows_dropped } => {
                        report.files_purged += 1;
                        report.rows_purged += rows_dropped;
                    }
                    Purged::LostRace => report.lost_races += 1,
                },
            }
        }
        for (mark, ids) in clean {
            self.catalog.mark_retention(&ids, &mark).await?;
        }
        for chunk in expire.chunks(EXPIRE_BATCH) {
            report.files_expired += self.catalog.expire_files(chunk).await?;
        }
        Ok(())
    }

    /// What to do with the merged day of rollups `file`, whose first hour expired: remove it
    /// whole once its last hour expired too, else rewrite it without the hours that did.
    async fn expire_rollup_hours(&self, file: &FileRecord, policy: &TablePolicy) -> Result<DayExpiry> {
        let (first, last) = (file.file.min_time_ms.div_euclid(HOUR_MS), last_hour(file));
        let expired: BTreeSet<i64> = (first..=last)
            .filter(|h| matches!(policy.rule(*h).needs(&file.file.min_tenant, &file.file.max_tenant), Needs::Expiry))
            .collect();
        if expired.contains(&last) {
            return Ok(DayExpiry::Whole);
        }
        // Empty when an earlier pass already rewrote it without its expired hours.
        if expired.is_empty() {
            return Ok(DayExpiry::Nothing);
        }
        let files = RollupFiles { store: &self.store, catalog: self.catalog.as_ref(), parquet: &self.rollup_parquet };
        Ok(if files.rewrite(file.id, Vec::new(), &expired).await? { DayExpiry::Rewritten } else { DayExpiry::LostRace })
    }

    /// Rewrites `file` without the rows `rule` drops.
    async fn purge(&self, file: &FileRecord, rule: &HourRule, mark: String) -> Result<Purged> {
        let mut kept = Vec::new();
        let mut dropped = 0u64;
        for batch in read_batches(&self.store, &file.file).await? {
            let keep = tenant_mask(&batch, |t| rule.keeps(t))?;
            dropped += keep.false_count() as u64;
            let rows = filter_record_batch(&batch, &keep)?;
            if rows.num_rows() > 0 {
                kept.push(rows);
            }
        }
        if dropped == 0 {
            return Ok(Purged::Clean);
        }
        let Some(first) = kept.first() else { return Ok(Purged::Empty) };
        let merged = concat_batches(&first.schema(), &kept)?;
        drop(kept);
        let key = PartitionKey { table: file.file.table, hour: file.file.hour, shard: file.file.shard };
        let written = write_partition_file(
            self.store.as_ref(),
            key,
            file.file.generation,
            &merged,
            &self.config.parquet,
            file.file.processor_version,
        )
        .await?;
        let Some(mut rewritten) = written else { return Ok(Purged::Empty) };
        rewritten.retention_mark = Some(mark);
        let path = rewritten.path.clone();
        match self.catalog.replace_files(&self.config.writer_id, &[file.id], &[rewritten]).await {
            Ok(()) => {
                tracing::info!(
                    table = file.file.table.as_str(),
                    hour = file.file.hour,
                    shard = file.file.shard,
                    rows_dropped = dropped,
                    "purged expired rows"
                );
                Ok(Purged::Rewritten { rows_dropped: dropped })
            }
            Err(CatalogError::FilesGone { .. }) => {
                delete_quietly(self.store.as_ref(), &path).await;
                Ok(Purged::LostRace)
            }
            // The commit may have happened despite the error: leave the object.
            Err(e) => Err(e.into()),
        }
    }
}

/// How a purge of one file ended.
enum Purged {
    /// It held no expired rows.
    Clean,
    /// It held nothing but expired rows.
    Empty,
    /// It was replaced by a file without them.
    Rewritten { rows_dropped: u64 },
    /// Another job replaced it first.
    LostRace,
}

/// Per row of `batch`, whether `keep` holds for its tenant id; rows without one stay.
pub(crate) fn tenant_mask(batch: &RecordBatch, keep: impl Fn(&str) -> bool) -> Result<BooleanArray> {
    let tenants = batch
        .column_by_name(col::TENANT_ID)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(Error::Shape("tenant_id as Utf8"))?;
    Ok((0..batch.num_rows()).map(|i| Some(tenants.is_null(i) || keep(tenants.value(i)))).collect())
}

/// What retention did with a merged day of rollups.
enum DayExpiry {
    /// Every hour in it expired: it leaves whole.
    Whole,
    /// Rewritten without its expired hours.
    Rewritten,
    /// Its hours changed under the rewrite; the next pass tries again.
    LostRace,
    /// None of the hours left in it expired.
    Nothing,
}

/// The last hour a file holds rows of (a merged day of rollups holds several).
fn last_hour(f: &FileRecord) -> i64 {
    f.file.max_time_ms.div_euclid(HOUR_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(default_days: Option<u32>, tenants: &[(&str, u32)], now_ms: i64) -> TablePolicy {
        TablePolicy {
            default_cutoff: default_days.map(|d| cutoff_hour(now_ms, d)),
            tenants: tenants.iter().map(|(t, d)| (t.to_string(), cutoff_hour(now_ms, *d))).collect(),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_hour_goes_once_it_ended_the_retention_ago() {
        let now = 1_000 * DAY_MS + 30 * 60_000;
        let p = policy(Some(2), &[], now);
        // The hour that ended 47.5 h ago stays; the one before it, which ended 48.5 h ago, goes.
        let first_kept = 1_000 * 24 - 48;
        assert_eq!(p.rule(first_kept), HourRule::KeepAll);
        assert_eq!(p.rule(first_kept - 1), HourRule::ExpireAll);
        assert_eq!(policy(None, &[], now).rule(0), HourRule::KeepAll, "no retention keeps everything");
    }

    #[test]
    fn tenants_shorten_or_lengthen_the_default() {
        let now = 1_000 * DAY_MS;
        let p = policy(Some(10), &[("short", 2), ("long", 30)], now);
        let day = |d: i64| 1_000 * 24 - d * 24;
        assert_eq!(p.rule(day(1)), HourRule::KeepAll);
        assert_eq!(p.rule(day(3)), HourRule::Drop(set(&["short"])));
        assert_eq!(p.rule(day(11)), HourRule::KeepOnly(set(&["long"])));
        assert_eq!(p.rule(day(31)), HourRule::ExpireAll);
        let forever = policy(None, &[("short", 2)], now);
        assert_eq!(forever.rule(day(500)), HourRule::Drop(set(&["short"])));
    }

    #[test]
    fn tenant_ranges_decide_without_reading_where_they_can() {
        let drop = HourRule::Drop(set(&["b"]));
        assert!(matches!(drop.needs("c", "z"), Needs::Nothing));
        assert!(matches!(drop.needs("a", "c"), Needs::Reading));
        let keep = HourRule::KeepOnly(set(&["b"]));
        assert!(matches!(keep.needs("c", "z"), Needs::Expiry));
        assert!(matches!(keep.needs("b", "b"), Needs::Nothing));
        assert!(matches!(keep.needs("a", "b"), Needs::Reading));
    }

    #[test]
    fn marks_name_the_rule_and_its_tenants() {
        let a = HourRule::Drop(set(&["x", "y"]));
        assert_eq!(a.mark(), HourRule::Drop(set(&["y", "x"])).mark());
        assert_ne!(a.mark(), HourRule::Drop(set(&["x"])).mark());
        assert_ne!(a.mark(), HourRule::KeepOnly(set(&["x", "y"])).mark());
        // Tenant ids cannot run together into one another.
        assert_ne!(HourRule::Drop(set(&["ab", "c"])).mark(), HourRule::Drop(set(&["a", "bc"])).mark());
        assert_eq!(a.mark(), "drop:2:".to_string() + &format!("{:032x}", fingerprint(&set(&["x", "y"]))));
    }
}
