//! The few statements where SQLite and PostgreSQL differ. Everything else is written once, with
//! `$N` placeholders both accept.

/// Which database a catalog runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// One SQLite file: embedded mode.
    Sqlite,
    /// A PostgreSQL server shared by a cluster.
    Postgres,
}

impl Dialect {
    /// Starts a transaction that will write. SQLite takes its write lock up front: a deferred
    /// transaction that reads and then writes can fail with SQLITE_BUSY_SNAPSHOT, which
    /// `busy_timeout` does not retry. PostgreSQL's row locks and unique indexes serialize the
    /// writers that touch the same rows under READ COMMITTED.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN IMMEDIATE",
            Self::Postgres => "BEGIN",
        }
    }

    /// Starts a read-only transaction whose statements all see one snapshot. SQLite in WAL
    /// mode pins its snapshot at the first read; PostgreSQL needs REPEATABLE READ for that.
    pub(crate) fn begin_snapshot(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN",
            Self::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// The versioned migrations of this backend, oldest first.
    pub(crate) fn migrations(self) -> &'static [(i64, &'static str)] {
        match self {
            Self::Sqlite => &[
                (1, include_str!("../../../sql/sqlite/0001_init.sql")),
                (2, include_str!("../../../sql/sqlite/0002_cluster.sql")),
                (3, include_str!("../../../sql/sqlite/0003_imports.sql")),
                (4, include_str!("../../../sql/sqlite/0004_settings.sql")),
                (5, include_str!("../../../sql/sqlite/0005_rollups.sql")),
                (6, include_str!("../../../sql/sqlite/0006_backfills.sql")),
                (7, include_str!("../../../sql/sqlite/0007_retention.sql")),
                (8, include_str!("../../../sql/sqlite/0008_day_objects.sql")),
            ],
            Self::Postgres => &[
                (1, include_str!("../../../sql/postgres/0001_init.sql")),
                (2, include_str!("../../../sql/postgres/0002_cluster.sql")),
                (3, include_str!("../../../sql/postgres/0003_imports.sql")),
                (4, include_str!("../../../sql/postgres/0004_settings.sql")),
                (5, include_str!("../../../sql/postgres/0005_rollups.sql")),
                (6, include_str!("../../../sql/postgres/0006_backfills.sql")),
                (7, include_str!("../../../sql/postgres/0007_retention.sql")),
                (8, include_str!("../../../sql/postgres/0008_day_objects.sql")),
            ],
        }
    }
}
