//! A small forward-only migration runner: each migration runs once, inside a transaction,
//! and is recorded in `schema_migrations`.

use sqlx::{Executor, SqlitePool};

use crate::{Error, Result};

/// The SQLite migrations, in order.
pub(crate) const SQLITE: &[(i64, &str)] = &[(1, include_str!("../../../sql/sqlite/0001_init.sql"))];

/// Applies every migration not yet recorded.
pub(crate) async fn run_sqlite(pool: &SqlitePool) -> Result<()> {
    let bootstrap =
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)";
    pool.execute(bootstrap).await.map_err(|source| Error::Migrate { version: 0, source })?;
    for (version, sql) in SQLITE {
        let mut tx = pool.begin().await.map_err(|source| Error::Migrate { version: *version, source })?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|source| Error::Migrate { version: *version, source })?;
        if done.is_some() {
            continue;
        }
        tx.execute(*sql).await.map_err(|source| Error::Migrate { version: *version, source })?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(chrono_now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|source| Error::Migrate { version: *version, source })?;
        tx.commit().await.map_err(|source| Error::Migrate { version: *version, source })?;
        tracing::info!(version, "applied catalog migration");
    }
    Ok(())
}

pub(crate) fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
