-- Hourglass catalog, PostgreSQL backend, version 6: backfill jobs.

-- One row per backfill: a rebuild of a derived table's partitions in hours
-- [from_hour, to_hour) from the raw files, with processor_version, for one tenant or all.
-- A compactor claims a queued job (or a running one whose owner stopped renewing it) and
-- works through the hours in order; next_hour is where a resumed job starts again. Each
-- partition is swapped in one catalog transaction, so a job stopped anywhere leaves every
-- partition either old or new.
CREATE TABLE backfills (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name         TEXT NOT NULL,
    tenant_id          TEXT COLLATE "C",
    from_hour          BIGINT NOT NULL,
    to_hour            BIGINT NOT NULL,
    processor_version  BIGINT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    next_hour          BIGINT NOT NULL,
    partitions_done    BIGINT NOT NULL,
    partitions_skipped BIGINT NOT NULL,
    rows_read          BIGINT NOT NULL,
    rows_written       BIGINT NOT NULL,
    owner              TEXT,
    error              TEXT,
    created_at         BIGINT NOT NULL,
    started_at         BIGINT,
    updated_at         BIGINT NOT NULL,
    finished_at        BIGINT
);

CREATE INDEX backfills_state ON backfills (state, id);
