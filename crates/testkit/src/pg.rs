//! Throwaway PostgreSQL databases for tests.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::unique_name;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty database on the test PostgreSQL server, dropped on drop.
pub struct PgDatabase {
    server: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates the database. Panics with instructions when the server is unreachable.
    pub async fn create() -> Self {
        let server = std::env::var("HOURGLASS_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_string());
        let name = unique_name("hourglass_test").replace('-', "_");
        let mut conn = PgConnection::connect(&server).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {server} ({e}); start it (scripts/test-deps does) or set \
                 HOURGLASS_TEST_POSTGRES"
            )
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("creating the test database");
        let _ = conn.close().await;
        let base = server.rsplit_once('/').map(|(base, _)| base).unwrap_or(&server);
        let url = format!("{base}/{name}");
        Self { server, name, url }
    }

    /// The database's connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop cannot await; a short-lived runtime on its own thread does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
