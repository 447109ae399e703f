//! Merging, de-duplicating, racing and collecting garbage.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use hourglass_catalog::{Catalog, FileFilter, NewFile, SqlCatalog};
use hourglass_jobs::{CompactionReport, Compactor, CompactorConfig};
use hourglass_storage::{ObjectStoreConfig, ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_types::schema::col;
use hourglass_types::{MockClock, PartitionKey, TableName};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const HOUR: i64 = 490_000;
const HOUR_MS: i64 = 3_600_000;

fn batch(tenant: &str, ids: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(col::TENANT_ID, DataType::Utf8, false),
        Field::new(col::TIMESTAMP, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new(col::EVENT_ID, DataType::Utf8, false),
    ]));
    let times = TimestampMillisecondArray::from_iter_values((0..ids.len()).map(|i| HOUR * HOUR_MS + i as i64))
        .with_timezone("UTC");
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| tenant))),
            Arc::new(times),
            Arc::new(StringArray::from_iter_values(ids.iter().copied())),
        ],
    )
    .expect("batch")
}

/// Writes a file the way an ingester persists one and records it in the catalog.
async fn persist(store: &dyn ObjectStore, catalog: &dyn Catalog, ingester: &str, seq: u64, batch: RecordBatch) {
    let (sorted, stats) = sort_for_parquet(&batch).expect("sort").expect("rows");
    let data = encode_parquet(&sorted, &ParquetOptions::default()).expect("encode");
    let key = PartitionKey { table: TableName::RawEvents, hour: HOUR, shard: 0 };
    let path = key.file_key(1, &format!("{ingester}-{seq}"));
    let bytes = data.len() as u64;
    store.put(&Path::from(path.as_str()), PutPayload::from(data)).await.expect("put");
    let file =
        NewFile::new(PartitionKey { table: TableName::RawEvents, hour: HOUR, shard: 0 }, 1, path, bytes, stats, None);
    catalog.commit_persist(ingester, seq, &[file]).await.expect("commit");
}

async fn raw_files(catalog: &dyn Catalog) -> Vec<(String, u64)> {
    let filter = FileFilter { table: TableName::RawEvents, tenant: None, min_time_ms: None, max_time_ms: None };
    catalog.list_files(&filter).await.expect("list").files.into_iter().map(|f| (f.file.path, f.file.rows)).collect()
}

async fn merges_dedupes_and_collects_garbage(store: Arc<dyn ObjectStore>, catalog: Arc<dyn Catalog>) {
    // A client retry that two ingesters both stored: "b" is in two files.
    persist(store.as_ref(), catalog.as_ref(), "ingester-0", 1, batch("shop", &["a", "b"])).await;
    persist(store.as_ref(), catalog.as_ref(), "ingester-1", 1, batch("shop", &["b", "c"])).await;
    persist(store.as_ref(), catalog.as_ref(), "ingester-0", 2, batch("other", &["b"])).await;
    let old_paths: Vec<String> = raw_files(catalog.as_ref()).await.into_iter().map(|(p, _)| p).collect();

    let clock = MockClock::new((HOUR + 1) * HOUR_MS + 60_000);
    let config = CompactorConfig {
        min_age: Duration::from_secs(30),
        garbage_grace: Duration::from_secs(600),
        ..CompactorConfig::default()
    };
    let compactor = Compactor::new(config.clone(), Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock.clone()));
    let report = compactor.run_once().await.expect("pass");
    assert_eq!(
        report,
        CompactionReport {
            merged: 1,
            files_in: 3,
            duplicates_dropped: 1,
            lost_races: 0,
            garbage_deleted: 0,
            orphans_queued: 0,
            days_merged: 0,
        }
    );
    let files = raw_files(catalog.as_ref()).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, 4, "a, b, c of shop and b of other");
    for path in &old_paths {
        store.head(&Path::from(path.as_str())).await.expect("replaced files stay readable during the grace period");
    }

    assert_eq!(compactor.run_once().await.expect("pass"), CompactionReport::default(), "nothing left to do");
    // Once the grace period is over, the replaced objects go.
    let impatient = CompactorConfig { garbage_grace: Duration::ZERO, ..config };
    let compactor = Compactor::new(impatient, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock));
    assert_eq!(compactor.run_once().await.expect("pass").garbage_deleted, 3);
    for path in &old_paths {
        let err = store.head(&Path::from(path.as_str())).await.expect_err("collected");
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    }
    store.head(&Path::from(files[0].0.as_str())).await.expect("the merged file stays");
}

#[tokio::test]
async fn merges_in_memory() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    merges_dedupes_and_collects_garbage(store, catalog).await;
}

#[tokio::test]
async fn merges_on_s3_and_postgres() {
    let (_s3, _pg, store, catalog) = crate::s3_and_postgres().await;
    merges_dedupes_and_collects_garbage(store, catalog).await;
}

#[tokio::test]
async fn young_partitions_wait_for_enough_files() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    for seq in 1..=3 {
        persist(store.as_ref(), catalog.as_ref(), "ingester-0", seq, batch("shop", &[&format!("e{seq}")])).await;
    }
    // Still inside the hour: three files are fewer than max_open_files.
    let clock = MockClock::new(HOUR * HOUR_MS + 1_000);
    let config = CompactorConfig { max_open_files: 4, ..CompactorConfig::default() };
    let compactor = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock));
    assert_eq!(compactor.run_once().await.expect("pass").merged, 0);
    persist(store.as_ref(), catalog.as_ref(), "ingester-0", 4, batch("shop", &["e4"])).await;
    assert_eq!(compactor.run_once().await.expect("pass").merged, 1);
    assert_eq!(raw_files(catalog.as_ref()).await, vec![(raw_files(catalog.as_ref()).await[0].0.clone(), 4)]);
}

