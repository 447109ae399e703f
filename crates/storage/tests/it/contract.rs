//! Conditional writes, multipart uploads, ranged reads, listing and deletes.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use hourglass_storage::{ObjectStoreConfig, S3Config, probe};
use hourglass_testkit::S3Server;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

/// Runs every check against `store`.
pub async fn check_contract(store: Arc<dyn ObjectStore>) {
    probe(store.as_ref(), "").await.expect("an empty store answers a listing");
    round_trip(&store).await;
    create_only(&store).await;
    multipart(&store).await;
    ranged_reads(&store).await;
    listing_and_delete(&store).await;
}

async fn round_trip(store: &Arc<dyn ObjectStore>) {
    let path = Path::from("contract/round/trip.bin");
    store.put(&path, PutPayload::from_static(b"hello hourglass")).await.expect("put");
    let got = store.get(&path).await.expect("get").bytes().await.expect("bytes");
    assert_eq!(&got[..], b"hello hourglass");
    let meta = store.head(&path).await.expect("head");
    assert_eq!(meta.size, 15);
    let missing = store.get(&Path::from("contract/absent")).await.expect_err("absent object");
    assert!(matches!(missing, object_store::Error::NotFound { .. }), "{missing}");
}

async fn create_only(store: &Arc<dyn ObjectStore>) {
    let path = Path::from("contract/create/once.wal");
    let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
    store.put_opts(&path, PutPayload::from_static(b"first"), create()).await.expect("first create");
    let err = store
        .put_opts(&path, PutPayload::from_static(b"second"), create())
        .await
        .expect_err("a second create of the same key must be refused");
    assert!(matches!(err, object_store::Error::AlreadyExists { .. }), "{err}");
    let got = store.get(&path).await.expect("get").bytes().await.expect("bytes");
    assert_eq!(&got[..], b"first", "a refused create must not overwrite");
}

/// Deterministic bytes that differ at every offset, so a misplaced part or range shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

async fn multipart(store: &Arc<dyn ObjectStore>) {
    // S3 needs parts of at least 5 MiB except the last: 12 MiB makes three parts.
    let data = pattern(12 * 1024 * 1024 + 123);
    let path = Path::from("contract/multipart/big.parquet");
    let upload = store.put_multipart(&path).await.expect("start multipart");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    for piece in data.chunks(1024 * 1024) {
        writer.write(piece);
    }
    writer.finish().await.expect("complete multipart");
    let got = store.get(&path).await.expect("get").bytes().await.expect("bytes");
    assert_eq!(got.len(), data.len());
    assert!(got[..] == data[..], "multipart upload reassembled differently");
}

async fn ranged_reads(store: &Arc<dyn ObjectStore>) {
    let data = Bytes::from(pattern(100_000));
    let path = Path::from("contract/ranges/file.bin");
    store.put(&path, PutPayload::from(data.clone())).await.expect("put");
    let one = store.get_range(&path, 1000..1100).await.expect("range");
    assert_eq!(one, data.slice(1000..1100));
    let many = store.get_ranges(&path, &[0..10, 50_000..50_010, 99_990..100_000]).await.expect("ranges");
    assert_eq!(many, vec![data.slice(0..10), data.slice(50_000..50_010), data.slice(99_990..100_000)]);
}

async fn listing_and_delete(store: &Arc<dyn ObjectStore>) {
    for key in ["list/a/1", "list/a/2", "list/b/1", "listing-sibling"] {
        store.put(&Path::from(key), PutPayload::from_static(b"x")).await.expect("put");
    }
    let mut keys: Vec<String> =
        store.list(Some(&Path::from("list"))).map_ok(|m| m.location.to_string()).try_collect().await.expect("list");
    keys.sort();
    assert_eq!(keys, ["list/a/1", "list/a/2", "list/b/1"], "a prefix lists whole path segments only");
    let tree = store.list_with_delimiter(Some(&Path::from("list"))).await.expect("list with delimiter");
    let mut dirs: Vec<String> = tree.common_prefixes.iter().map(|p| p.to_string()).collect();
    dirs.sort();
    assert_eq!(dirs, ["list/a", "list/b"]);
    store.delete(&Path::from("list/a/1")).await.expect("delete");
    let err = store.get(&Path::from("list/a/1")).await.expect_err("deleted");
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn local_directory_meets_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStoreConfig::Local { dir: dir.path().join("objects") }.build().expect("local store");
    check_contract(store).await;
}

#[tokio::test]
async fn memory_meets_the_contract() {
    check_contract(ObjectStoreConfig::Memory.build().expect("memory store")).await;
}

/// Builds a store on the fixture's bucket, with credentials passed explicitly rather than
/// through this process's environment (tests run in parallel threads).
pub fn s3_store(server: &S3Server) -> Arc<dyn ObjectStore> {
    let mut config = S3Config::new(server.bucket());
    config.endpoint = Some(server.endpoint().to_string());
    config.region = Some("us-east-1".to_string());
    config.access_key = Some(("hourglass-test".to_string(), "hourglass-test-secret".to_string()));
    ObjectStoreConfig::S3(config).build().expect("s3 store")
}

#[tokio::test]
async fn s3_server_meets_the_contract() {
    let server = S3Server::start().await;
    check_contract(s3_store(&server)).await;
}

#[tokio::test]
async fn unreachable_s3_fails_within_the_retry_budget() {
    let mut config = S3Config::new("nowhere");
    config.endpoint = Some(format!("http://127.0.0.1:{}", hourglass_testkit::free_port()));
    config.access_key = Some(("k".to_string(), "s".to_string()));
    config.retry_timeout = std::time::Duration::from_secs(1);
    let store = ObjectStoreConfig::S3(config).build().expect("building needs no network");
    let err = store.put(&Path::from("x"), PutPayload::from_static(b"x")).await.expect_err("nothing listens");
    assert!(!matches!(err, object_store::Error::AlreadyExists { .. }), "{err}");
    probe(store.as_ref(), "").await.expect_err("probe of an unreachable store fails");
}
