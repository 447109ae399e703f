//! Hourglass catalog: tenants and their credentials, the Parquet files of every partition, and
//! how far each ingester's WAL is persisted.
//!
//! The catalog and the object store are Hourglass's only persistent state. [`Catalog`] is the
//! contract; [`SqlCatalog`] implements it on SQLite (embedded mode, one process) and on
//! PostgreSQL (a cluster, where every node shares one catalog). Both run the versioned
//! migrations in `sql/sqlite/` and `sql/postgres/` at start, safely when several nodes start
//! at once.
//!
//! # Consistency contract
//!
//! [`Catalog::commit_persist`] records a batch of files and the ingester's new persisted WAL
//! position in one transaction. [`Catalog::list_files`] returns the files together with every
//! ingester's persisted position from one snapshot. A querier relies on this: an ingester's
//! buffered chunk whose WAL position is at or below the listed position is already in the
//! listed files and must be skipped, so each event is read exactly once.
//!
//! [`Catalog::replace_files`] swaps files for others in one transaction and fails if any file
//! to remove is already gone, so two compactors racing over the same files cannot both win: no
//! file is lost and none is registered twice.

pub mod backfills;
mod dialect;
pub mod membership;
mod migrate;
mod rows;
pub mod secret;
mod settings_cache;
mod sql_catalog;
mod token_cache;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use hourglass_types::settings::{InvalidSetting, SettingsPatch};
use hourglass_types::{ErrorKind, FileStats, PartitionKey, TableName, TenantId, TenantSettings};

pub use backfills::{
    Backfill, BackfillProgress, BackfillState, NewBackfill, VersionHour, VersionRange, version_ranges,
};
pub use membership::Membership;
pub use settings_cache::{SETTINGS_TTL, SettingsCache};
pub use sql_catalog::{CatalogOptions, SqlCatalog, redact_url};
pub use token_cache::TokenCache;

/// The error with its sources, for logs.
pub(crate) fn display(e: &Error) -> String {
    hourglass_types::error::display_chain(e)
}

/// Errors from catalog operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tenant id is already taken.
    #[error("tenant {tenant} already exists")]
    TenantExists {
        /// The tenant.
        tenant: String,
    },
    /// The catalog database could not be opened.
    #[error("opening the catalog at {location}")]
    Open {
        /// Where the catalog lives.
        location: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A schema migration failed.
    #[error("applying catalog migration {version}")]
    Migrate {
        /// The migration's version.
        version: i64,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("catalog {operation}")]
    Query {
        /// What was being done.
        operation: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The catalog URL names no backend Hourglass has.
    #[error("unsupported catalog url {url}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl {
        /// The URL, with any password masked.
        url: String,
    },
    /// Files to replace were already removed by someone else (a racing compactor).
    #[error("{missing} of the files to replace are no longer in the catalog")]
    FilesGone {
        /// How many were missing.
        missing: usize,
    },
    /// Another live process holds this node id.
    #[error("node id {id} is held by another live process (heartbeat {age_ms} ms ago)")]
    NodeIdTaken {
        /// The node id.
        id: String,
        /// How long ago the holder last renewed its lease.
        age_ms: i64,
    },
    /// The database holds migrations newer than this binary knows: a newer Hourglass upgraded it.
    #[error("catalog schema version {found} is newer than this binary's {supported}; upgrade hourglass")]
    SchemaTooNew {
        /// The newest applied version.
        found: i64,
        /// The newest version this binary has.
        supported: i64,
    },
    /// Another import of the same table committed first.
    #[error("table {name} was imported again while this import ran; retry it")]
    ImportRaced {
        /// The table.
        name: String,
    },
    /// A settings update carries a value out of range.
    #[error("invalid setting {0}")]
    InvalidSetting(#[from] InvalidSetting),
    /// A stored value is not what this version of Hourglass wrote.
    #[error("catalog holds an invalid {what}: {value}")]
    Invalid {
        /// What kind of value.
        what: &'static str,
        /// The value.
        value: String,
    },
}

impl Error {
    /// How the failure should be reported to clients.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TenantExists { .. }
            | Self::FilesGone { .. }
            | Self::NodeIdTaken { .. }
            | Self::ImportRaced { .. } => ErrorKind::Conflict,
            Self::Open { .. } | Self::Query { .. } => ErrorKind::Unavailable,
            Self::UnsupportedUrl { .. } | Self::InvalidSetting(_) => ErrorKind::InvalidArgument,
            Self::Migrate { .. } | Self::Invalid { .. } | Self::SchemaTooNew { .. } => ErrorKind::Internal,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who a credential belongs to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Administers the deployment: creates tenants, flushes buffers.
    Admin,
    /// May ingest events for this tenant.
    Writer(TenantId),
    /// May read this tenant's data.
    Reader(TenantId),
}

/// A Parquet file to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Table the file belongs to.
    pub table: TableName,
    /// Partition hour (hours since the epoch).
    pub hour: i64,
    /// Partition shard.
    pub shard: u32,
    /// Partition generation the file belongs to.
    pub generation: u64,
    /// Object key.
    pub path: String,
    /// Smallest tenant id in the file.
    pub min_tenant: String,
    /// Largest tenant id in the file.
    pub max_tenant: String,
    /// Earliest event timestamp, epoch ms.
    pub min_time_ms: i64,
    /// Latest event timestamp, epoch ms.
    pub max_time_ms: i64,
    /// Row count.
    pub rows: u64,
    /// Size in bytes: of the object, or of the segment when the file is one.
    pub bytes: u64,
    /// Where the file's rows lie when it shares its object with other hours (a day object);
    /// `None` when the file is the whole object.
    pub segment: Option<Segment>,
    /// Processor version of derived tables; `None` for raw files.
    pub processor_version: Option<i32>,
    /// The retention rule the file's rows are known to satisfy (set by the retention pass);
    /// `None` when no pass has checked them.
    pub retention_mark: Option<String>,
}

