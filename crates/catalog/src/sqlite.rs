//! The SQLite catalog used in embedded mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hourglass_types::{TableName, TenantId};
use rand::RngCore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::migrate::{chrono_now_ms, run_sqlite};
use crate::{Catalog, Error, FileFilter, FileListing, FileRecord, NewFile, Principal, Result};

/// A catalog in one SQLite database file (WAL journal, synchronous=FULL so that a commit is
/// durable when it returns).
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

fn query_err(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Query { operation, source }
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let location = path.display().to_string();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{location}"))
            .map_err(|source| Error::Open { location: location.clone(), source })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::connect(options, &location).await
    }

    /// A fresh in-memory catalog; for tests.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|source| Error::Open { location: ":memory:".into(), source })?;
        // One connection: every in-memory connection would be a separate database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open { location: ":memory:".into(), source })?;
        run_sqlite(&pool).await?;
        Ok(Self { pool })
    }

    async fn connect(options: SqliteConnectOptions, location: &str) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open { location: location.to_string(), source })?;
        run_sqlite(&pool).await?;
        Ok(Self { pool })
    }
}

fn tenant_from_db(id: String) -> Result<TenantId> {
    TenantId::new(&id).map_err(|_| Error::Invalid { what: "tenant id", value: id })
}

fn file_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<FileRecord> {
    let get = |e| Error::Query { operation: "reading a file row", source: e };
    let table: String = row.try_get("table_name").map_err(get)?;
    let table = TableName::parse(&table).ok_or(Error::Invalid { what: "table name", value: table })?;
    Ok(FileRecord {
        id: row.try_get("id").map_err(get)?,
        file: NewFile {
            table,
            hour: row.try_get("hour").map_err(get)?,
            shard: row.try_get::<i64, _>("shard").map_err(get)? as u32,
            generation: row.try_get::<i64, _>("generation").map_err(get)? as u64,
            path: row.try_get("path").map_err(get)?,
            min_tenant: row.try_get("min_tenant").map_err(get)?,
            max_tenant: row.try_get("max_tenant").map_err(get)?,
            min_time_ms: row.try_get("min_time").map_err(get)?,
            max_time_ms: row.try_get("max_time").map_err(get)?,
            rows: row.try_get::<i64, _>("rows").map_err(get)? as u64,
            bytes: row.try_get::<i64, _>("bytes").map_err(get)? as u64,
            processor_version: row.try_get("processor_version").map_err(get)?,
        },
        ingester_id: row.try_get("ingester_id").map_err(get)?,
        wal_through: row.try_get::<i64, _>("wal_through").map_err(get)? as u64,
    })
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn create_tenant(&self, tenant: &TenantId, write_key_hash: &str, read_token_hash: &str) -> Result<()> {
        let now = chrono_now_ms();
        let mut tx = self.pool.begin().await.map_err(query_err("starting create tenant"))?;
        let inserted = sqlx::query("INSERT INTO tenants (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING")
            .bind(tenant.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_err("inserting tenant"))?;
        if inserted.rows_affected() == 0 {
            return Err(Error::TenantExists { tenant: tenant.to_string() });
        }
        for (hash, kind) in [(write_key_hash, "write"), (read_token_hash, "read")] {
            sqlx::query("INSERT INTO tokens (hash, kind, tenant_id, created_at) VALUES (?, ?, ?, ?)")
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
        sqlx::query("INSERT INTO tokens (hash, kind, tenant_id, created_at) VALUES (?, 'admin', NULL, ?) ON CONFLICT (hash) DO NOTHING")
            .bind(token_hash)
            .bind(chrono_now_ms())
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
        let row: Option<(String, Option<String>)> = sqlx::query_as("SELECT kind, tenant_id FROM tokens WHERE hash = ?")
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
            (other, _) => {
                return Err(Error::Invalid { what: "token kind", value: other.to_string() });
            }
        };
        Ok(Some(principal))
    }

    async fn commit_persist(&self, ingester_id: &str, wal_through: u64, files: &[NewFile]) -> Result<()> {
        let now = chrono_now_ms();
        let mut tx = self
            .pool
            // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
            // writes can fail with SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry.
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_err("starting persist commit"))?;
        let current: Option<i64> = sqlx::query_scalar("SELECT persisted_through FROM ingesters WHERE id = ?")
            .bind(ingester_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_err("reading ingester position"))?;
        if current.is_some_and(|p| p as u64 >= wal_through) {
            // Already committed (a retry after an ambiguous failure): recording the files
            // again would duplicate their rows.
            return Ok(());
        }
        for f in files {
            sqlx::query(
                "INSERT INTO files (table_name, hour, shard, generation, path, min_tenant, max_tenant, \
                 min_time, max_time, rows, bytes, processor_version, ingester_id, wal_through, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(f.table.as_str())
            .bind(f.hour)
            .bind(i64::from(f.shard))
            .bind(f.generation as i64)
            .bind(&f.path)
            .bind(&f.min_tenant)
            .bind(&f.max_tenant)
            .bind(f.min_time_ms)
            .bind(f.max_time_ms)
            .bind(f.rows as i64)
            .bind(f.bytes as i64)
            .bind(f.processor_version)
            .bind(ingester_id)
            .bind(wal_through as i64)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_err("inserting file"))?;
        }
        sqlx::query(
            "INSERT INTO ingesters (id, persisted_through, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET persisted_through = MAX(persisted_through, excluded.persisted_through), \
             updated_at = excluded.updated_at",
        )
        .bind(ingester_id)
        .bind(wal_through as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_err("updating ingester position"))?;
        tx.commit().await.map_err(query_err("committing persist"))
    }

    async fn persisted_position(&self, ingester_id: &str) -> Result<Option<u64>> {
        let pos: Option<i64> = sqlx::query_scalar("SELECT persisted_through FROM ingesters WHERE id = ?")
            .bind(ingester_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading ingester position"))?;
        Ok(pos.map(|p| p as u64))
    }

    async fn list_files(&self, filter: &FileFilter) -> Result<FileListing> {
        let mut tx = self.pool.begin().await.map_err(query_err("starting file listing"))?;
        let rows = sqlx::query(
            "SELECT id, table_name, hour, shard, generation, path, min_tenant, max_tenant, min_time, max_time, \
             rows, bytes, processor_version, ingester_id, wal_through FROM files \
             WHERE table_name = ?1 \
               AND (?2 IS NULL OR (min_tenant <= ?2 AND max_tenant >= ?2)) \
               AND (?3 IS NULL OR max_time >= ?3) \
               AND (?4 IS NULL OR min_time < ?4) \
             ORDER BY hour, shard, id",
        )
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
        sqlx::query("INSERT INTO salts (day, salt) VALUES (?, ?) ON CONFLICT (day) DO NOTHING")
            .bind(day)
            .bind(&fresh)
            .execute(&self.pool)
            .await
            .map_err(query_err("creating salt"))?;
        sqlx::query_scalar("SELECT salt FROM salts WHERE day = ?")
            .bind(day)
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("reading salt"))
    }
}

#[cfg(test)]
mod tests;
