//! Retention: exactly the expired partitions leave, shared files lose exactly the expired
//! tenants' rows, and garbage collection then deletes the objects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use hourglass_catalog::{Catalog, CatalogOptions, FileFilter, NewFile, NewRollupHour, SqlCatalog};
use hourglass_jobs::{Compactor, CompactorConfig, Retention, RetentionConfig, RetentionReport};
use hourglass_storage::{ObjectStoreConfig, ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_testkit::PgDatabase;
use hourglass_types::schema::col;
use hourglass_types::settings::{RetentionDays, RetentionPatch, SettingsPatch};
use hourglass_types::{MockClock, PartitionKey, TableName, TenantId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;
/// "Now": half past midnight of day 20,000 since the epoch.
pub(crate) const NOW_MS: i64 = 20_000 * DAY_MS + 30 * 60_000;

/// The hour `days` days before now's hour (so it ended a little more than that long ago).
fn days_ago(days: i64) -> i64 {
    NOW_MS / HOUR_MS - days * 24 - 1
}

/// One row per (tenant, id) at the start of `hour`.
fn rows(hour: i64, tenants: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(col::TENANT_ID, DataType::Utf8, false),
        Field::new(col::TIMESTAMP, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new(col::EVENT_ID, DataType::Utf8, false),
    ]));
    let pairs: Vec<(String, String)> =
        tenants.iter().flat_map(|t| (0..3).map(move |i| (t.to_string(), format!("{t}-{hour}-{i}")))).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(pairs.iter().map(|(t, _)| t.as_str()))),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(pairs.iter().map(|_| hour * HOUR_MS)).with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(pairs.iter().map(|(_, id)| id.as_str()))),
        ],
    )
    .expect("batch")
}

/// Writes the rows as a file of `table` in `hour` and returns what to record.
pub(crate) async fn put(store: &dyn ObjectStore, table: TableName, hour: i64, tenants: &[&str]) -> NewFile {
    let (sorted, stats) = sort_for_parquet(&rows(hour, tenants)).expect("sort").expect("rows");
    let data = encode_parquet(&sorted, &ParquetOptions::default()).expect("encode");
    let key = PartitionKey { table, hour, shard: 0 };
    let path = key.file_key(1, &uuid::Uuid::new_v4().to_string());
    let bytes = data.len() as u64;
    store.put(&Path::from(path.as_str()), PutPayload::from(data)).await.expect("put");
    let version = (table == TableName::Events).then_some(4);
    NewFile::new(key, 1, path, bytes, stats, version)
}

async fn record(store: &dyn ObjectStore, catalog: &dyn Catalog, table: TableName, hour: i64, tenants: &[&str]) {
    let file = put(store, table, hour, tenants).await;
    catalog.replace_files("test", &[], &[file]).await.expect("record");
}

/// Per (table, hour): the tenants of each file, sorted, with each tenant's row count.
pub(crate) async fn contents(
    store: &dyn ObjectStore,
    catalog: &dyn Catalog,
) -> BTreeMap<(TableName, i64), Vec<BTreeMap<String, usize>>> {
    let mut out: BTreeMap<(TableName, i64), Vec<BTreeMap<String, usize>>> = BTreeMap::new();
    for table in TableName::ALL {
        let filter = FileFilter { table, tenant: None, min_time_ms: None, max_time_ms: None };
        for f in catalog.list_files(&filter).await.expect("list").files {
            let bytes: Bytes = store
                .get(&Path::from(f.file.path.as_str()))
                .await
                .expect("a listed file is readable")
                .bytes()
                .await
                .expect("bytes");
            let mut counts = BTreeMap::new();
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet").build().expect("reader") {
                let batch = batch.expect("batch");
                let tenants = batch.column_by_name(col::TENANT_ID).expect("tenant column").as_string::<i32>();
                for t in tenants.iter().flatten() {
                    *counts.entry(t.to_string()).or_insert(0) += 1;
                }
            }
            out.entry((table, f.file.hour)).or_default().push(counts);
        }
    }
    for files in out.values_mut() {
        files.sort();
    }
    out
}

pub(crate) fn holding(tenants: &[&str]) -> BTreeMap<String, usize> {
    tenants.iter().map(|t| (t.to_string(), 3)).collect()
}

async fn set_retention(catalog: &dyn Catalog, tenant: &str, raw_events: Option<u32>, events: Option<u32>) {
    let id = TenantId::new(tenant).expect("id");
    catalog.create_tenant(&id, &format!("w-{tenant}"), &format!("r-{tenant}")).await.expect("tenant");
    let patch = SettingsPatch {
        retention: Some(RetentionPatch { raw_events: Some(raw_events), events: Some(events) }),
        ..SettingsPatch::default()
    };
    catalog.update_tenant_settings(&id, &patch).await.expect("settings").expect("tenant exists");
}

