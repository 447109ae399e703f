//! Settled days: the hours of `events` and `raw_events` merge into one object per (table, day,
//! shard), each hour keeping a file of its own that names the row groups holding its rows. Late
//! events take one hour out of the object and, once its new file is quiet, the day merges
//! again; garbage collection deletes
//! a day object only once no hour refers to it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::TimestampMillisecondType;
use bytes::Bytes;
use hourglass_catalog::{Catalog, FileFilter, FileRecord, SqlCatalog};
use hourglass_jobs::{Compactor, CompactorConfig};
use hourglass_storage::ObjectStoreConfig;
use hourglass_types::schema::col;
use hourglass_types::{MockClock, TableName};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::retention::{DAY_MS, HOUR_MS, put};

async fn files(catalog: &dyn Catalog, table: TableName) -> Vec<FileRecord> {
    let filter = FileFilter { table, tenant: None, min_time_ms: None, max_time_ms: None };
    let mut files = catalog.list_files(&filter).await.expect("list").files;
    files.sort_by_key(|f| (f.file.hour, f.id));
    files
}

async fn exists(store: &dyn ObjectStore, path: &str) -> bool {
    match store.head(&Path::from(path)).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("head {path}: {e}"),
    }
}

/// Reads a day object as any Parquet reader would and checks its layout: the row groups
/// whose first column chunk starts in an hour's segment hold exactly that hour's rows, and
/// every row group belongs to one hour.
async fn check_layout(store: &dyn ObjectStore, hours: &[FileRecord]) {
    let path = hours[0].file.path.as_str();
    let bytes: Bytes = store.get(&Path::from(path)).await.expect("get").bytes().await.expect("bytes");
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).expect("parquet");
    let groups = builder.metadata().row_groups().to_vec();
    let mut claimed = BTreeSet::new();
    for f in hours {
        assert_eq!(f.file.path, path, "one object for the day");
        let segment = f.file.segment.expect("an hour of a day object is a segment");
        assert_eq!(segment.object_bytes, bytes.len() as u64);
        assert_eq!(f.file.bytes, segment.end - segment.start);
        let mine: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                let c = g.column(0);
                let offset = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset()) as u64;
                segment.start <= offset && offset < segment.end
            })
            .map(|(i, _)| i)
            .collect();
        assert!(!mine.is_empty(), "hour {} has row groups", f.file.hour);
        for i in &mine {
            assert!(claimed.insert(*i), "row group {i} belongs to one hour");
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .expect("parquet")
            .with_row_groups(mine)
            .build()
            .expect("reader");
        let mut rows = 0;
        for batch in reader {
            let batch = batch.expect("batch");
            let times =
                batch.column_by_name(col::TIMESTAMP).expect("timestamp").as_primitive::<TimestampMillisecondType>();
            for t in times.values() {
                assert_eq!(t.div_euclid(HOUR_MS), f.file.hour, "a segment holds its own hour's rows only");
            }
            rows += batch.num_rows() as u64;
        }
        assert_eq!(rows, f.file.rows, "hour {}", f.file.hour);
    }
    assert_eq!(claimed.len(), groups.len(), "every row group is an hour's");
}

/// Now by the system clock, which stamps the files the catalog records.
fn system_now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

