-- Hourglass catalog, PostgreSQL backend, version 7: retention.

-- The retention rule a file's rows are known to satisfy: the retention pass sets it after it
-- purged (or found nothing to purge in) a file of an hour some tenants' retention has passed,
-- so it reads each such file once per change of that hour's rule, not on every pass. NULL for
-- a file no pass has looked at.
ALTER TABLE files ADD COLUMN retention_mark TEXT;

-- Counts the retention passes that removed files outright. A cached report remembers it and
-- is not reused once it moved: removing files changes no newest file id, which is what
-- catches every other change under a cached answer.
CREATE TABLE retention_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL
);
INSERT INTO retention_epoch (id, epoch) VALUES (1, 0);

-- The read horizon of a querier: when its oldest running query started (or, with none
-- running, when it last reported). Garbage removed from the catalog after a live querier's
-- horizon may still be read by one of its queries, so it is not deleted yet. NULL for nodes
-- that run no queries.
ALTER TABLE nodes ADD COLUMN read_horizon BIGINT;