async fn drops_exactly_the_expired_data(store: Arc<dyn ObjectStore>, catalog: Arc<dyn Catalog>) {
    // The deployment keeps raw events 20 days and events 10; "brief" keeps both 2 days,
    // "keeper" keeps events 30 days; "shop" and "alpha" follow the defaults.
    set_retention(catalog.as_ref(), "brief", Some(2), Some(2)).await;
    set_retention(catalog.as_ref(), "keeper", None, Some(30)).await;
    let everyone = ["alpha", "brief", "keeper", "shop"];
    let (s, c) = (store.as_ref(), catalog.as_ref());
    for days in [0, 5, 15, 40] {
        record(s, c, TableName::Events, days_ago(days), &everyone).await;
    }
    // Files whose tenant range alone decides: "shop" only at 15 days (expires unread), and
    // "alpha".."shop" at 5 days, whose range spans "brief" but holds none of its rows.
    record(s, c, TableName::Events, days_ago(15), &["shop"]).await;
    record(s, c, TableName::Events, days_ago(5), &["alpha", "shop"]).await;
    for days in [5, 25] {
        record(s, c, TableName::RawEvents, days_ago(days), &everyone).await;
    }
    for days in [15, 40] {
        let hour = days_ago(days);
        let file = put(s, TableName::Rollups, hour, &everyone).await;
        let state = NewRollupHour {
            hour,
            input_file_id: 0,
            window_start_hour: hour,
            window_end_hour: hour,
            definitions: "test".to_string(),
            rows: 12,
        };
        assert!(c.commit_rollup_hour(&state, &file, None).await.expect("rollup hour"));
    }
    let before = contents(s, c).await;
    let paths_before: Vec<String> = all_paths(c).await;
    let epoch = c.retention_epoch().await.expect("epoch");

    let clock = MockClock::new(NOW_MS);
    let config = RetentionConfig {
        defaults: RetentionDays { raw_events: Some(20), events: Some(10) },
        ..RetentionConfig::default()
    };
    let retention = Retention::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock.clone()));
    let report = retention.run_once().await.expect("pass");
    assert_eq!(
        report,
        RetentionReport { files_expired: 4, files_purged: 3, rows_purged: 3 + 9 + 3, files_clean: 1, lost_races: 0 },
        "expired: events at 40 days, shop's file at 15, raw at 25, the rollups at 40 and none other; \
         purged: brief from events and raw at 5 days, all but keeper from events at 15"
    );

    let after = contents(s, c).await;
    let expected: BTreeMap<(TableName, i64), Vec<BTreeMap<String, usize>>> = [
        ((TableName::RawEvents, days_ago(5)), vec![holding(&["alpha", "keeper", "shop"])]),
        ((TableName::Events, days_ago(0)), vec![holding(&everyone)]),
        ((TableName::Events, days_ago(5)), vec![holding(&["alpha", "keeper", "shop"]), holding(&["alpha", "shop"])]),
        ((TableName::Events, days_ago(15)), vec![holding(&["keeper"])]),
        // Rollup hours are computed again from the purged events, not rewritten.
        ((TableName::Rollups, days_ago(15)), vec![holding(&everyone)]),
    ]
    .into_iter()
    .map(|(k, mut v)| {
        v.sort();
        (k, v)
    })
    .collect();
    assert_eq!(after, expected, "before: {before:#?}");
    let hours: Vec<i64> = c.rollup_hours(0, i64::MAX / 2).await.expect("hours").into_iter().map(|h| h.hour).collect();
    assert_eq!(hours, vec![days_ago(15)], "the expired rollup hour leaves with its file");
    assert!(c.retention_epoch().await.expect("epoch") > epoch, "cached reports see the removal");

    // The marks make the next pass read nothing and change nothing.
    assert_eq!(retention.run_once().await.expect("pass"), RetentionReport::default());
    assert_eq!(contents(s, c).await, after);

    // Two days later brief's events of the newest hour expire too; nothing else moves.
    clock.set(NOW_MS + 2 * DAY_MS);
    let report = retention.run_once().await.expect("pass");
    assert_eq!((report.files_purged, report.rows_purged, report.files_expired), (1, 3, 0), "{report:?}");

    // Replaced and expired objects stay readable for the grace period, then go; files the
    // catalog lists are never deleted.
    let listed = all_paths(c).await;
    let gone: Vec<&String> = paths_before.iter().filter(|p| !listed.contains(p)).collect();
    assert_eq!(gone.len(), 4 + 3 + 1, "expired files, and files rewritten in the first pass and the last");
    for path in &gone {
        store.head(&Path::from(path.as_str())).await.expect("still readable during the grace period");
    }
    let gc = CompactorConfig {
        garbage_grace: Duration::ZERO,
        min_age: Duration::from_secs(3600 * 24 * 365),
        merge_days_after: None,
        ..CompactorConfig::default()
    };
    let compactor = Compactor::new(gc, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock));
    let deleted = compactor.run_once().await.expect("gc").garbage_deleted;
    assert_eq!(deleted, gone.len(), "every removed object, and nothing else");
    for path in &gone {
        let err = store.head(&Path::from(path.as_str())).await.expect_err("collected");
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    }
    for path in all_paths(c).await {
        store.head(&Path::from(path.as_str())).await.expect("a listed file stays");
    }
}

async fn all_paths(catalog: &dyn Catalog) -> Vec<String> {
    let mut paths = Vec::new();
    for table in TableName::ALL {
        let filter = FileFilter { table, tenant: None, min_time_ms: None, max_time_ms: None };
        paths.extend(catalog.list_files(&filter).await.expect("list").files.into_iter().map(|f| f.file.path));
    }
    paths
}

#[tokio::test]
async fn retention_in_memory() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    drops_exactly_the_expired_data(store, catalog).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    let pg = PgDatabase::create().await;
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> =
        Arc::new(SqlCatalog::open(pg.url(), &CatalogOptions::default()).await.expect("catalog"));
    drops_exactly_the_expired_data(store, catalog).await;
}
