//! A settled day's rollup hours merge into one file, and retention takes that file apart hour
//! by hour: each expired hour leaves the file (rewritten) and the catalog, and the file goes
//! whole with its last hour.

use std::collections::BTreeMap;
use std::sync::Arc;

use hourglass_catalog::{Catalog, FileFilter, NewRollupHour, SqlCatalog};
use hourglass_jobs::{Retention, RetentionConfig, RollupConfig, RollupJob};
use hourglass_report::rollups::definitions_version;
use hourglass_storage::ObjectStoreConfig;
use hourglass_types::settings::RetentionDays;
use hourglass_types::{MockClock, TableName};

use crate::retention::{DAY_MS, HOUR_MS, NOW_MS, contents, holding, put};

async fn rollup_files(catalog: &dyn Catalog) -> Vec<(i64, i64, i64)> {
    let filter = FileFilter { table: TableName::Rollups, tenant: None, min_time_ms: None, max_time_ms: None };
    let files = catalog.list_files(&filter).await.expect("list").files;
    files.iter().map(|f| (f.file.hour, f.file.min_time_ms / HOUR_MS, f.file.max_time_ms / HOUR_MS)).collect()
}

async fn hours_and_files(catalog: &dyn Catalog) -> (Vec<i64>, usize) {
    let states = catalog.rollup_hours(0, i64::MAX / 2).await.expect("hours");
    let files: std::collections::BTreeSet<i64> = states.iter().map(|s| s.file_id).collect();
    (states.iter().map(|s| s.hour).collect(), files.len())
}

#[tokio::test]
async fn a_merged_day_of_rollups_loses_each_hour_as_it_expires() {
    let store = ObjectStoreConfig::Memory.build().expect("store");
    let catalog: Arc<dyn Catalog> = Arc::new(SqlCatalog::in_memory().await.expect("catalog"));
    let (s, c) = (store.as_ref(), catalog.as_ref());
    // Day 19 990 (ten days before now's day): four hours of two tenants, one file each, and
    // the hour after that day, which is another day's.
    let day = (NOW_MS / DAY_MS - 10) * 24;
    let tenants = ["alpha", "shop"];
    for hour in (day..day + 4).chain([day + 24]) {
        let file = put(s, TableName::Rollups, hour, &tenants).await;
        let state = NewRollupHour {
            hour,
            input_file_id: 0,
            window_start_hour: hour,
            window_end_hour: hour,
            definitions: definitions_version(),
            rows: 6,
        };
        assert!(c.commit_rollup_hour(&state, &file, None).await.expect("rollup hour"));
    }

    let clock = MockClock::new(NOW_MS);
    let job =
        RollupJob::new(RollupConfig::default(), Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock.clone()));
    let report = job.run_once().await.expect("pass");
    assert_eq!(report.days_merged, 1, "{report:?}");
    assert_eq!(rollup_files(c).await, [(day, day, day + 3), (day + 24, day + 24, day + 24)]);
    assert_eq!(hours_and_files(c).await, ((day..day + 4).chain([day + 24]).collect(), 2));
    let merged = contents(s, c).await;
    assert_eq!(
        merged.get(&(TableName::Rollups, day)),
        Some(&vec![[("alpha".to_string(), 12), ("shop".to_string(), 12)].into()]),
        "every hour's rows once"
    );
    assert_eq!(job.run_once().await.expect("pass").days_merged, 0, "a merged day stays merged");

    // Retention: events are kept 10 days. Two hours later the day's first two hours expire.
    let config = RetentionConfig {
        defaults: RetentionDays { raw_events: None, events: Some(10) },
        ..RetentionConfig::default()
    };
    let retention = Retention::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(clock.clone()));
    assert_eq!(retention.run_once().await.expect("pass").files_purged, 0, "nothing has expired yet");
    clock.set(NOW_MS + 2 * HOUR_MS);
    let report = retention.run_once().await.expect("pass");
    assert_eq!((report.files_purged, report.files_expired), (1, 0), "{report:?}");
    assert_eq!(hours_and_files(c).await, (vec![day + 2, day + 3, day + 24], 2));
    let rows: BTreeMap<String, usize> = [("alpha".to_string(), 6), ("shop".to_string(), 6)].into();
    assert_eq!(
        contents(s, c).await.get(&(TableName::Rollups, day)),
        Some(&vec![rows]),
        "the expired hours' rows are gone"
    );
    assert_eq!(rollup_files(c).await[0], (day, day + 2, day + 3));

    // With its last hour the file goes whole; the next day's hour stays.
    clock.set(NOW_MS + 4 * HOUR_MS);
    let report = retention.run_once().await.expect("pass");
    assert_eq!((report.files_purged, report.files_expired), (0, 1), "{report:?}");
    assert_eq!(hours_and_files(c).await, (vec![day + 24], 1));
    assert_eq!(contents(s, c).await.get(&(TableName::Rollups, day + 24)), Some(&vec![holding(&tenants)]));
}
