-- Hourglass catalog, SQLite backend, version 8: hours merged into day objects.

-- Once a day is settled, the compactor writes the hours of each (table, day, shard) into one
-- object, each hour in row groups of its own. The catalog keeps one row per hour: the row
-- names the shared object and the byte range of its row groups (segment_start..segment_end;
-- object_bytes is the whole object's size, which a reader needs to find the footer). Every
-- per-hour rule (rollup staleness, backfill swaps, retention, compaction of late files) keeps
-- working on hours. A path is therefore no longer unique on its own, only with its segment.
--
-- SQLite cannot drop an inline UNIQUE constraint, so the table is rebuilt. Nothing refers to
-- files by foreign key. The AUTOINCREMENT counter is carried over: ids must never be reused,
-- since rollup staleness compares them.
CREATE TABLE files_v8 (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name        TEXT NOT NULL,
    hour              INTEGER NOT NULL,
    shard             INTEGER NOT NULL,
    generation        INTEGER NOT NULL,
    path              TEXT NOT NULL,
    min_tenant        TEXT NOT NULL,
    max_tenant        TEXT NOT NULL,
    min_time          INTEGER NOT NULL,
    max_time          INTEGER NOT NULL,
    rows              INTEGER NOT NULL,
    bytes             INTEGER NOT NULL,
    processor_version INTEGER,
    ingester_id       TEXT NOT NULL,
    wal_through       INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    retention_mark    TEXT,
    segment_start     INTEGER,
    segment_end       INTEGER,
    object_bytes      INTEGER,
    CHECK ((segment_start IS NULL) = (segment_end IS NULL) AND (segment_start IS NULL) = (object_bytes IS NULL))
);
INSERT INTO files_v8 (id, table_name, hour, shard, generation, path, min_tenant, max_tenant, min_time, max_time,
                      rows, bytes, processor_version, ingester_id, wal_through, created_at, retention_mark)
    SELECT id, table_name, hour, shard, generation, path, min_tenant, max_tenant, min_time, max_time,
           rows, bytes, processor_version, ingester_id, wal_through, created_at, retention_mark FROM files;
INSERT INTO sqlite_sequence (name, seq) SELECT 'files_v8', 0 WHERE NOT EXISTS
    (SELECT 1 FROM sqlite_sequence WHERE name = 'files_v8');
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'files'), 0))
    WHERE name = 'files_v8';
DROP TABLE files;
ALTER TABLE files_v8 RENAME TO files;
CREATE INDEX files_table_time ON files (table_name, max_time, min_time);
CREATE INDEX files_table_hour_id ON files (table_name, hour, id);
CREATE UNIQUE INDEX files_path_segment ON files (path, COALESCE(segment_start, -1));
