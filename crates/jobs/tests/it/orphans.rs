//! Objects never committed are found and deleted as garbage; nothing the catalog knows is
//! touched, nor anything outside the prefixes it records, nor an object younger than the age.

use std::sync::Arc;
use std::time::Duration;

use hourglass_catalog::{Catalog, SqlCatalog};
use hourglass_jobs::{Compactor, CompactorConfig};
use hourglass_storage::ObjectStoreConfig;
use hourglass_types::{MockClock, PartitionKey, TableName};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::retention::{NOW_MS, put};

async fn exists(store: &dyn ObjectStore, path: &str) -> bool {
    match store.head(&Path::from(path)).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("head {path}: {e}"),
    }
}

async fn sweeps_only_what_was_never_committed(store: Arc<dyn ObjectStore>, catalog: Arc<dyn Catalog>) {
    let (s, c) = (store.as_ref(), catalog.as_ref());
    let hour = NOW_MS / 3_600_000 - 48;
    // Committed: a raw file, and an events file later replaced (its object is garbage, in its
    // grace period).
    let raw = put(s, TableName::RawEvents, hour, &["shop"]).await;
    let replaced = put(s, TableName::Events, hour, &["shop"]).await;
    c.replace_files("test", &[], &[raw.clone(), replaced.clone()]).await.expect("commit");
    let replacing = put(s, TableName::Events, hour, &["shop"]).await;
    let listing = c.list_files(&hourglass_catalog::FileFilter {
        table: TableName::Events,
        tenant: None,
        min_time_ms: None,
        max_time_ms: None,
    });
    let old_id = listing.await.expect("list").files[0].id;
    c.replace_files("test", &[old_id], std::slice::from_ref(&replacing)).await.expect("replace");
    // Never committed: written by a job that died before recording them.
    let lost_raw = put(s, TableName::RawEvents, hour, &["shop"]).await.path;
    let lost_rollup = PartitionKey { table: TableName::Rollups, hour, shard: 0 }.file_key(7, "lost");
    let lost_import = "imports/shop/visits/lost.parquet".to_string();
    // Outside the catalog's prefixes: left alone whatever it is.
    let wal = "wal/ingester-1/00000000000000000001.wal".to_string();
    for path in [&lost_rollup, &lost_import, &wal] {
        s.put(&Path::from(path.as_str()), PutPayload::from_static(b"x")).await.expect("put");
    }

    let config = |orphan_age| CompactorConfig {
        orphan_age,
        garbage_grace: Duration::ZERO,
        min_age: Duration::from_secs(3600 * 24 * 365 * 100),
        merge_days_after: None,
        ..CompactorConfig::default()
    };
    let clock = Arc::new(MockClock::new(NOW_MS));
    let patient =
        Compactor::new(config(Duration::from_secs(3600)), Arc::clone(&store), Arc::clone(&catalog), clock.clone());
    assert_eq!(patient.sweep_orphans().await.expect("sweep"), 0, "every object is younger than the age");

    let sweeper = Compactor::new(config(Duration::ZERO), Arc::clone(&store), Arc::clone(&catalog), clock);
    assert_eq!(sweeper.sweep_orphans().await.expect("sweep"), 3, "the three objects never committed");
    assert_eq!(sweeper.sweep_orphans().await.expect("sweep"), 0, "queued once");
    let report = sweeper.run_once().await.expect("pass");
    assert_eq!(report.garbage_deleted, 4, "the three, and the replaced file: {report:?}");
    for gone in [&lost_raw, &lost_rollup, &lost_import, &replaced.path] {
        assert!(!exists(s, gone).await, "{gone} deleted");
    }
    for kept in [&raw.path, &replacing.path, &wal] {
        assert!(exists(s, kept).await, "{kept} kept");
    }
}

#[tokio::test]
async fn orphans_in_memory() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    sweeps_only_what_was_never_committed(store, catalog).await;
}

#[tokio::test]
async fn orphans_on_s3_and_postgres() {
    let (_s3, _pg, store, catalog) = crate::s3_and_postgres().await;
    sweeps_only_what_was_never_committed(store, catalog).await;
}
