//! The compactor, day objects, retention, rollup day files and the orphan sweep over an in-memory store and
//! catalog, and over a real S3-protocol server and PostgreSQL.

use std::sync::Arc;

use hourglass_catalog::{Catalog, CatalogOptions, SqlCatalog};
use hourglass_storage::{ObjectStoreConfig, S3Config};
use hourglass_testkit::{PgDatabase, S3Server};
use object_store::ObjectStore;

mod compaction;
mod day_objects;
mod orphans;
mod retention;
mod rollup_days;

/// A real S3-protocol server and a fresh PostgreSQL database, with a store and a catalog on
/// them; the servers live as long as the first two values.
pub(crate) async fn s3_and_postgres() -> (S3Server, PgDatabase, Arc<dyn ObjectStore>, Arc<dyn Catalog>) {
    let s3 = S3Server::start().await;
    let pg = PgDatabase::create().await;
    let mut config = S3Config::new(s3.bucket());
    config.endpoint = Some(s3.endpoint().to_string());
    config.access_key = Some(("hourglass-test".to_string(), "hourglass-test-secret".to_string()));
    let store = ObjectStoreConfig::S3(config).build().expect("store");
    let catalog: Arc<dyn Catalog> =
        Arc::new(SqlCatalog::open(pg.url(), &CatalogOptions::default()).await.expect("catalog"));
    (s3, pg, store, catalog)
}
