-- Hourglass catalog, PostgreSQL backend, version 1 (the same tables as sql/sqlite/0001_init.sql).
-- Times are epoch milliseconds; secrets are stored only as SHA-256 hex digests.

CREATE TABLE tenants (
    id          TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'write', 'read')),
    tenant_id   TEXT COLLATE "C" REFERENCES tenants (id),
    created_at  BIGINT NOT NULL,
    CHECK ((kind = 'admin') = (tenant_id IS NULL))
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);

-- Tenant ranges compare byte-wise ("C" collation), as Parquet files are sorted: a locale
-- collation would order '-' and '_' differently and prune away files that hold the tenant.
CREATE TABLE files (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name        TEXT NOT NULL,
    hour              BIGINT NOT NULL,
    shard             BIGINT NOT NULL,
    generation        BIGINT NOT NULL,
    path              TEXT NOT NULL UNIQUE,
    min_tenant        TEXT COLLATE "C" NOT NULL,
    max_tenant        TEXT COLLATE "C" NOT NULL,
    min_time          BIGINT NOT NULL,
    max_time          BIGINT NOT NULL,
    rows              BIGINT NOT NULL,
    bytes             BIGINT NOT NULL,
    processor_version BIGINT,
    ingester_id       TEXT NOT NULL,
    wal_through       BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX files_table_time ON files (table_name, max_time, min_time);

CREATE TABLE ingesters (
    id                 TEXT PRIMARY KEY,
    persisted_through  BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE salts (
    day   TEXT PRIMARY KEY,
    salt  BYTEA NOT NULL
);
