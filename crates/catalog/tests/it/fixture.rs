//! A catalog on either backend, with whatever keeps its database alive.

use hourglass_catalog::{CatalogOptions, SqlCatalog};
use hourglass_testkit::PgDatabase;
use tempfile::TempDir;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty catalog database.
pub struct Fixture {
    pub url: String,
    _dir: Option<TempDir>,
    _pg: Option<PgDatabase>,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
                Self { url, _dir: Some(dir), _pg: None }
            }
            Backend::Postgres => {
                let db = PgDatabase::create().await;
                Self { url: db.url().to_string(), _dir: None, _pg: Some(db) }
            }
        }
    }

    /// Opens a new catalog handle (its own pool, like another process would).
    pub async fn open(&self) -> SqlCatalog {
        SqlCatalog::open(&self.url, &CatalogOptions::default()).await.expect("open catalog")
    }
}

/// Declares `sqlite` and `postgres` tests that run `body(fixture)` on each backend.
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            use crate::fixture::{Backend, Fixture};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Fixture::new(Backend::Sqlite).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Fixture::new(Backend::Postgres).await).await;
            }
        }
    };
}
pub(crate) use on_both_backends;
