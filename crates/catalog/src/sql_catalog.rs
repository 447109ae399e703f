//! [`SqlCatalog`]: the catalog on SQLite or PostgreSQL through one implementation.

use std::collections::BTreeSet;
use std::sync::Once;
use std::time::Duration;

use async_trait::async_trait;
use hourglass_types::settings::SettingsPatch;
use hourglass_types::{TableName, TenantId, TenantSettings};
use rand::RngCore;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::backfills;
use crate::dialect::Dialect;
use crate::migrate::{self, now_ms};
use crate::rows::{file_columns, file_from_row, node_from_row, tenant_from_db};
use crate::{
    Backfill, BackfillProgress, Catalog, Error, FileFilter, FileListing, ImportedTable, NewBackfill, NewFile, NodeInfo,
    NodeRecord, Principal, Result, RollupCommit, RollupHour, TenantConfig,
};

/// Connection settings of a [`SqlCatalog`].
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// Most connections the pool opens (SQLite files use at most 8: it has one writer anyway).
    pub max_connections: u32,
    /// How long to wait for a connection before reporting the catalog unavailable.
    pub acquire_timeout: Duration,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// The catalog in a SQL database: SQLite (`sqlite://PATH`, embedded mode) or PostgreSQL
/// (`postgres://...`, a cluster). Statements are written once with `$N` placeholders; the few
/// that differ live in `dialect.rs`.
#[derive(Debug, Clone)]
pub struct SqlCatalog {
    pool: AnyPool,
    dialect: Dialect,
}