impl NewFile {
    /// A file of `partition` and `generation` at `path`, `bytes` long, holding rows described
    /// by `stats`.
    pub fn new(
        partition: PartitionKey,
        generation: u64,
        path: String,
        bytes: u64,
        stats: FileStats,
        processor_version: Option<i32>,
    ) -> Self {
        Self {
            table: partition.table,
            hour: partition.hour,
            shard: partition.shard,
            generation,
            path,
            min_tenant: stats.min_tenant,
            max_tenant: stats.max_tenant,
            min_time_ms: stats.min_time_ms,
            max_time_ms: stats.max_time_ms,
            rows: stats.rows,
            bytes,
            segment: None,
            processor_version,
            retention_mark: None,
        }
    }

    /// Size of the whole object the file's rows are in (a reader finds the footer with it).
    pub fn object_bytes(&self) -> u64 {
        self.segment.map_or(self.bytes, |s| s.object_bytes)
    }
}

/// The part of a shared object (a day object) that holds one file's rows: whole row groups,
/// those whose first column chunk starts in `start..end`, the rule DataFusion applies to a
/// scan's byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First byte of the file's first row group.
    pub start: u64,
    /// One past the last byte of its last row group.
    pub end: u64,
    /// Size of the whole object.
    pub object_bytes: u64,
}

impl Segment {
    /// Whether the row group whose first column chunk starts at `offset` is the file's.
    pub fn holds(&self, offset: u64) -> bool {
        self.start <= offset && offset < self.end
    }
}

/// A recorded Parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Catalog id.
    pub id: i64,
    /// What was recorded.
    pub file: NewFile,
    /// Ingester that wrote it.
    pub ingester_id: String,
    /// The WAL position the file's events came from (at most).
    pub wal_through: u64,
    /// When the file was recorded, epoch ms (by the clock of the process that recorded it).
    pub created_at_ms: i64,
}

/// Which files a query needs.
#[derive(Debug, Clone)]
pub struct FileFilter {
    /// The table.
    pub table: TableName,
    /// Only files whose tenant range contains this tenant.
    pub tenant: Option<TenantId>,
    /// Only files with events at or after this time (epoch ms).
    pub min_time_ms: Option<i64>,
    /// Only files with events before this time (epoch ms).
    pub max_time_ms: Option<i64>,
}

/// Files and ingester positions read from one catalog snapshot.
#[derive(Debug, Clone, Default)]
pub struct FileListing {
    /// The matching files.
    pub files: Vec<FileRecord>,
    /// Persisted WAL position of every ingester.
    pub persisted: HashMap<String, u64>,
}

/// A node of the deployment, as it announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Stable id; an ingester's id also names its WAL, so a replacement reuses it.
    pub id: String,
    /// Random per process start: tells a restarted process from a second live one.
    pub incarnation: String,
    /// Roles the process runs (`ingester`, `querier`, `compactor`, `gateway`).
    pub roles: Vec<String>,
    /// Base URL of its HTTP API.
    pub http_url: String,
    /// URL of its Arrow Flight service, if it has one.
    pub flight_url: Option<String>,
    /// Hourglass version.
    pub version: String,
}

