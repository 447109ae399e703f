-- Hourglass catalog, PostgreSQL backend, version 2: cluster membership and file garbage.

-- Every running node, by its stable id (an ingester's id also names its WAL). A node renews
-- heartbeat_at while alive; `incarnation` is random per process start, so a second process
-- claiming the id of a live node is refused until the first one's lease runs out.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    incarnation   TEXT NOT NULL,
    roles         TEXT NOT NULL,
    http_url      TEXT NOT NULL,
    flight_url    TEXT,
    version       TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL
);

-- Objects no longer referenced by the catalog (replaced by compaction or reprocessing). They are
-- deleted from the object store only after a grace period, because a querier may have listed
-- them just before they were replaced.
CREATE TABLE garbage (
    path        TEXT PRIMARY KEY,
    removed_at  BIGINT NOT NULL
);