pub(crate) fn query_err(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Query { operation, source }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

fn dialect_of(url: &str) -> Option<Dialect> {
    if url.starts_with("sqlite:") {
        Some(Dialect::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Dialect::Postgres)
    } else {
        None
    }
}

impl SqlCatalog {
    /// Opens the catalog at `url` (`sqlite://PATH`, created if missing, or `postgres://...`)
    /// and applies migrations.
    pub async fn open(url: &str, options: &CatalogOptions) -> Result<Self> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let location = redact_url(url);
        let dialect = dialect_of(url).ok_or_else(|| Error::UnsupportedUrl { url: location.clone() })?;
        let in_memory = url.contains(":memory:");
        let url = match dialect {
            Dialect::Sqlite if !in_memory && !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let connect: AnyConnectOptions =
            url.parse().map_err(|source| Error::Open { location: location.clone(), source })?;
        let max_connections = match dialect {
            // Every in-memory connection would be a separate database.
            Dialect::Sqlite if in_memory => 1,
            Dialect::Sqlite => options.max_connections.clamp(1, 8),
            Dialect::Postgres => options.max_connections.max(1),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers run beside the writer; FULL makes a commit durable when
                        // it returns.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect)
            .await
            .map_err(|source| Error::Open { location, source })?;
        migrate::run(&pool, dialect).await?;
        Ok(Self { pool, dialect })
    }

    /// A fresh in-memory SQLite catalog; for tests.
    pub async fn in_memory() -> Result<Self> {
        Self::open("sqlite::memory:", &CatalogOptions::default()).await
    }

    async fn begin_write(&self, operation: &'static str) -> Result<Transaction<'static, Any>> {
        self.pool.begin_with(self.dialect.begin_write()).await.map_err(query_err(operation))
    }
}

async fn insert_file(
    tx: &mut Transaction<'static, Any>,
    writer: &str,
    wal_through: u64,
    f: &NewFile,
    now: i64,
) -> Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO files (table_name, hour, shard, generation, path, min_tenant, max_tenant, \
         min_time, max_time, rows, bytes, processor_version, ingester_id, wal_through, created_at, retention_mark, \
         segment_start, segment_end, object_bytes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING id",
    )
    .bind(f.table.as_str())
    .bind(f.hour)
    .bind(i64::from(f.shard))
    .bind(f.generation as i64)
    .bind(f.path.as_str())
    .bind(f.min_tenant.as_str())
    .bind(f.max_tenant.as_str())
    .bind(f.min_time_ms)
    .bind(f.max_time_ms)
    .bind(f.rows as i64)
    .bind(f.bytes as i64)
    .bind(f.processor_version.map(i64::from))
    .bind(writer)
    .bind(wal_through as i64)
    .bind(now)
    .bind(f.retention_mark.as_deref())
    .bind(f.segment.map(|s| s.start as i64))
    .bind(f.segment.map(|s| s.end as i64))
    .bind(f.segment.map(|s| s.object_bytes as i64))
    .fetch_one(&mut **tx)
    .await
    .map_err(query_err("inserting file"))
}

/// Whether rollup hour `r` is fresh (1) or not (0): no events file newer than its input has
/// landed in its window.
macro_rules! rollup_fresh {
    () => {
        "CASE WHEN EXISTS (SELECT 1 FROM files f WHERE f.table_name = 'events' \
         AND f.hour >= r.window_start_hour AND f.hour <= r.window_end_hour AND f.id > r.input_file_id) \
         THEN 0 ELSE 1 END"
    };
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn create_tenant(&self, tenant: &TenantId, write_key_hash: &str, read_token_hash: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write("starting create tenant").await?;
        let inserted = sqlx::query("INSERT INTO tenants (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(tenant.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_err("inserting tenant"))?;
        if inserted.rows_affected() == 0 {
            return Err(Error::TenantExists { tenant: tenant.to_string() });
        }
        sqlx::query(
            "INSERT INTO tenant_settings (tenant_id, site_key, settings, updated_at) VALUES ($1, $2, '{}', $3)",
        )
        .bind(tenant.as_str())
        .bind(crate::secret::generate_site_key())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_err("inserting tenant settings"))?;
        for (hash, kind) in [(write_key_hash, "write"), (read_token_hash, "read")] {
            sqlx::query("INSERT INTO tokens (hash, kind, tenant_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(hash)
                .bind(kind)
                .bind(tenant.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(query_err("inserting tenant token"))?;
        }
        tx.commit().await.map_err(query_err("committing create tenant"))
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("listing tenants"))?;
        ids.into_iter().map(tenant_from_db).collect()
    }

    async fn add_admin_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (hash, kind, tenant_id, created_at) VALUES ($1, 'admin', NULL, $2) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(token_hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(query_err("inserting admin token"))?;
        Ok(())
    }

    async fn has_admin_token(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE kind = 'admin'")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("counting admin tokens"))?;
        Ok(n > 0)
    }

    async fn lookup_token(&self, token_hash: &str) -> Result<Option<Principal>> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT kind, tenant_id FROM tokens WHERE hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(query_err("looking up token"))?;
        let Some((kind, tenant)) = row else {
            return Ok(None);
        };
        let principal = match (kind.as_str(), tenant) {
            ("admin", None) => Principal::Admin,
            ("write", Some(t)) => Principal::Writer(tenant_from_db(t)?),
            ("read", Some(t)) => Principal::Reader(tenant_from_db(t)?),
            (other, _) => return Err(Error::Invalid { what: "token kind", value: other.to_string() }),
        };
        Ok(Some(principal))
    }

    async fn commit_persist(&self, ingester_id: &str, wal_through: u64, files: &[NewFile]) -> Result<()> {
        let now = now_ms();
        let position = wal_through as i64;
        let mut tx = self.begin_write("starting persist commit").await?;
        // Moving the position first takes the ingester's row lock, so a concurrent retry of the
        // same commit waits here and then finds the position already moved.
        let moved = sqlx::query(
            "UPDATE ingesters SET persisted_through = $2, updated_at = $3 WHERE id = $1 AND persisted_through < $2",
        )
        .bind(ingester_id)
        .bind(position)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_err("moving ingester position"))?
        .rows_affected();
        if moved == 0 {
            let created = sqlx::query(
                "INSERT INTO ingesters (id, persisted_through, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(ingester_id)
            .bind(position)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_err("recording ingester position"))?
            .rows_affected();
            if created == 0 {
                // Already at or beyond `wal_through`: a retry after an ambiguous failure.
                // Recording the files again would register them twice.
                return Ok(());
            }
        }
        for f in files {
            insert_file(&mut tx, ingester_id, wal_through, f, now).await?;
        }
        tx.commit().await.map_err(query_err("committing persist"))
    }

    async fn persisted_position(&self, ingester_id: &str) -> Result<Option<u64>> {
        let pos: Option<i64> = sqlx::query_scalar("SELECT persisted_through FROM ingesters WHERE id = $1")
            .bind(ingester_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading ingester position"))?;
        Ok(pos.map(|p| p as u64))
    }

    async fn list_files(&self, filter: &FileFilter) -> Result<FileListing> {
        let mut tx =
            self.pool.begin_with(self.dialect.begin_snapshot()).await.map_err(query_err("starting file listing"))?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            file_columns!(),
            " FROM files WHERE table_name = $1 \
               AND ($2 IS NULL OR (min_tenant <= $2 AND max_tenant >= $2)) \
               AND ($3 IS NULL OR max_time >= $3) \
               AND ($4 IS NULL OR min_time < $4) \
             ORDER BY hour, shard, id"
        ))
        .bind(filter.table.as_str())
        .bind(filter.tenant.as_ref().map(|t| t.as_str()))
        .bind(filter.min_time_ms)
        .bind(filter.max_time_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_err("listing files"))?;
        let positions: Vec<(String, i64)> = sqlx::query_as("SELECT id, persisted_through FROM ingesters")
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err("listing ingester positions"))?;
        tx.commit().await.map_err(query_err("ending file listing"))?;
        Ok(FileListing {
            files: rows.iter().map(file_from_row).collect::<Result<_>>()?,
            persisted: positions.into_iter().map(|(id, p)| (id, p as u64)).collect(),
        })
    }

    async fn daily_salt(&self, day: &str) -> Result<Vec<u8>> {
        let mut fresh = vec![0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        sqlx::query("INSERT INTO salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING")
            .bind(day)
            .bind(fresh)
            .execute(&self.pool)
            .await
            .map_err(query_err("creating salt"))?;
        sqlx::query_scalar("SELECT salt FROM salts WHERE day = $1")
            .bind(day)
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("reading salt"))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(query_err("ping"))?;
        Ok(())
    }

    async fn replace_files(&self, writer: &str, removed: &[i64], added: &[NewFile]) -> Result<()> {
        let mut tx = self.begin_write("starting file replacement").await?;
        swap_files(&mut tx, writer, removed, added).await?;
        tx.commit().await.map_err(query_err("committing file replacement"))
    }

    async fn repack_files(&self, writer: &str, removed: &[i64], added: &[NewFile]) -> Result<()> {
        let mut tx = self.begin_write("starting file repack").await?;
        let hours = added.iter().filter(|f| f.table == TableName::Events).map(|f| f.hour);
        let fresh: Vec<i64> = match (hours.clone().min(), hours.max()) {
            (Some(lo), Some(hi)) => sqlx::query_scalar(concat!(
                "SELECT r.hour FROM rollup_hours r WHERE r.window_end_hour >= $1 AND r.window_start_hour <= $2 AND ",
                rollup_fresh!(),
                " = 1"
            ))
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err("listing fresh rollup hours"))?,
            _ => Vec::new(),
        };
        let ids = swap_files(&mut tx, writer, removed, added).await?;
        // The new files are the only events files newer than a fresh hour's input now. On
        // PostgreSQL an events file committed meanwhile with a lower id would be hidden, the
        // race every comparison of ids has under READ COMMITTED (see `events_high_water`).
        if let Some(newest) =
            ids.iter().zip(added).filter(|(_, f)| f.table == TableName::Events).map(|(id, _)| *id).max()
        {
            for hour in fresh {
                sqlx::query("UPDATE rollup_hours SET input_file_id = $1 WHERE hour = $2 AND input_file_id < $1")
                    .bind(newest)
                    .bind(hour)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err("keeping a rollup hour fresh"))?;
            }
        }
        tx.commit().await.map_err(query_err("committing file repack"))
    }

    async fn heartbeat(&self, node: &NodeInfo, lease: Duration) -> Result<()> {
        let now = now_ms();
        let stale_before = now - lease.as_millis() as i64;
        let renewed = sqlx::query(
            "INSERT INTO nodes (id, incarnation, roles, http_url, flight_url, version, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (id) DO UPDATE SET \
               started_at = CASE WHEN nodes.incarnation = excluded.incarnation THEN nodes.started_at \
                            ELSE excluded.started_at END, \
               incarnation = excluded.incarnation, roles = excluded.roles, http_url = excluded.http_url, \
               flight_url = excluded.flight_url, version = excluded.version, heartbeat_at = excluded.heartbeat_at \
             WHERE nodes.incarnation = excluded.incarnation OR nodes.heartbeat_at < $8",
        )
        .bind(node.id.as_str())
        .bind(node.incarnation.as_str())
        .bind(node.roles.join(","))
        .bind(node.http_url.as_str())
        .bind(node.flight_url.as_deref())
        .bind(node.version.as_str())
        .bind(now)
        .bind(stale_before)
        .execute(&self.pool)
        .await
        .map_err(query_err("renewing node heartbeat"))?
        .rows_affected();
        if renewed > 0 {
            return Ok(());
        }
        let last: Option<i64> = sqlx::query_scalar("SELECT heartbeat_at FROM nodes WHERE id = $1")
            .bind(node.id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading node heartbeat"))?;
        Err(Error::NodeIdTaken { id: node.id.clone(), age_ms: last.map(|t| now - t).unwrap_or(0) })
    }

    async fn report_read_horizon(&self, node_id: &str, incarnation: &str, horizon_ms: i64) -> Result<()> {
        sqlx::query("UPDATE nodes SET read_horizon = $1 WHERE id = $2 AND incarnation = $3")
            .bind(horizon_ms)
            .bind(node_id)
            .bind(incarnation)
            .execute(&self.pool)
            .await
            .map_err(query_err("recording a read horizon"))?;
        Ok(())
    }

    async fn leave(&self, node_id: &str, incarnation: &str) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1 AND incarnation = $2")
            .bind(node_id)
            .bind(incarnation)
            .execute(&self.pool)
            .await
            .map_err(query_err("removing node"))?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query(
            "SELECT id, incarnation, roles, http_url, flight_url, version, started_at, heartbeat_at \
             FROM nodes ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing nodes"))?;
        rows.iter().map(node_from_row).collect()
    }

    async fn forget_nodes_older_than(&self, age: Duration) -> Result<u64> {
        let removed = sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
            .bind(now_ms() - age.as_millis() as i64)
            .execute(&self.pool)
            .await
            .map_err(query_err("forgetting stale nodes"))?
            .rows_affected();
        Ok(removed)
    }

    async fn garbage_older_than(&self, grace: Duration, readers_lease: Duration, limit: u32) -> Result<Vec<String>> {
        let now = now_ms();
        // A path the catalog refers to again (a file recorded anew under a replaced file's
        // key, an import) is never handed out for deletion, whatever queued it.
        sqlx::query_scalar(
            "SELECT path FROM garbage g WHERE removed_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.path = g.path) \
             AND NOT EXISTS (SELECT 1 FROM imported_tables i WHERE i.path = g.path) \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.read_horizon IS NOT NULL \
                             AND n.read_horizon <= g.removed_at AND n.heartbeat_at >= $2) \
             ORDER BY removed_at LIMIT $3",
        )
        .bind(now - grace.as_millis() as i64)
        .bind(now - readers_lease.as_millis() as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing garbage"))
    }

    async fn forget_garbage(&self, paths: &[String]) -> Result<()> {
        let mut tx = self.begin_write("starting garbage removal").await?;
        for path in paths {
            sqlx::query("DELETE FROM garbage WHERE path = $1")
                .bind(path.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_err("forgetting garbage"))?;
        }
        tx.commit().await.map_err(query_err("committing garbage removal"))
    }

    async fn known_paths(&self, prefix: &str) -> Result<Vec<String>> {
        // Not LIKE (keys may hold `_` and `%`) nor a range (PostgreSQL compares text by
        // its collation, not byte by byte).
        let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        sqlx::query_scalar(
            "SELECT path FROM files WHERE substr(path, 1, $2) = $1 \
             UNION SELECT path FROM imported_tables WHERE substr(path, 1, $2) = $1 \
             UNION SELECT path FROM garbage WHERE substr(path, 1, $2) = $1",
        )
        .bind(prefix)
        .bind(chars)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing known object paths"))
    }

    async fn queue_garbage(&self, paths: &[String]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write("starting to queue garbage").await?;
        for path in paths {
            queue_garbage(&mut tx, path, now).await?;
        }
        tx.commit().await.map_err(query_err("committing queued garbage"))
    }

    async fn put_import(&self, table: &ImportedTable, replaces: Option<&str>) -> Result<bool> {
        let now = now_ms();
        let raced = || Error::ImportRaced { name: table.name.clone() };
        let mut tx = self.begin_write("starting import").await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT path FROM imported_tables WHERE tenant_id = $1 AND name = $2")
                .bind(table.tenant.as_str())
                .bind(table.name.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err("reading the imported table"))?;
        if current.as_deref() != replaces {
            tx.rollback().await.map_err(query_err("abandoning import"))?;
            return Err(raced());
        }
        let rows = i64::try_from(table.rows).unwrap_or(i64::MAX);
        let bytes = i64::try_from(table.bytes).unwrap_or(i64::MAX);
        // One upsert for both cases. A first import that finds the name taken, and a
        // replacement whose row another import changed after our read (PostgreSQL, READ
        // COMMITTED), both match no row of the update's condition and write nothing.
        let written = sqlx::query(
            "INSERT INTO imported_tables (tenant_id, name, path, arrow_schema, rows, bytes, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET path = excluded.path, \
               arrow_schema = excluded.arrow_schema, rows = excluded.rows, bytes = excluded.bytes, \
               imported_at = excluded.imported_at \
             WHERE imported_tables.path = $8",
        )
        .bind(table.tenant.as_str())
        .bind(table.name.as_str())
        .bind(table.path.as_str())
        .bind(table.arrow_schema.clone())
        .bind(rows)
        .bind(bytes)
        .bind(now)
        .bind(current.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(query_err("recording the imported table"))?;
        if written.rows_affected() != 1 {
            tx.rollback().await.map_err(query_err("abandoning import"))?;
            return Err(raced());
        }
        if let Some(old) = &current {
            queue_garbage(&mut tx, old, now).await?;
        }
        tx.commit().await.map_err(query_err("committing import"))?;
        Ok(current.is_some())
    }

    async fn list_imports(&self, tenant: &TenantId) -> Result<Vec<ImportedTable>> {
        let rows: Vec<(String, String, Vec<u8>, i64, i64, i64)> = sqlx::query_as(
            "SELECT name, path, arrow_schema, rows, bytes, imported_at FROM imported_tables \
             WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing imported tables"))?;
        Ok(rows
            .into_iter()
            .map(|(name, path, arrow_schema, rows, bytes, imported_at_ms)| ImportedTable {
                tenant: tenant.clone(),
                name,
                path,
                arrow_schema,
                rows: u64::try_from(rows).unwrap_or(0),
                bytes: u64::try_from(bytes).unwrap_or(0),
                imported_at_ms,
            })
            .collect())
    }

    async fn drop_import(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        let mut tx = self.begin_write("starting drop of an imported table").await?;
        let path: Option<String> =
            sqlx::query_scalar("DELETE FROM imported_tables WHERE tenant_id = $1 AND name = $2 RETURNING path")
                .bind(tenant.as_str())
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err("dropping the imported table"))?;
        if let Some(path) = &path {
            queue_garbage(&mut tx, path, now_ms()).await?;
        }
        tx.commit().await.map_err(query_err("committing the drop"))?;
        Ok(path.is_some())
    }

    async fn tenant_config(&self, tenant: &TenantId) -> Result<Option<TenantConfig>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT site_key, settings FROM tenant_settings WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(query_err("reading tenant settings"))?;
        row.map(|(site_key, json)| Ok(TenantConfig { site_key, settings: settings_from_db(&json)? })).transpose()
    }

    async fn all_tenant_settings(&self) -> Result<Vec<(TenantId, TenantSettings)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT tenant_id, settings FROM tenant_settings ORDER BY tenant_id")
                .fetch_all(&self.pool)
                .await
                .map_err(query_err("listing tenant settings"))?;
        rows.into_iter().map(|(tenant, json)| Ok((tenant_from_db(tenant)?, settings_from_db(&json)?))).collect()
    }

    async fn update_tenant_settings(&self, tenant: &TenantId, patch: &SettingsPatch) -> Result<Option<TenantConfig>> {
        let mut tx = self.begin_write("starting settings update").await?;
        // FOR UPDATE on PostgreSQL; SQLite's write transaction already excludes other writers.
        let select = match self.dialect {
            Dialect::Postgres => "SELECT site_key, settings FROM tenant_settings WHERE tenant_id = $1 FOR UPDATE",
            Dialect::Sqlite => "SELECT site_key, settings FROM tenant_settings WHERE tenant_id = $1",
        };
        let row: Option<(String, String)> = sqlx::query_as(select)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_err("reading tenant settings"))?;
        let Some((site_key, json)) = row else {
            tx.rollback().await.map_err(query_err("abandoning settings update"))?;
            return Ok(None);
        };
        let settings = settings_from_db(&json)?.apply(patch)?;
        let json = serde_json::to_string(&settings)
            .map_err(|e| Error::Invalid { what: "tenant settings", value: e.to_string() })?;
        sqlx::query("UPDATE tenant_settings SET settings = $1, updated_at = $2 WHERE tenant_id = $3")
            .bind(json)
            .bind(now_ms())
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_err("updating tenant settings"))?;
        tx.commit().await.map_err(query_err("committing settings update"))?;
        Ok(Some(TenantConfig { site_key, settings }))
    }

    async fn rollup_hours(&self, from_hour: i64, to_hour: i64) -> Result<Vec<RollupHour>> {
        type Row = (i64, i64, i64, i64, i64, String, i64, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "SELECT r.hour, r.file_id, r.input_file_id, r.window_start_hour, r.window_end_hour, r.definitions, \
             r.rows, r.computed_at, ",
            rollup_fresh!(),
            " FROM rollup_hours r WHERE r.hour >= $1 AND r.hour < $2 ORDER BY r.hour"
        ))
        .bind(from_hour)
        .bind(to_hour)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing rollup hours"))?;
        Ok(rows
            .into_iter()
            .map(|(hour, file_id, input_file_id, window_start_hour, window_end_hour, definitions, rows, at, fresh)| {
                RollupHour {
                    hour,
                    file_id,
                    input_file_id,
                    window_start_hour,
                    window_end_hour,
                    definitions,
                    rows: u64::try_from(rows).unwrap_or(0),
                    computed_at_ms: at,
                    fresh: fresh == 1,
                }
            })
            .collect())
    }

    async fn rollup_backlog(&self, before_hour: i64, definitions: &str, limit: u32) -> Result<Vec<i64>> {
        sqlx::query_scalar(concat!(
            "SELECT h.hour FROM (SELECT DISTINCT hour FROM files WHERE table_name = 'events' AND hour < $1) h \
             WHERE NOT EXISTS (SELECT 1 FROM rollup_hours r WHERE r.hour = h.hour AND r.definitions = $2 AND ",
            rollup_fresh!(),
            " = 1) ORDER BY h.hour DESC LIMIT $3"
        ))
        .bind(before_hour)
        .bind(definitions)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing the rollup backlog"))
    }

    async fn mergeable_rollup_days(
        &self,
        before_hour: i64,
        definitions: &str,
        max_bytes: u64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        sqlx::query_scalar(concat!(
            "SELECT d.day FROM (SELECT DISTINCT r.hour - (r.hour % 24) AS day, f.id, f.bytes \
               FROM rollup_hours r JOIN files f ON f.id = r.file_id WHERE r.hour >= 0 AND r.hour < $1) d \
             GROUP BY d.day HAVING COUNT(*) > 1 AND SUM(d.bytes) <= $2 \
             AND NOT EXISTS (SELECT 1 FROM rollup_hours r WHERE r.hour >= d.day AND r.hour < d.day + 24 \
                             AND (r.definitions <> $4 OR ",
            rollup_fresh!(),
            " = 0)) \
             AND NOT EXISTS (SELECT 1 FROM files e WHERE e.table_name = 'events' \
                             AND e.hour >= d.day AND e.hour < d.day + 24 \
                             AND NOT EXISTS (SELECT 1 FROM rollup_hours h WHERE h.hour = e.hour)) \
             ORDER BY d.day DESC LIMIT $3"
        ))
        .bind(before_hour)
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .bind(definitions)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing rollup days to merge"))
    }

    async fn events_high_water(&self, from_hour: i64, to_hour: i64) -> Result<i64> {
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM files WHERE table_name = 'events' AND hour >= $1 AND hour <= $2")
                .bind(from_hour)
                .bind(to_hour)
                .fetch_one(&self.pool)
                .await
                .map_err(query_err("reading the newest events file"))?;
        Ok(newest.unwrap_or(0))
    }

    async fn mark_retention(&self, ids: &[i64], mark: &str) -> Result<()> {
        let mut tx = self.begin_write("starting retention marks").await?;
        for id in ids {
            sqlx::query("UPDATE files SET retention_mark = $1 WHERE id = $2")
                .bind(mark)
                .bind(*id)
                .execute(&mut *tx)
                .await
                .map_err(query_err("marking a file's retention"))?;
        }
        tx.commit().await.map_err(query_err("committing retention marks"))
    }

    async fn expire_files(&self, ids: &[i64]) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.begin_write("starting file expiry").await?;
        let mut removed = 0;
        for id in ids {
            let path: Option<String> = sqlx::query_scalar("DELETE FROM files WHERE id = $1 RETURNING path")
                .bind(*id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err("removing an expired file"))?;
            let Some(path) = path else { continue };
            queue_garbage(&mut tx, &path, now).await?;
            sqlx::query("DELETE FROM rollup_hours WHERE file_id = $1")
                .bind(*id)
                .execute(&mut *tx)
                .await
                .map_err(query_err("removing an expired rollup hour"))?;
            removed += 1;
        }
        if removed > 0 {
            sqlx::query("UPDATE retention_epoch SET epoch = epoch + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .map_err(query_err("advancing the retention epoch"))?;
        }
        tx.commit().await.map_err(query_err("committing file expiry"))?;
        Ok(removed)
    }

    async fn retention_epoch(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT epoch FROM retention_epoch WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("reading the retention epoch"))
    }

    async fn event_hours(&self, from_hour: i64, to_hour: i64) -> Result<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT DISTINCT hour FROM files WHERE table_name = 'events' AND hour >= $1 AND hour < $2 ORDER BY hour",
        )
        .bind(from_hour)
        .bind(to_hour)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing hours with events"))
    }

    async fn commit_rollups(&self, commit: &RollupCommit, file: &NewFile) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write("starting rollup commit").await?;
        let select = match self.dialect {
            Dialect::Postgres => "SELECT file_id FROM rollup_hours WHERE hour = $1 FOR UPDATE",
            Dialect::Sqlite => "SELECT file_id FROM rollup_hours WHERE hour = $1",
        };
        let mut expected: Vec<(i64, Option<i64>)> = commit
            .computed
            .iter()
            .map(|(h, from)| (h.hour, *from))
            .chain(commit.carried.iter().chain(&commit.expired).map(|(h, from)| (*h, Some(*from))))
            .collect();
        // Rows are locked in one order by every writer, so two commits over the same hours
        // wait for each other rather than deadlock.
        expected.sort_unstable();
        let mut replaced = BTreeSet::new();
        for (hour, from) in expected {
            let current: Option<i64> = sqlx::query_scalar(select)
                .bind(hour)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err("reading the rollup hour"))?;
            if current != from {
                tx.rollback().await.map_err(query_err("abandoning rollup commit"))?;
                return Ok(false);
            }
            replaced.extend(from);
        }
        let file_id = insert_file(&mut tx, "rollup", 0, file, now).await?;
        for (hour, from) in &commit.computed {
            let rows = i64::try_from(hour.rows).unwrap_or(i64::MAX);
            // The statement takes the row lock on PostgreSQL (or the unique index, for a
            // first commit), so two jobs racing on one hour serialize here and the second
            // finds the file it expected gone.
            let written = sqlx::query(
                "INSERT INTO rollup_hours (hour, file_id, input_file_id, window_start_hour, window_end_hour, \
                 definitions, rows, computed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (hour) DO UPDATE SET file_id = excluded.file_id, input_file_id = excluded.input_file_id, \
                   window_start_hour = excluded.window_start_hour, window_end_hour = excluded.window_end_hour, \
                   definitions = excluded.definitions, rows = excluded.rows, computed_at = excluded.computed_at \
                 WHERE rollup_hours.file_id = $9",
            )
            .bind(hour.hour)
            .bind(file_id)
            .bind(hour.input_file_id)
            .bind(hour.window_start_hour)
            .bind(hour.window_end_hour)
            .bind(hour.definitions.as_str())
            .bind(rows)
            .bind(now)
            .bind(from.unwrap_or(-1))
            .execute(&mut *tx)
            .await
            .map_err(query_err("recording the rollup hour"))?;
            if written.rows_affected() != 1 {
                tx.rollback().await.map_err(query_err("abandoning rollup commit"))?;
                return Ok(false);
            }
        }
        for (hour, from) in &commit.carried {
            sqlx::query("UPDATE rollup_hours SET file_id = $1 WHERE hour = $2 AND file_id = $3")
                .bind(file_id)
                .bind(*hour)
                .bind(*from)
                .execute(&mut *tx)
                .await
                .map_err(query_err("moving a rollup hour to its new file"))?;
        }
        for (hour, from) in &commit.expired {
            sqlx::query("DELETE FROM rollup_hours WHERE hour = $1 AND file_id = $2")
                .bind(*hour)
                .bind(*from)
                .execute(&mut *tx)
                .await
                .map_err(query_err("removing an expired rollup hour"))?;
        }
        for old in replaced {
            // An hour the commit did not name would be left pointing at a removed file.
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollup_hours WHERE file_id = $1")
                .bind(old)
                .fetch_one(&mut *tx)
                .await
                .map_err(query_err("counting the hours of a replaced rollup file"))?;
            if left > 0 {
                tx.rollback().await.map_err(query_err("abandoning rollup commit"))?;
                return Ok(false);
            }
            let path: Option<String> = sqlx::query_scalar("DELETE FROM files WHERE id = $1 RETURNING path")
                .bind(old)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err("removing the replaced rollup file"))?;
            if let Some(path) = path {
                queue_garbage(&mut tx, &path, now).await?;
            }
        }
        if !commit.expired.is_empty() {
            sqlx::query("UPDATE retention_epoch SET epoch = epoch + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .map_err(query_err("advancing the retention epoch"))?;
        }
        tx.commit().await.map_err(query_err("committing the rollup hours"))?;
        Ok(true)
    }

    async fn create_backfill(&self, spec: &NewBackfill) -> Result<Backfill> {
        backfills::create(&self.pool, spec).await
    }

    async fn list_backfills(&self, limit: u32) -> Result<Vec<Backfill>> {
        backfills::list(&self.pool, limit).await
    }

    async fn get_backfill(&self, id: i64) -> Result<Option<Backfill>> {
        backfills::get(&self.pool, id).await
    }

    async fn claim_backfill(&self, owner: &str, lease: Duration) -> Result<Option<Backfill>> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        backfills::claim(&self.pool, self.dialect, owner, lease_ms).await
    }

    async fn record_backfill_progress(&self, id: i64, owner: &str, progress: &BackfillProgress) -> Result<bool> {
        backfills::record_progress(&self.pool, id, owner, progress).await
    }

    async fn finish_backfill(&self, id: i64, owner: &str, error: Option<&str>) -> Result<bool> {
        backfills::finish(&self.pool, id, owner, error).await
    }

    async fn version_hours(&self) -> Result<Vec<crate::VersionHour>> {
        backfills::version_hours(&self.pool).await
    }

    async fn cancel_backfill(&self, id: i64) -> Result<Option<Backfill>> {
        backfills::cancel(&self.pool, id).await
    }

    async fn tenant_by_site_key(&self, site_key: &str) -> Result<Option<TenantId>> {
        let id: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM tenant_settings WHERE site_key = $1")
            .bind(site_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("looking up a site key"))?;
        id.map(tenant_from_db).transpose()
    }
}