/// A table a tenant imported: one Parquet object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedTable {
    /// Whose table it is.
    pub tenant: TenantId,
    /// Its SQL name.
    pub name: String,
    /// The Parquet object.
    pub path: String,
    /// Its Arrow schema as an IPC message (opaque to the catalog).
    pub arrow_schema: Vec<u8>,
    /// Rows in the object.
    pub rows: u64,
    /// Size of the object.
    pub bytes: u64,
    /// When it was imported, epoch ms (set by the catalog).
    pub imported_at_ms: i64,
}

/// A node as the catalog last heard of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// What the node announced.
    pub info: NodeInfo,
    /// When this incarnation first announced itself, epoch ms.
    pub started_at_ms: i64,
    /// Its latest heartbeat, epoch ms.
    pub heartbeat_at_ms: i64,
}

/// A materialized rollup hour as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupHour {
    /// The UTC hour (hours since the epoch).
    pub hour: i64,
    /// The `rollups` file holding its rows.
    pub file_id: i64,
    /// The newest events file id of its window when it was computed.
    pub input_file_id: i64,
    /// First hour of the events it was computed from.
    pub window_start_hour: i64,
    /// Last hour (inclusive) of the events it was computed from.
    pub window_end_hour: i64,
    /// Version of the rollup definitions that computed it.
    pub definitions: String,
    /// Rows in its file.
    pub rows: u64,
    /// When it was computed, epoch ms.
    pub computed_at_ms: i64,
    /// Whether no events file newer than its input has landed in its window since.
    pub fresh: bool,
}

/// A rollup hour to record with [`Catalog::commit_rollup_hour`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRollupHour {
    /// The UTC hour (hours since the epoch).
    pub hour: i64,
    /// The newest events file id of its window, read before the events were.
    pub input_file_id: i64,
    /// First hour of the events it was computed from.
    pub window_start_hour: i64,
    /// Last hour (inclusive) of the events it was computed from.
    pub window_end_hour: i64,
    /// Version of the rollup definitions.
    pub definitions: String,
    /// Rows in its file.
    pub rows: u64,
}

/// Rollup hours whose rows go into one new `rollups` file together
/// ([`Catalog::commit_rollups`]): one hour recomputed, a day of hours merged, a merged day
/// rewritten with some hours recomputed or expired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupCommit {
    /// Hours computed anew, each with the file its state points to now (`None`: it has none).
    pub computed: Vec<(NewRollupHour, Option<i64>)>,
    /// Hours whose rows the new file holds unchanged, each with the file they come from.
    pub carried: Vec<(i64, i64)>,
    /// Hours left out because their retention passed, each with the file they were in.
    pub expired: Vec<(i64, i64)>,
}

/// A tenant's settings with its public site key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    /// The public key web pages send events with (`/api/v1/collect`).
    pub site_key: String,
    /// The tenant's settings.
    pub settings: TenantSettings,
}

