//! A small forward-only migration runner: each migration runs once, inside a transaction, and
//! is recorded in `schema_migrations`. On PostgreSQL a session advisory lock serializes nodes
//! that start at the same moment; on SQLite the write transaction does.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor};

use crate::dialect::Dialect;
use crate::{Error, Result};

/// The advisory lock key every Hourglass node takes while migrating ("hglass" in ASCII).
const MIGRATION_LOCK: i64 = 0x6867_6c61_7373;

fn failed(version: i64) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Migrate { version, source }
}

/// Applies every migration not yet recorded; refuses a schema newer than this binary knows.
pub(crate) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(failed(0))?;
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await.map_err(failed(0))?;
    }
    let outcome = apply(&mut conn, dialect).await;
    if dialect == Dialect::Postgres {
        // Closing the session would release the lock too, but the connection returns to the pool.
        let unlock = sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await;
        if let Err(source) = unlock {
            tracing::warn!(error = %source, "releasing the migration lock failed; closing the connection");
            let _ = conn.close().await;
        }
    }
    outcome
}

async fn apply(conn: &mut PoolConnection<Any>, dialect: Dialect) -> Result<()> {
    let bootstrap =
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
    conn.execute(bootstrap).await.map_err(failed(0))?;
    let migrations = dialect.migrations();
    let supported = migrations.last().map(|(v, _)| *v).unwrap_or(0);
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut **conn)
        .await
        .map_err(failed(0))?;
    if let Some(found) = newest.filter(|v| *v > supported) {
        return Err(Error::SchemaTooNew { found, supported });
    }
    for (version, sql) in migrations {
        let version = *version;
        let mut tx = conn.begin_with(dialect.begin_write()).await.map_err(failed(version))?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed(version))?;
        if done.is_some() {
            continue;
        }
        tx.execute(*sql).await.map_err(failed(version))?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(failed(version))?;
        tx.commit().await.map_err(failed(version))?;
        tracing::info!(version, "applied catalog migration");
    }
    Ok(())
}

/// Wall-clock time in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
