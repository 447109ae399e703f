-- Hourglass catalog, SQLite backend, version 1.
-- Times are epoch milliseconds; secrets are stored only as SHA-256 hex digests.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- Every credential: the admin token(s), and each tenant's write key and read token.
CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'write', 'read')),
    tenant_id   TEXT REFERENCES tenants (id),
    created_at  INTEGER NOT NULL,
    CHECK ((kind = 'admin') = (tenant_id IS NULL))
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);

-- One row per Parquet file. A file holds one partition (table, hour, shard) and many tenants,
-- sorted by (tenant_id, timestamp); the tenant and time ranges drive pruning.
CREATE TABLE files (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name        TEXT NOT NULL,
    hour              INTEGER NOT NULL,
    shard             INTEGER NOT NULL,
    generation        INTEGER NOT NULL,
    path              TEXT NOT NULL UNIQUE,
    min_tenant        TEXT NOT NULL,
    max_tenant        TEXT NOT NULL,
    min_time          INTEGER NOT NULL,
    max_time          INTEGER NOT NULL,
    rows              INTEGER NOT NULL,
    bytes             INTEGER NOT NULL,
    processor_version INTEGER,
    ingester_id       TEXT NOT NULL,
    wal_through       INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX files_table_time ON files (table_name, max_time, min_time);

-- How far each ingester's WAL is persisted: every segment up to and including
-- persisted_through is in the files above and may be deleted.
CREATE TABLE ingesters (
    id                 TEXT PRIMARY KEY,
    persisted_through  INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Daily salts for cookieless visitor hashing; rotated at 00:00 UTC.
CREATE TABLE salts (
    day   TEXT PRIMARY KEY,
    salt  BLOB NOT NULL
);