async fn settled_days_merge_hour_by_hour(store: Arc<dyn ObjectStore>, catalog: Arc<dyn Catalog>) {
    let (s, c) = (store.as_ref(), catalog.as_ref());
    let tenants = ["alpha", "shop"];
    let real_now = system_now_ms();
    // Three hours of a day that ended three days ago, in both tables, one object each...
    let day = (real_now / DAY_MS - 3) * 24;
    let hours = [day + 1, day + 2, day + 7];
    for table in TableName::INGESTED {
        for hour in hours {
            c.replace_files("test", &[], &[put(s, table, hour, &tenants).await]).await.expect("record");
        }
    }
    // ...and two hours of tomorrow, which has not ended.
    let tomorrow = (real_now / DAY_MS + 1) * 24;
    for hour in [tomorrow + 1, tomorrow + 3] {
        c.replace_files("test", &[], &[put(s, TableName::Events, hour, &tenants).await]).await.expect("record");
    }
    let before: Vec<String> = files(c, TableName::Events).await.into_iter().map(|f| f.file.path).collect();

    // The compactor's clock is 2 h (the default quiet period) past the moment after the files
    // were recorded: they are quiet, and any file recorded from now on is not.
    let recorded = system_now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let clock = MockClock::new(recorded + 2 * HOUR_MS);
    let config = CompactorConfig { garbage_grace: Duration::ZERO, ..CompactorConfig::default() };
    let compactor = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock.clone()));
    let report = compactor.run_once().await.expect("pass");
    assert_eq!((report.days_merged, report.merged), (2, 0), "{report:?}");
    assert_eq!(report.garbage_deleted, 6, "the six hour objects");
    for table in TableName::INGESTED {
        let listed = files(c, table).await;
        let merged: Vec<FileRecord> = listed.iter().filter(|f| f.file.hour < day + 24).cloned().collect();
        assert_eq!(merged.iter().map(|f| f.file.hour).collect::<Vec<_>>(), hours, "{table:?}: a file per hour");
        assert!(merged.iter().all(|f| f.file.rows == 6), "{table:?}: each hour keeps its rows");
        check_layout(s, &merged).await;
    }
    let events = files(c, TableName::Events).await;
    assert_eq!(
        events.iter().filter(|f| f.file.hour > day + 24).map(|f| &f.file.path).collect::<Vec<_>>(),
        before[3..].iter().collect::<Vec<_>>(),
        "tomorrow is not merged"
    );
    for path in &before[..3] {
        assert!(!exists(s, path).await, "a merged hour's own object is collected");
    }
    assert_eq!(compactor.run_once().await.expect("pass").days_merged, 0, "a merged day stays merged");

    // Late events of the day's second hour: the hour's compaction reads the hour's segment
    // alone (not the whole day) with the late file, and takes the hour out of the day object.
    let first_object = events[0].file.path.clone();
    c.replace_files("test", &[], &[put(s, TableName::Events, day + 2, &["late"]).await]).await.expect("record");
    let report = compactor.run_once().await.expect("pass");
    assert_eq!((report.merged, report.days_merged), (1, 0), "{report:?}");
    let events = files(c, TableName::Events).await;
    let second = events.iter().find(|f| f.file.hour == day + 2).expect("the hour");
    assert_eq!((second.file.rows, second.file.segment), (9, None), "the hour's six rows and the three late ones");
    assert!(exists(s, &first_object).await, "the day object still holds two hours");

    // The day merges again once its new file is quiet too; the first day object then goes.
    assert_eq!(compactor.run_once().await.expect("pass").days_merged, 0, "the hour's file just changed");
    clock.set(system_now_ms() + 2 * HOUR_MS + 1);
    let report = compactor.run_once().await.expect("pass");
    assert_eq!(report.days_merged, 1, "{report:?}");
    let events = files(c, TableName::Events).await;
    let day_files: Vec<FileRecord> = events.iter().filter(|f| f.file.hour < day + 24).cloned().collect();
    assert_eq!(day_files.iter().map(|f| f.file.rows).collect::<Vec<_>>(), [6, 9, 6]);
    check_layout(s, &day_files).await;
    assert!(!exists(s, &first_object).await, "no hour refers to the first day object any more");

    // Retention removes hours one by one: the object stays while any hour refers to it.
    let object = day_files[0].file.path.clone();
    assert_eq!(c.expire_files(&[day_files[0].id, day_files[1].id]).await.expect("expire"), 2);
    assert_eq!(compactor.run_once().await.expect("pass").garbage_deleted, 0, "one hour still refers to it");
    assert!(exists(s, &object).await);
    assert_eq!(c.expire_files(&[day_files[2].id]).await.expect("expire"), 1);
    assert_eq!(compactor.run_once().await.expect("pass").garbage_deleted, 1, "its last hour expired");
    assert!(!exists(s, &object).await);
}

#[tokio::test]
async fn day_objects_in_memory() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    settled_days_merge_hour_by_hour(store, catalog).await;
}

#[tokio::test]
async fn day_objects_on_s3_and_postgres() {
    let (_s3, _pg, store, catalog) = crate::s3_and_postgres().await;
    settled_days_merge_hour_by_hour(store, catalog).await;
}