/// Removes files `removed` (queueing objects no file refers to any more) and records `added`;
/// returns the new files' ids. [`Error::FilesGone`] when any file to remove is already gone.
async fn swap_files(
    tx: &mut Transaction<'static, Any>,
    writer: &str,
    removed: &[i64],
    added: &[NewFile],
) -> Result<Vec<i64>> {
    let now = now_ms();
    let mut missing = 0;
    for id in removed {
        // A racing replacement of the same file holds its row lock until it commits; this
        // delete then finds the row gone and the whole replacement is abandoned.
        let path: Option<String> = sqlx::query_scalar("DELETE FROM files WHERE id = $1 RETURNING path")
            .bind(*id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(query_err("removing replaced file"))?;
        match path {
            Some(path) => queue_garbage(tx, &path, now).await?,
            None => missing += 1,
        }
    }
    if missing > 0 {
        return Err(Error::FilesGone { missing });
    }
    let mut ids = Vec::with_capacity(added.len());
    for f in added {
        ids.push(insert_file(tx, writer, 0, f, now).await?);
    }
    Ok(ids)
}

/// Queues `path` for deletion after the garbage grace period, once no file refers to it: a
/// day object stays while any of its hours is live. A path queued again is stamped with the
/// later time, so the grace period and the read horizons count from its last removal (a query
/// may have listed that last hour just before).
async fn queue_garbage(tx: &mut Transaction<'static, Any>, path: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO garbage (path, removed_at) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM files WHERE path = $1) \
         ON CONFLICT (path) DO UPDATE SET removed_at = \
           CASE WHEN excluded.removed_at > garbage.removed_at THEN excluded.removed_at ELSE garbage.removed_at END",
    )
    .bind(path)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(query_err("queueing garbage"))?;
    Ok(())
}

/// Settings as stored; fields the JSON lacks take their defaults.
fn settings_from_db(json: &str) -> Result<TenantSettings> {
    serde_json::from_str(json).map_err(|_| Error::Invalid { what: "tenant settings", value: json.to_string() })
}