/// The catalog contract shared by every backend.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Creates a tenant with its write key and read token (given as hashes), default settings
    /// and a new public site key; [`Error::TenantExists`] if the id is taken.
    async fn create_tenant(&self, tenant: &TenantId, write_key_hash: &str, read_token_hash: &str) -> Result<()>;

    /// Lists every tenant id.
    async fn list_tenants(&self) -> Result<Vec<TenantId>>;

    /// Adds an admin token (given as a hash); adding an existing one is a no-op.
    async fn add_admin_token(&self, token_hash: &str) -> Result<()>;

    /// Whether any admin token exists.
    async fn has_admin_token(&self) -> Result<bool>;

    /// Resolves a credential hash to its principal.
    async fn lookup_token(&self, token_hash: &str) -> Result<Option<Principal>>;

    /// Records persisted files and moves the ingester's persisted WAL position to
    /// `wal_through`, atomically. If the position is already at or beyond `wal_through` the
    /// call does nothing, so retrying a commit whose outcome was unknown is safe.
    async fn commit_persist(&self, ingester_id: &str, wal_through: u64, files: &[NewFile]) -> Result<()>;

    /// The ingester's persisted WAL position, if it ever persisted.
    async fn persisted_position(&self, ingester_id: &str) -> Result<Option<u64>>;

    /// Files matching `filter`, with every ingester's persisted position, from one snapshot.
    async fn list_files(&self, filter: &FileFilter) -> Result<FileListing>;

    /// The salt for `day` (`YYYY-MM-DD`, UTC), created on first use.
    async fn daily_salt(&self, day: &str) -> Result<Vec<u8>>;

    /// Checks that the catalog answers; readiness probes use it.
    async fn ping(&self) -> Result<()>;

    /// Removes the files with ids `removed` and records `added` (written by `writer`) in one
    /// transaction; the removed objects no other file names (a day object keeps its other
    /// hours) are queued as garbage. Fails with
    /// [`Error::FilesGone`] and changes nothing if any file to remove is already gone.
    async fn replace_files(&self, writer: &str, removed: &[i64], added: &[NewFile]) -> Result<()>;

    /// Like [`Catalog::replace_files`], for `added` files that hold exactly the rows of the
    /// `removed` ones, repacked (hours merged into a day object): rollup hours fresh before the
    /// swap stay fresh, since the events they were computed from did not change.
    async fn repack_files(&self, writer: &str, removed: &[i64], added: &[NewFile]) -> Result<()>;

    /// Announces or renews `node`. Fails with [`Error::NodeIdTaken`] while another
    /// incarnation of the same id renewed within `lease`.
    async fn heartbeat(&self, node: &NodeInfo, lease: Duration) -> Result<()>;

    /// Removes the node's entry on clean shutdown (only if `incarnation` still holds it).
    async fn leave(&self, node_id: &str, incarnation: &str) -> Result<()>;

    /// Records a querier's read horizon (epoch ms): no query of `incarnation` of the node that
    /// is still running started before it.
    async fn report_read_horizon(&self, node_id: &str, incarnation: &str, horizon_ms: i64) -> Result<()>;

    /// Every node that ever announced itself and has not left.
    async fn list_nodes(&self) -> Result<Vec<NodeRecord>>;

    /// Forgets nodes whose last heartbeat is older than `age` (crashed processes that never
    /// left, replaced pods); returns how many.
    async fn forget_nodes_older_than(&self, age: Duration) -> Result<u64>;

    /// Up to `limit` objects queued as garbage at least `grace` ago (by the catalog's clock, the
    /// one that stamped them): no reader can still be using them. An object the catalog
    /// refers to again (in `files` or as an imported table) is never among them.
    ///
    /// Garbage removed at or after the read horizon of a node whose heartbeat is younger than
    /// `readers_lease` is held back too: one of its running queries may have listed it.
    async fn garbage_older_than(&self, grace: Duration, readers_lease: Duration, limit: u32) -> Result<Vec<String>>;

    /// Forgets garbage whose objects were deleted.
    async fn forget_garbage(&self, paths: &[String]) -> Result<()>;

    /// Every object path under `prefix` the catalog knows: files, imported tables, and
    /// garbage not deleted yet. An object under it that is none of these was never committed.
    async fn known_paths(&self, prefix: &str) -> Result<Vec<String>>;

    /// Queues `paths` as garbage (objects nothing refers to), deleted after the grace period
    /// like any other; a path already queued is stamped anew.
    async fn queue_garbage(&self, paths: &[String]) -> Result<()>;

    /// Records `table`, replacing the tenant's table of the same name if `replaces` is its
    /// current path (the replaced object is queued as garbage). Returns `true` when a table
    /// was replaced. Fails with [`Error::ImportRaced`] when the current path is not `replaces`
    /// (another import of the name committed meanwhile).
    async fn put_import(&self, table: &ImportedTable, replaces: Option<&str>) -> Result<bool>;

    /// The tenant's imported tables, by name.
    async fn list_imports(&self, tenant: &TenantId) -> Result<Vec<ImportedTable>>;

    /// Drops the tenant's table `name`, queueing its object as garbage; `false` if there is
    /// no such table.
    async fn drop_import(&self, tenant: &TenantId, name: &str) -> Result<bool>;

    /// The tenant's settings and site key; `None` if there is no such tenant.
    async fn tenant_config(&self, tenant: &TenantId) -> Result<Option<TenantConfig>>;

    /// Applies `patch` to the tenant's settings in one transaction (so concurrent updates of
    /// different fields both take effect) and returns the result; `None` if there is no such
    /// tenant, [`Error::InvalidSetting`] if a value is out of range.
    async fn update_tenant_settings(&self, tenant: &TenantId, patch: &SettingsPatch) -> Result<Option<TenantConfig>>;

    /// Every tenant's settings, read at once (for jobs that apply them to all tenants).
    async fn all_tenant_settings(&self) -> Result<Vec<(TenantId, TenantSettings)>>;

    /// The tenant whose public site key is `site_key`.
    async fn tenant_by_site_key(&self, site_key: &str) -> Result<Option<TenantId>>;

    /// The rollup hours in `[from_hour, to_hour)`, oldest first, each with whether it is
    /// still fresh.
    async fn rollup_hours(&self, from_hour: i64, to_hour: i64) -> Result<Vec<RollupHour>>;

    /// Hours before `before_hour` that hold events files but no fresh rollup of
    /// `definitions`, newest first, at most `limit`.
    async fn rollup_backlog(&self, before_hour: i64, definitions: &str, limit: u32) -> Result<Vec<i64>>;

    /// UTC days (as their first hour) before `before_hour` whose rollup hours could merge into
    /// one file: spread over more than one file, of at most `max_bytes` together, every hour
    /// fresh and of `definitions`, and every hour with events rolled up. Newest first, at most
    /// `limit`.
    async fn mergeable_rollup_days(
        &self,
        before_hour: i64,
        definitions: &str,
        max_bytes: u64,
        limit: u32,
    ) -> Result<Vec<i64>>;

    /// The newest events file id in hours `[from_hour, to_hour]` (0 when there is none).
    async fn events_high_water(&self, from_hour: i64, to_hour: i64) -> Result<i64>;

    /// The hours in `[from_hour, to_hour)` that hold events files.
    async fn event_hours(&self, from_hour: i64, to_hour: i64) -> Result<Vec<i64>>;

    /// Records that the rows of files `ids` satisfy the retention rule `mark` (files gone
    /// meanwhile are skipped).
    async fn mark_retention(&self, ids: &[i64], mark: &str) -> Result<()>;

    /// Removes files `ids` whose retention has passed, with the rollup hours they hold, and
    /// queues their objects as garbage once no other file names them; advances the retention epoch when any was removed.
    /// Files already gone are skipped. Returns how many were removed.
    async fn expire_files(&self, ids: &[i64]) -> Result<u64>;

    /// How many times [`Catalog::expire_files`] removed files: a cached answer read before
    /// it moved may hold expired rows.
    async fn retention_epoch(&self) -> Result<i64>;

    /// Records `file` (of the `rollups` table) as the rollups of `hour.hour`, in one
    /// transaction with the hour's state, replacing the file `replaces` (queued as garbage).
    /// Returns false, changing nothing, when the hour's current file is not `replaces`
    /// (another job committed first) or `replaces` holds other hours too.
    async fn commit_rollup_hour(&self, hour: &NewRollupHour, file: &NewFile, replaces: Option<i64>) -> Result<bool> {
        let commit = RollupCommit { computed: vec![(hour.clone(), replaces)], ..RollupCommit::default() };
        self.commit_rollups(&commit, file).await
    }

    /// Records `file` (of the `rollups` table) as the file of every hour `commit` names, in
    /// one transaction: computed hours get their new state, carried hours keep theirs and
    /// point to `file`, expired hours lose theirs (and advance the retention epoch). Every file
    /// those hours pointed to is removed and queued as garbage. Returns false, changing
    /// nothing, when an hour no longer points where `commit` says, or a replaced file still
    /// holds an hour `commit` does not name.
    async fn commit_rollups(&self, commit: &RollupCommit, file: &NewFile) -> Result<bool>;

    /// Queues a backfill.
    async fn create_backfill(&self, spec: &NewBackfill) -> Result<Backfill>;

    /// The newest `limit` backfills, newest first.
    async fn list_backfills(&self, limit: u32) -> Result<Vec<Backfill>>;

    /// One backfill.
    async fn get_backfill(&self, id: i64) -> Result<Option<Backfill>>;

    /// Marks the oldest backfill `owner` may run as running under it and returns it: a queued
    /// one, one whose owner reported no progress within `lease`, or one already `owner`'s
    /// (the same node, restarted). At most one of several racing claimers gets a job.
    async fn claim_backfill(&self, owner: &str, lease: Duration) -> Result<Option<Backfill>>;

    /// Records `owner`'s progress on backfill `id` (which also renews its claim). `false`
    /// when the job is no longer `owner`'s to run: cancelled, or claimed by another compactor
    /// after this one went silent; the caller then stops.
    async fn record_backfill_progress(&self, id: i64, owner: &str, progress: &BackfillProgress) -> Result<bool>;

    /// Ends `owner`'s backfill `id`: done, or failed with `error`. `false` if it was not
    /// `owner`'s running job any more.
    async fn finish_backfill(&self, id: i64, owner: &str, error: Option<&str>) -> Result<bool>;

    /// Per hour, the processor versions of its `events` files, oldest hour first.
    async fn version_hours(&self) -> Result<Vec<VersionHour>>;

    /// Cancels a queued or running backfill and returns it as it now is; `None` if there is
    /// no such backfill. A finished one is returned unchanged.
    async fn cancel_backfill(&self, id: i64) -> Result<Option<Backfill>>;
}
