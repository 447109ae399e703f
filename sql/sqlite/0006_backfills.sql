-- Hourglass catalog, SQLite backend, version 6: backfill jobs.

-- One row per backfill: a rebuild of a derived table's partitions in hours
-- [from_hour, to_hour) from the raw files, with processor_version, for one tenant or all.
-- A compactor claims a queued job (or a running one whose owner stopped renewing it) and
-- works through the hours in order; next_hour is where a resumed job starts again. Each
-- partition is swapped in one catalog transaction, so a job stopped anywhere leaves every
-- partition either old or new.
CREATE TABLE backfills (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name         TEXT NOT NULL,
    tenant_id          TEXT,
    from_hour          INTEGER NOT NULL,
    to_hour            INTEGER NOT NULL,
    processor_version  INTEGER NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    next_hour          INTEGER NOT NULL,
    partitions_done    INTEGER NOT NULL,
    partitions_skipped INTEGER NOT NULL,
    rows_read          INTEGER NOT NULL,
    rows_written       INTEGER NOT NULL,
    owner              TEXT,
    error              TEXT,
    created_at         INTEGER NOT NULL,
    started_at         INTEGER,
    updated_at         INTEGER NOT NULL,
    finished_at        INTEGER
);

CREATE INDEX backfills_state ON backfills (state, id);
