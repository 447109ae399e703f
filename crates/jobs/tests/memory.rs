//! A partition several times larger than the compactor's memory limit merges within it.
//!
//! This test binary counts every heap allocation (`peak_alloc` as the global allocator) and
//! holds this one test, so the peak it reads is the merge's: the partition's files sit on
//! local disk, not on the heap. Heap bytes rather than resident memory: what the allocator
//! keeps from freed memory and what other threads of a server do would drown the figure.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use hourglass_catalog::{Catalog, FileFilter, NewFile, SqlCatalog};
use hourglass_jobs::{Compactor, CompactorConfig};
use hourglass_storage::{ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_types::schema::col;
use hourglass_types::{MockClock, PartitionKey, TableName};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const HOUR: i64 = 490_000;
const HOUR_MS: i64 = 3_600_000;
const MIB: usize = 1024 * 1024;

/// `rows` page views of three tenants, with the long strings real events carry; ids from
/// `first_id` on, so that consecutive files can share some.
fn events(first_id: usize, rows: usize) -> RecordBatch {
    let text = |name: &str, f: &dyn Fn(usize) -> String| -> (Field, ArrayRef) {
        (Field::new(name, DataType::Utf8, true), Arc::new(StringArray::from_iter_values((0..rows).map(f))))
    };
    let tenants = ["alpha", "beta", "gamma"];
    let columns = vec![
        text(col::TENANT_ID, &|i| tenants[(first_id + i) % 3].to_string()),
        (
            Field::new(col::TIMESTAMP, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    (0..rows).map(|i| HOUR * HOUR_MS + ((first_id + i) as i64 * 7919) % HOUR_MS),
                )
                .with_timezone("UTC"),
            ),
        ),
        text(col::EVENT_ID, &|i| format!("{}-{:012}", tenants[(first_id + i) % 3], first_id + i)),
        text(col::URL, &|i| {
            format!("https://shop.example/catalog/item-{}?utm_source=news&utm_campaign=c{}", i % 9000, i % 40)
        }),
        text(col::REFERRER, &|i| format!("https://www.google.com/search?q=item+{}", i % 7000)),
        text(col::USER_AGENT, &|i| {
            format!(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.{}.0 Safari/537.36",
                i % 300
            )
        }),
        text(col::TITLE, &|i| format!("Item {} - Shop", i % 9000)),
        text(col::CLIENT_ID, &|i| format!("client-{:08}", i % 20_000)),
    ];
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch")
}

#[tokio::test]
async fn a_partition_several_times_its_memory_limit_merges_within_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("local store"));
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    let (files, rows) = (24, 15_000);
    let overlap = 1_000;
    let mut decoded = 0;
    for seq in 0..files {
        // Each file repeats the previous file's last 1,000 events: retries stored twice.
        let batch = events(seq * (rows - overlap), rows);
        decoded += batch.get_array_memory_size();
        let (sorted, stats) = sort_for_parquet(&batch).expect("sort").expect("rows");
        let data = encode_parquet(&sorted, &ParquetOptions::default()).expect("encode");
        let key = PartitionKey { table: TableName::Events, hour: HOUR, shard: 0 };
        let path = key.file_key(1, &format!("input-{seq}"));
        let bytes = data.len() as u64;
        store.put(&Path::from(path.as_str()), PutPayload::from(data)).await.expect("put");
        let file = NewFile::new(key, 1, path, bytes, stats, Some(4));
        catalog.replace_files("test", &[], &[file]).await.expect("record");
    }
    let limit = 40 * MIB;
    let config = CompactorConfig {
        min_age: Duration::from_secs(30),
        memory_limit: limit as u64,
        max_input_bytes: u64::MAX,
        ..CompactorConfig::default()
    };
    let clock = MockClock::new((HOUR + 1) * HOUR_MS + 60_000);
    let compactor = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock));
    let listed = |catalog: Arc<dyn Catalog>| async move {
        let filter = FileFilter { table: TableName::Events, tenant: None, min_time_ms: None, max_time_ms: None };
        catalog.list_files(&filter).await.expect("list").files
    };

    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let (mut passes, mut duplicates) = (0, 0);
    while listed(Arc::clone(&catalog)).await.len() > 1 {
        let report = compactor.run_once().await.expect("pass");
        assert!(report.merged > 0, "a pass merges while files remain");
        (passes, duplicates) = (passes + 1, duplicates + report.duplicates_dropped);
    }
    let used = HEAP.peak_usage().saturating_sub(before);
    println!(
        "compaction: {files} files, {} events, {} MiB decoded; limit {} MiB; merges held at most {:.1} MiB \
         of heap over {passes} passes",
        files * rows,
        decoded / MIB,
        limit / MIB,
        used as f64 / MIB as f64
    );
    assert!(decoded >= 3 * limit, "the partition ({decoded} bytes decoded) is several times the limit");
    assert!(used <= limit, "the merges held {used} bytes; the limit is {limit}");

    let merged = listed(Arc::clone(&catalog)).await;
    let distinct = files * (rows - overlap) + overlap;
    assert_eq!(duplicates, (files - 1) * overlap, "each repeated event dropped");
    assert_eq!(merged[0].file.rows, distinct as u64, "every distinct event once");
    let bytes = store.get(&Path::from(merged[0].file.path.as_str())).await.expect("get").bytes().await.expect("bytes");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut ids = std::collections::HashSet::new();
    let mut last: Option<(String, i64)> = None;
    for batch in reader {
        let batch = batch.expect("batch");
        let tenants = batch.column_by_name(col::TENANT_ID).expect("tenant").as_string::<i32>();
        let times = batch
            .column_by_name(col::TIMESTAMP)
            .expect("time")
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let events = batch.column_by_name(col::EVENT_ID).expect("id").as_string::<i32>();
        for i in 0..batch.num_rows() {
            let key = (tenants.value(i).to_string(), times.value(i));
            assert!(last.as_ref().is_none_or(|l| *l <= key), "sorted by tenant, then time");
            last = Some(key);
            assert!(ids.insert(events.value(i).to_string()), "{} twice", events.value(i));
        }
    }
    assert_eq!(ids.len(), distinct);
}
