//! The ingester on an in-memory object store and catalog: persist, crash, replay, de-duplicate.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use hourglass_catalog::{Catalog, FileFilter, SqlCatalog};
use hourglass_types::{MockClock, TableName, TenantId};
use object_store::ObjectStore;
use object_store::memory::InMemory;

use crate::{Ingester, IngesterConfig};

const NOW: i64 = 1_800_000_000_000;

fn body(prefix: &str, n: usize) -> Bytes {
    let lines: String = (0..n)
        .map(|i| format!("{{\"event_id\":\"{prefix}{i}\",\"name\":\"pageview\",\"url\":\"https://a.example/{i}\"}}\n"))
        .collect();
    Bytes::from(lines)
}

fn tenant() -> TenantId {
    TenantId::new("shop").expect("tenant")
}

async fn start(store: &Arc<dyn ObjectStore>, catalog: &Arc<dyn Catalog>) -> Arc<Ingester> {
    let config = IngesterConfig { persist_max_age_ms: i64::MAX, ..Default::default() };
    Ingester::start(config, Arc::clone(store), Arc::clone(catalog), Arc::new(MockClock::new(NOW))).await.expect("start")
}

fn buffered(ingester: &Ingester) -> usize {
    ingester
        .snapshot(TableName::Events, &tenant(), 0, i64::MAX - 1)
        .expect("snapshot")
        .iter()
        .flat_map(|c| &c.batches)
        .map(|b| b.num_rows())
        .sum()
}

async fn objects(store: &Arc<dyn ObjectStore>, prefix: &str) -> usize {
    let prefix = object_store::path::Path::from(prefix);
    store.list(Some(&prefix)).try_collect::<Vec<_>>().await.expect("list").len()
}

#[tokio::test]
async fn flush_writes_files_records_them_and_trims_the_wal() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    let ingester = start(&store, &catalog).await;
    let outcome = ingester.ingest(&tenant(), body("a", 5), false).await.expect("ingest");
    assert_eq!(outcome.accepted, 5);
    assert_eq!(objects(&store, "wal").await, 1);
    assert_eq!(buffered(&ingester), 5);

    ingester.flush().await.expect("flush");
    assert_eq!(buffered(&ingester), 0);
    assert_eq!(objects(&store, "wal").await, 0, "persisted segments are deleted");
    let listing = catalog
        .list_files(&FileFilter {
            table: TableName::Events,
            tenant: Some(tenant()),
            min_time_ms: None,
            max_time_ms: None,
        })
        .await
        .expect("list");
    assert_eq!(listing.files.len(), 1);
    assert_eq!(listing.files[0].file.rows, 5);
    assert_eq!(listing.files[0].file.processor_version, Some(hourglass_processor::PROCESSOR_VERSION));
    assert_eq!(listing.persisted.get("ingester-0"), Some(&1));
    assert_eq!(objects(&store, "events").await, 1);
    assert_eq!(objects(&store, "raw_events").await, 1);
}

#[tokio::test]
async fn a_restart_replays_unpersisted_events_once() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    let first = start(&store, &catalog).await;
    first.ingest(&tenant(), body("a", 3), false).await.expect("ingest");
    first.flush().await.expect("flush");
    first.ingest(&tenant(), body("b", 4), false).await.expect("ingest");
    first.ingest(&tenant(), body("c", 2), false).await.expect("ingest");

    // As after a crash: a new ingester on the same storage, the old one never shut down.
    let second = start(&store, &catalog).await;
    assert_eq!(second.replay_report().segments, 2);
    assert_eq!(second.replay_report().events, 6);
    assert_eq!(second.replay_report().next_segment, 4);
    assert_eq!(buffered(&second), 6, "only events above the persisted position are replayed");
    let retry = second.ingest(&tenant(), body("b", 4), false).await.expect("retry");
    assert_eq!((retry.accepted, retry.duplicates), (4, 4));
    assert_eq!(buffered(&second), 6);
    second.shutdown().await.expect("shutdown");
    assert_eq!(objects(&store, "wal").await, 0);
}

#[tokio::test]
async fn shutdown_refuses_new_requests() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    let ingester = start(&store, &catalog).await;
    ingester.ingest(&tenant(), body("a", 1), false).await.expect("ingest");
    ingester.shutdown().await.expect("shutdown");
    let err = ingester.ingest(&tenant(), body("b", 1), false).await.expect_err("stopped");
    assert!(matches!(err, crate::Error::ShuttingDown), "{err}");
    assert_eq!(objects(&store, "events").await, 1, "shutdown persisted the buffer");
}
