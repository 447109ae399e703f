-- Hourglass catalog, PostgreSQL backend, version 8: hours merged into day objects.

-- Once a day is settled, the compactor writes the hours of each (table, day, shard) into one
-- object, each hour in row groups of its own. The catalog keeps one row per hour: the row
-- names the shared object and the byte range of its row groups (segment_start..segment_end;
-- object_bytes is the whole object's size, which a reader needs to find the footer). Every
-- per-hour rule (rollup staleness, backfill swaps, retention, compaction of late files) keeps
-- working on hours. A path is therefore no longer unique on its own, only with its segment.
ALTER TABLE files ADD COLUMN segment_start BIGINT;
ALTER TABLE files ADD COLUMN segment_end BIGINT;
ALTER TABLE files ADD COLUMN object_bytes BIGINT;
ALTER TABLE files ADD CONSTRAINT files_segment_whole
    CHECK ((segment_start IS NULL) = (segment_end IS NULL) AND (segment_start IS NULL) = (object_bytes IS NULL));
ALTER TABLE files DROP CONSTRAINT files_path_key;
CREATE UNIQUE INDEX files_path_segment ON files (path, COALESCE(segment_start, -1));
