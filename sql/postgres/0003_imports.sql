-- Hourglass catalog, PostgreSQL backend, version 3: tables tenants import (CRM exports, signup lists).

-- One Parquet object per imported table. A re-import writes a new object and swaps the row in
-- one transaction, queueing the old object as garbage, so a query reads the old table or the
-- new one and never a mix. `arrow_schema` is the table's Arrow schema as an IPC message, so
-- that sessions can register the table without reading the object's footer.
CREATE TABLE imported_tables (
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    path          TEXT NOT NULL UNIQUE,
    arrow_schema  BYTEA NOT NULL,
    rows          BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    imported_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
