-- Hourglass catalog, SQLite backend, version 4: per-tenant settings and the public site key.

-- `settings` is the JSON of hourglass_types::settings::TenantSettings; fields it lacks read as
-- their defaults, so new settings need no migration. `site_key` is public (it sits in merchants'
-- web pages) and only lets a browser send events through /api/v1/collect, so it is stored in
-- clear, unlike the secret tokens.
CREATE TABLE tenant_settings (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    site_key    TEXT NOT NULL UNIQUE,
    settings    TEXT NOT NULL DEFAULT '{}',
    updated_at  INTEGER NOT NULL
);

INSERT INTO tenant_settings (tenant_id, site_key, updated_at)
SELECT id, 'hgp_' || lower(hex(randomblob(16))), created_at FROM tenants;