#[tokio::test]
async fn files_from_before_a_column_was_added_merge_with_newer_ones() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    let old = batch("shop", &["a", "b"]);
    let new = batch("shop", &["c"]);
    // The newer file has one more (nullable) column, as when a release adds a derived column.
    let extra = Arc::new(StringArray::from(vec![Some("x")])) as arrow::array::ArrayRef;
    let mut fields: Vec<Field> = new.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(col::IP_HASH_PREV, DataType::Utf8, true));
    let mut columns = new.columns().to_vec();
    columns.push(extra);
    let new = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("new batch");
    persist(store.as_ref(), catalog.as_ref(), "ingester-0", 1, new).await;
    persist(store.as_ref(), catalog.as_ref(), "ingester-0", 2, old).await;

    let clock = MockClock::new((HOUR + 1) * HOUR_MS + 60_000);
    let config = CompactorConfig { min_age: Duration::from_secs(30), ..CompactorConfig::default() };
    let compactor = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock));
    assert_eq!(compactor.run_once().await.expect("pass").merged, 1);
    let files = raw_files(catalog.as_ref()).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, 3, "every row of both files");
    let bytes = store.get(&Path::from(files[0].0.as_str())).await.expect("get").bytes().await.expect("bytes");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader");
    let merged: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
    let merged = arrow::compute::concat_batches(&merged[0].schema(), &merged).expect("concat");
    let prev = merged.column_by_name(col::IP_HASH_PREV).expect("the newer column is kept");
    assert_eq!(prev.null_count(), 2, "and is null for the older file's rows");
}

/// Rows of `tenant` with ids `ids` at `times` (milliseconds into the hour).
fn timed(tenant: &str, ids: &[String], times: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(col::TENANT_ID, DataType::Utf8, false),
        Field::new(col::TIMESTAMP, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new(col::EVENT_ID, DataType::Utf8, false),
    ]));
    let times =
        TimestampMillisecondArray::from_iter_values(times.iter().map(|t| HOUR * HOUR_MS + t)).with_timezone("UTC");
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| tenant))),
            Arc::new(times),
            Arc::new(StringArray::from_iter_values(ids.iter().map(String::as_str))),
        ],
    )
    .expect("batch")
}

#[tokio::test]
async fn a_merge_in_tiny_batches_is_sorted_and_keeps_each_event_once() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    // Four files whose tenants and times interleave; every file repeats some of the previous
    // file's events (a retry stored twice), at another time.
    for seq in 0..4u64 {
        let mut parts = Vec::new();
        for tenant in ["a", "b", "c"] {
            let ids: Vec<String> = (0..800).map(|i| format!("{tenant}-{}", seq * 700 + i)).collect();
            let times: Vec<i64> = (0..800).map(|i| (i * 7919 + seq as i64 * 13) % 3_600_000).collect();
            parts.push(timed(tenant, &ids, &times));
        }
        let batch = arrow::compute::concat_batches(&parts[0].schema(), &parts).expect("concat");
        persist(store.as_ref(), catalog.as_ref(), "ingester-0", seq + 1, batch).await;
    }
    let clock = MockClock::new((HOUR + 1) * HOUR_MS + 60_000);
    // A limit this small makes output batches of 128 rows, and files of 2,400 rows are read
    // 1,024 rows at a time: input batches end in the middle of output batches and the other
    // way round.
    let config =
        CompactorConfig { min_age: Duration::from_secs(30), memory_limit: 64 * 1024, ..CompactorConfig::default() };
    let compactor = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock));
    let mut report = CompactionReport::default();
    while raw_files(catalog.as_ref()).await.len() > 1 {
        let pass = compactor.run_once().await.expect("pass");
        assert!(pass.merged > 0, "a pass merges while files remain");
        report.merged += pass.merged;
        report.duplicates_dropped += pass.duplicates_dropped;
    }
    assert_eq!(report.duplicates_dropped, 3 * 3 * 100, "100 repeated ids per tenant per later file");
    let files = raw_files(catalog.as_ref()).await;
    assert_eq!(files[0].1, 3 * (700 * 3 + 800), "each distinct event once");
    let bytes = store.get(&Path::from(files[0].0.as_str())).await.expect("get").bytes().await.expect("bytes");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
    let merged = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
    let tenants = merged.column_by_name(col::TENANT_ID).expect("tenant").as_string::<i32>();
    let times = merged
        .column_by_name(col::TIMESTAMP)
        .expect("time")
        .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    let ids = merged.column_by_name(col::EVENT_ID).expect("id").as_string::<i32>();
    let keys: Vec<(&str, i64)> = (0..merged.num_rows()).map(|i| (tenants.value(i), times.value(i))).collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "sorted by tenant, then time");
    let distinct: std::collections::HashSet<(&str, &str)> =
        (0..merged.num_rows()).map(|i| (tenants.value(i), ids.value(i))).collect();
    assert_eq!(distinct.len(), merged.num_rows(), "no event twice");
}
