//! What every catalog operation promises, one operation family per test.

use std::time::Duration;

use hourglass_catalog::{Catalog, Error, FileFilter, FileListing, ImportedTable, NewFile, NodeInfo, Principal};
use hourglass_types::{TableName, TenantId};

use crate::fixture::{Fixture, on_both_backends};

pub fn file(table: TableName, path: &str, tenants: (&str, &str), times: (i64, i64), rows: u64) -> NewFile {
    NewFile {
        table,
        hour: times.0 / 3_600_000,
        shard: 0,
        generation: 1,
        path: path.to_string(),
        min_tenant: tenants.0.to_string(),
        max_tenant: tenants.1.to_string(),
        min_time_ms: times.0,
        max_time_ms: times.1,
        rows,
        bytes: rows * 10,
        segment: None,
        processor_version: (table == TableName::Events).then_some(1),
        retention_mark: None,
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("valid tenant")
}

fn events(tenant_id: Option<&str>, min: Option<i64>, max: Option<i64>) -> FileFilter {
    FileFilter { table: TableName::Events, tenant: tenant_id.map(tenant), min_time_ms: min, max_time_ms: max }
}

fn paths(listing: FileListing) -> Vec<String> {
    listing.files.into_iter().map(|f| f.file.path).collect()
}

on_both_backends!(tenants_and_tokens);
async fn tenants_and_tokens(fx: Fixture) {
    let cat = fx.open().await;
    cat.create_tenant(&tenant("a"), "wa", "ra").await.expect("create");
    let err = cat.create_tenant(&tenant("a"), "wa2", "ra2").await.expect_err("duplicate");
    assert!(matches!(err, Error::TenantExists { .. }), "{err}");
    assert_eq!(cat.lookup_token("wa").await.expect("lookup"), Some(Principal::Writer(tenant("a"))));
    assert_eq!(cat.lookup_token("ra").await.expect("lookup"), Some(Principal::Reader(tenant("a"))));
    assert_eq!(cat.lookup_token("wa2").await.expect("lookup"), None, "a refused tenant leaves no token");
    assert!(!cat.has_admin_token().await.expect("has"));
    cat.add_admin_token("adm").await.expect("admin");
    cat.add_admin_token("adm").await.expect("admin again is a no-op");
    assert!(cat.has_admin_token().await.expect("has"));
    assert_eq!(cat.lookup_token("adm").await.expect("lookup"), Some(Principal::Admin));
    cat.create_tenant(&tenant("b-2"), "wb", "rb").await.expect("create");
    assert_eq!(cat.list_tenants().await.expect("list"), vec![tenant("a"), tenant("b-2")]);
    cat.ping().await.expect("ping");
}

on_both_backends!(persist_commits_files_and_position_together);
async fn persist_commits_files_and_position_together(fx: Fixture) {
    let cat = fx.open().await;
    assert_eq!(cat.persisted_position("i").await.expect("pos"), None);
    let files = [
        file(TableName::RawEvents, "raw/1", ("a", "c"), (0, 100), 10),
        file(TableName::Events, "ev/1", ("a", "c"), (0, 100), 10),
        file(TableName::Events, "ev/2", ("d", "f"), (200, 300), 10),
    ];
    cat.commit_persist("i", 5, &files).await.expect("commit");
    assert_eq!(cat.persisted_position("i").await.expect("pos"), Some(5));
    cat.commit_persist("i", 5, &files).await.expect("a retried commit succeeds");
    cat.commit_persist("i", 3, &[]).await.expect("an older position is a no-op");
    assert_eq!(cat.persisted_position("i").await.expect("pos"), Some(5), "positions never move backwards");

    let all = cat.list_files(&events(None, None, None)).await.expect("list");
    assert_eq!(paths(all.clone()), ["ev/1", "ev/2"], "the retry registered nothing twice");
    assert_eq!(all.persisted.get("i"), Some(&5));
    let record = &all.files[0];
    assert_eq!((record.ingester_id.as_str(), record.wal_through), ("i", 5));
    assert_eq!(record.file, files[1], "every field round-trips");
    assert_eq!(paths(cat.list_files(&events(Some("b"), None, None)).await.expect("list")), ["ev/1"]);
    assert_eq!(paths(cat.list_files(&events(Some("g"), None, None)).await.expect("list")), Vec::<String>::new());
    assert_eq!(paths(cat.list_files(&events(None, Some(150), None)).await.expect("list")), ["ev/2"]);
    assert_eq!(paths(cat.list_files(&events(None, None, Some(200))).await.expect("list")), ["ev/1"]);
}

on_both_backends!(tenant_ranges_compare_bytewise);
/// Parquet files sort tenants byte-wise; the catalog must prune with the same order, whatever
/// the database's locale ('-' < '1' < '_' in bytes; a locale collation ignores punctuation).
async fn tenant_ranges_compare_bytewise(fx: Fixture) {
    let cat = fx.open().await;
    cat.commit_persist("i", 1, &[file(TableName::Events, "ev/1", ("shop-1", "shop_1"), (0, 1), 1)])
        .await
        .expect("commit");
    for inside in ["shop-1", "shop1", "shop9", "shop_1"] {
        assert_eq!(paths(cat.list_files(&events(Some(inside), None, None)).await.expect("list")), ["ev/1"], "{inside}");
    }
    for outside in ["shop-0", "shop_2", "shopa", "shop"] {
        assert!(cat.list_files(&events(Some(outside), None, None)).await.expect("list").files.is_empty(), "{outside}");
    }
}

on_both_backends!(replace_files_is_all_or_nothing);
async fn replace_files_is_all_or_nothing(fx: Fixture) {
    let cat = fx.open().await;
    let small = [
        file(TableName::Events, "ev/1", ("a", "b"), (0, 10), 3),
        file(TableName::Events, "ev/2", ("a", "c"), (5, 20), 4),
        file(TableName::Events, "ev/3", ("b", "c"), (5, 20), 5),
    ];
    cat.commit_persist("i", 1, &small).await.expect("commit");
    let ids: Vec<i64> =
        cat.list_files(&events(None, None, None)).await.expect("list").files.iter().map(|f| f.id).collect();
    let merged = file(TableName::Events, "ev/merged-12", ("a", "c"), (0, 20), 7);
    cat.replace_files("compactor", &ids[..2], std::slice::from_ref(&merged)).await.expect("replace");
    let listing = cat.list_files(&events(None, None, None)).await.expect("list");
    assert_eq!(paths(listing.clone()), ["ev/3", "ev/merged-12"]);
    assert_eq!(listing.files.iter().map(|f| f.file.rows).sum::<u64>(), 12);

    // A second compactor that listed before the first committed loses, and changes nothing.
    let late = file(TableName::Events, "ev/merged-23", ("a", "c"), (0, 20), 9);
    let err = cat.replace_files("compactor-2", &ids[1..], &[late]).await.expect_err("ev/2 is gone");
    assert!(matches!(err, Error::FilesGone { missing: 1 }), "{err}");
    assert_eq!(paths(cat.list_files(&events(None, None, None)).await.expect("list")), ["ev/3", "ev/merged-12"]);

    // The replaced objects wait in the garbage queue until their grace period has passed.
    let grace = Duration::from_secs(60);
    assert!(
        cat.garbage_older_than(grace, Duration::from_secs(30), 10).await.expect("garbage").is_empty(),
        "still in its grace period"
    );
    let mut garbage = cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage");
    garbage.sort();
    assert_eq!(garbage, ["ev/1", "ev/2"]);
    cat.forget_garbage(&garbage).await.expect("forget");
    assert!(cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage").is_empty());

    // An object queued as garbage that the catalog refers to again is never handed out for
    // deletion.
    let listing = cat.list_files(&events(None, None, None)).await.expect("list");
    let ev3 = listing.files.iter().find(|f| f.file.path == "ev/3").expect("ev/3").id;
    let again = file(TableName::Events, "ev/3", ("b", "c"), (5, 20), 5);
    cat.replace_files("compactor", &[ev3], &[]).await.expect("remove ev/3");
    cat.commit_persist("i", 2, &[again]).await.expect("record ev/3 again");
    assert!(
        cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage").is_empty(),
        "ev/3 is referenced"
    );
}

fn node(id: &str, incarnation: &str) -> NodeInfo {
    NodeInfo {
        id: id.to_string(),
        incarnation: incarnation.to_string(),
        roles: vec!["ingester".to_string(), "querier".to_string()],
        http_url: "http://127.0.0.1:1".to_string(),
        flight_url: Some("http://127.0.0.1:2".to_string()),
        version: "0.1.0".to_string(),
    }
}

on_both_backends!(node_ids_are_leased);
async fn node_ids_are_leased(fx: Fixture) {
    let cat = fx.open().await;
    let lease = Duration::from_secs(60);
    cat.heartbeat(&node("ingester-0", "first"), lease).await.expect("announce");
    cat.heartbeat(&node("ingester-0", "first"), lease).await.expect("renew");
    let err = cat.heartbeat(&node("ingester-0", "second"), lease).await.expect_err("a live node holds the id");
    assert!(matches!(err, Error::NodeIdTaken { .. }), "{err}");
    let nodes = cat.list_nodes().await.expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].info, node("ingester-0", "first"));
    assert!(nodes[0].heartbeat_at_ms >= nodes[0].started_at_ms);

    // Once the holder's lease has run out, a replacement takes the id over.
    tokio::time::sleep(Duration::from_millis(20)).await;
    cat.heartbeat(&node("ingester-0", "second"), Duration::from_millis(10)).await.expect("take over a stale id");
    cat.leave("ingester-0", "first").await.expect("a stale leave is a no-op");
    assert_eq!(cat.list_nodes().await.expect("nodes")[0].info.incarnation, "second");
    cat.leave("ingester-0", "second").await.expect("leave");
    assert!(cat.list_nodes().await.expect("nodes").is_empty());

    // Nodes that never left are forgotten once their heartbeat is old enough.
    cat.heartbeat(&node("querier-gone", "x"), lease).await.expect("announce");
    assert_eq!(cat.forget_nodes_older_than(Duration::from_secs(3600)).await.expect("forget"), 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(cat.forget_nodes_older_than(Duration::from_millis(1)).await.expect("forget"), 1);
    assert!(cat.list_nodes().await.expect("nodes").is_empty());
}

on_both_backends!(salts_are_stable_per_day);
async fn salts_are_stable_per_day(fx: Fixture) {
    let cat = fx.open().await;
    let a = cat.daily_salt("2026-01-01").await.expect("salt");
    assert_eq!(a.len(), 32);
    assert_eq!(fx.open().await.daily_salt("2026-01-01").await.expect("salt"), a, "another node sees the same salt");
    assert_ne!(cat.daily_salt("2026-01-02").await.expect("salt"), a);
}

on_both_backends!(catalog_survives_reopen);
async fn catalog_survives_reopen(fx: Fixture) {
    {
        let cat = fx.open().await;
        cat.create_tenant(&tenant("a"), "w", "r").await.expect("create");
        cat.commit_persist("i", 7, &[file(TableName::RawEvents, "raw/1", ("a", "a"), (0, 1), 1)])
            .await
            .expect("commit");
    }
    let cat = fx.open().await;
    assert_eq!(cat.list_tenants().await.expect("list"), vec![tenant("a")]);
    assert_eq!(cat.persisted_position("i").await.expect("pos"), Some(7));
}

fn imported(tenant_id: &str, name: &str, path: &str, rows: u64) -> ImportedTable {
    ImportedTable {
        tenant: tenant(tenant_id),
        name: name.to_string(),
        path: path.to_string(),
        arrow_schema: vec![1, 2, 3],
        rows,
        bytes: rows * 100,
        imported_at_ms: 0,
    }
}

on_both_backends!(imports_replace_atomically_per_tenant);
async fn imports_replace_atomically_per_tenant(fx: Fixture) {
    let cat = fx.open().await;
    for t in ["a", "b"] {
        cat.create_tenant(&tenant(t), &format!("w{t}"), &format!("r{t}")).await.expect("create");
    }
    assert!(!cat.put_import(&imported("a", "crm", "imports/a/crm/1", 3), None).await.expect("first import"));
    cat.put_import(&imported("b", "crm", "imports/b/crm/1", 1), None).await.expect("same name, other tenant");
    // A second first import of the name lost the race: refused, nothing changed.
    let raced = cat.put_import(&imported("a", "crm", "imports/a/crm/2", 5), None).await.expect_err("raced");
    assert!(matches!(raced, Error::ImportRaced { .. }), "{raced}");
    let stale = cat.put_import(&imported("a", "crm", "imports/a/crm/2", 5), Some("imports/a/crm/0")).await;
    assert!(matches!(stale, Err(Error::ImportRaced { .. })), "a replacement of a path no longer current");
    let listed = cat.list_imports(&tenant("a")).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].path.as_str(), listed[0].rows, &listed[0].arrow_schema[..]),
        ("imports/a/crm/1", 3, &[1u8, 2, 3][..])
    );
    assert!(listed[0].imported_at_ms > 0, "the catalog stamps the import time");

    // Replacing swaps the path and queues the old object as garbage.
    let replaced =
        cat.put_import(&imported("a", "crm", "imports/a/crm/2", 5), Some("imports/a/crm/1")).await.expect("replace");
    assert!(replaced);
    assert_eq!(cat.list_imports(&tenant("a")).await.expect("list")[0].path, "imports/a/crm/2");
    assert_eq!(
        cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage"),
        vec!["imports/a/crm/1".to_string()]
    );
    assert_eq!(cat.list_imports(&tenant("b")).await.expect("list")[0].path, "imports/b/crm/1", "b untouched");

    // Dropping removes the table and queues its object.
    assert!(cat.drop_import(&tenant("a"), "crm").await.expect("drop"));
    assert!(!cat.drop_import(&tenant("a"), "crm").await.expect("second drop"));
    assert!(cat.list_imports(&tenant("a")).await.expect("list").is_empty());
    let mut garbage = cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage");
    garbage.sort();
    assert_eq!(garbage, vec!["imports/a/crm/1".to_string(), "imports/a/crm/2".to_string()]);
}

on_both_backends!(tenant_settings_start_at_defaults_and_patches_merge);
async fn tenant_settings_start_at_defaults_and_patches_merge(fx: Fixture) {
    use hourglass_types::TenantSettings;
    use hourglass_types::settings::SettingsPatch;

    let cat = fx.open().await;
    assert_eq!(cat.tenant_config(&tenant("nobody")).await.expect("read"), None);
    let patch = SettingsPatch { identified_mode: Some(true), ..SettingsPatch::default() };
    assert_eq!(cat.update_tenant_settings(&tenant("nobody"), &patch).await.expect("update"), None);

    cat.create_tenant(&tenant("a"), "wa", "ra").await.expect("create");
    cat.create_tenant(&tenant("b"), "wb", "rb").await.expect("create");
    let a = cat.tenant_config(&tenant("a")).await.expect("read").expect("a exists");
    let b = cat.tenant_config(&tenant("b")).await.expect("read").expect("b exists");
    assert_eq!(a.settings, TenantSettings::default());
    assert!(a.site_key.starts_with("hgp_") && a.site_key != b.site_key, "{} {}", a.site_key, b.site_key);
    assert_eq!(cat.tenant_by_site_key(&a.site_key).await.expect("lookup"), Some(tenant("a")));
    assert_eq!(cat.tenant_by_site_key("hgp_unknown").await.expect("lookup"), None);

    // Two patches of different fields both stay.
    cat.update_tenant_settings(&tenant("a"), &patch).await.expect("update").expect("a exists");
    let timeout = SettingsPatch { session_timeout_ms: Some(600_000), ..SettingsPatch::default() };
    let after = cat.update_tenant_settings(&tenant("a"), &timeout).await.expect("update").expect("a exists");
    assert!(after.settings.identified_mode);
    assert_eq!(after.settings.session_timeout_ms, 600_000);
    assert_eq!(cat.tenant_config(&tenant("a")).await.expect("read").expect("a").settings, after.settings);
    assert_eq!(cat.tenant_config(&tenant("b")).await.expect("read").expect("b").settings, TenantSettings::default());
    assert_eq!(
        cat.all_tenant_settings().await.expect("all"),
        vec![(tenant("a"), after.settings.clone()), (tenant("b"), TenantSettings::default())],
        "every tenant's settings in one read"
    );

    let bad = SettingsPatch { session_timeout_ms: Some(1), ..SettingsPatch::default() };
    let err = cat.update_tenant_settings(&tenant("a"), &bad).await.expect_err("out of range");
    assert!(matches!(err, Error::InvalidSetting(_)), "{err}");
    assert_eq!(cat.tenant_config(&tenant("a")).await.expect("read").expect("a").settings, after.settings);
}

on_both_backends!(rollup_hours_go_stale_when_their_window_gets_new_events);
async fn rollup_hours_go_stale_when_their_window_gets_new_events(fx: Fixture) {
    use hourglass_catalog::NewRollupHour;
    let cat = fx.open().await;
    let h = 3_600_000;
    // Events in hours 10 and 11.
    let ev = |path: &str, hour: i64| file(TableName::Events, path, ("a", "b"), (hour * h, hour * h + 10), 5);
    cat.commit_persist("i", 1, &[ev("ev/10", 10), ev("ev/11", 11)]).await.expect("persist");
    assert_eq!(cat.event_hours(0, 100).await.expect("hours"), [10, 11]);
    assert_eq!(cat.rollup_backlog(100, "v1", 10).await.expect("backlog"), [11, 10], "newest first");
    assert_eq!(cat.rollup_backlog(11, "v1", 10).await.expect("backlog"), [10], "only hours before the bound");
    let high = cat.events_high_water(9, 12).await.expect("high water");
    assert!(high > 0);
    assert_eq!(cat.events_high_water(20, 30).await.expect("none"), 0);

    let state = NewRollupHour {
        hour: 10,
        input_file_id: high,
        window_start_hour: 9,
        window_end_hour: 11,
        definitions: "v1".into(),
        rows: 3,
    };
    let rollup_file = |path: &str| file(TableName::Rollups, path, ("a", "b"), (10 * h, 10 * h), 3);
    assert!(cat.commit_rollup_hour(&state, &rollup_file("ro/10a"), None).await.expect("commit"));
    assert!(
        !cat.commit_rollup_hour(&state, &rollup_file("ro/10x"), None).await.expect("second first commit"),
        "a racing first commit loses"
    );
    let hours = cat.rollup_hours(0, 100).await.expect("hours");
    assert_eq!(hours.len(), 1);
    assert!(hours[0].fresh);
    assert_eq!((hours[0].window_start_hour, hours[0].window_end_hour, hours[0].rows), (9, 11, 3));
    assert_eq!(cat.rollup_backlog(100, "v1", 10).await.expect("backlog"), [11]);
    assert_eq!(cat.rollup_backlog(100, "v2", 10).await.expect("backlog"), [11, 10], "new definitions recompute");
    let rollups = FileFilter { table: TableName::Rollups, tenant: None, min_time_ms: None, max_time_ms: None };
    assert_eq!(paths(cat.list_files(&rollups).await.expect("list")), ["ro/10a"]);

    // A late event for hour 11, inside hour 10's window, makes it stale; one for hour 13 does not.
    cat.commit_persist("i", 2, &[ev("ev/13", 13)]).await.expect("persist");
    assert!(cat.rollup_hours(0, 100).await.expect("hours")[0].fresh);
    cat.commit_persist("i", 3, &[ev("ev/11b", 11)]).await.expect("persist");
    let hours = cat.rollup_hours(0, 100).await.expect("hours");
    assert!(!hours[0].fresh);
    assert_eq!(cat.rollup_backlog(100, "v1", 10).await.expect("backlog"), [13, 11, 10]);

    // Recomputing replaces the file, whose old object becomes garbage.
    let newer = NewRollupHour { input_file_id: cat.events_high_water(9, 11).await.expect("hw"), ..state.clone() };
    let old = hours[0].file_id;
    assert!(!cat.commit_rollup_hour(&newer, &rollup_file("ro/10b"), Some(old + 100)).await.expect("wrong base"));
    assert!(cat.commit_rollup_hour(&newer, &rollup_file("ro/10b"), Some(old)).await.expect("replace"));
    assert!(cat.rollup_hours(0, 100).await.expect("hours")[0].fresh);
    assert_eq!(paths(cat.list_files(&rollups).await.expect("list")), ["ro/10b"]);
    let garbage = cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage");
    assert_eq!(garbage, ["ro/10a"]);
}

on_both_backends!(day_objects_share_a_path_and_become_garbage_with_their_last_hour);
async fn day_objects_share_a_path_and_become_garbage_with_their_last_hour(fx: Fixture) {
    use hourglass_catalog::{NewRollupHour, Segment};
    let cat = fx.open().await;
    let h = 3_600_000;
    let ev = |path: &str, hour: i64| file(TableName::Events, path, ("a", "b"), (hour * h, hour * h + 10), 5);
    cat.commit_persist("i", 1, &[ev("ev/10", 10), ev("ev/11", 11), ev("ev/12", 12), ev("ev/40", 40)])
        .await
        .expect("persist");
    let listed = cat.list_files(&events(None, None, None)).await.expect("list").files;
    let day: Vec<i64> = listed[..3].iter().map(|f| f.id).collect();
    // Hour 11's rollup is fresh; hour 12's is stale (computed before the last events file).
    let high = cat.events_high_water(0, 100).await.expect("high water");
    let state = |hour: i64, input_file_id: i64| NewRollupHour {
        hour,
        input_file_id,
        window_start_hour: hour - 1,
        window_end_hour: hour + 1,
        definitions: "v1".into(),
        rows: 1,
    };
    let rollup_file = |path: &str, hour: i64| file(TableName::Rollups, path, ("a", "b"), (hour * h, hour * h), 1);
    assert!(cat.commit_rollup_hour(&state(11, high), &rollup_file("ro/11", 11), None).await.expect("rollup"));
    assert!(cat.commit_rollup_hour(&state(12, 0), &rollup_file("ro/12", 12), None).await.expect("rollup"));

    let object_bytes = 400;
    let segments: Vec<NewFile> = listed[..3]
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let start = 4 + 100 * i as u64;
            NewFile {
                path: "ev/day0".into(),
                bytes: 100,
                segment: Some(Segment { start, end: start + 100, object_bytes }),
                ..f.file.clone()
            }
        })
        .collect();
    cat.repack_files("compactor", &day, &segments).await.expect("repack");
    let listed = cat.list_files(&events(None, None, None)).await.expect("list").files;
    let got: Vec<(i64, &str, Option<Segment>, u64)> =
        listed.iter().map(|f| (f.file.hour, f.file.path.as_str(), f.file.segment, f.file.object_bytes())).collect();
    assert_eq!(
        got,
        [
            (10, "ev/day0", segments[0].segment, 400),
            (11, "ev/day0", segments[1].segment, 400),
            (12, "ev/day0", segments[2].segment, 400),
            (40, "ev/40", None, 50),
        ],
        "one file per hour, sharing the object"
    );
    let fresh: Vec<(i64, bool)> =
        cat.rollup_hours(0, 100).await.expect("hours").iter().map(|r| (r.hour, r.fresh)).collect();
    assert_eq!(fresh, [(11, true), (12, false)], "a repack keeps fresh hours fresh and stale ones stale");
    let mut garbage = cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage");
    garbage.sort();
    assert_eq!(garbage, ["ev/10", "ev/11", "ev/12"]);
    cat.forget_garbage(&garbage).await.expect("forget");
    assert!(cat.repack_files("compactor", &day, &segments).await.is_err(), "the hour files are gone");

    // The object is garbage only once its last hour leaves.
    let ids: Vec<i64> = listed[..3].iter().map(|f| f.id).collect();
    assert_eq!(cat.expire_files(&ids[..2]).await.expect("expire"), 2);
    assert!(cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage").is_empty());
    cat.replace_files("compactor", &ids[2..], &[ev("ev/12b", 12)]).await.expect("replace");
    assert_eq!(
        cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage"),
        ["ev/day0"]
    );
}

on_both_backends!(rollup_hours_merge_into_one_file_and_leave_it_hour_by_hour);
async fn rollup_hours_merge_into_one_file_and_leave_it_hour_by_hour(fx: Fixture) {
    use hourglass_catalog::{NewRollupHour, RollupCommit};
    let cat = fx.open().await;
    let h = 3_600_000;
    let state = |hour: i64| NewRollupHour {
        hour,
        input_file_id: 1,
        window_start_hour: hour,
        window_end_hour: hour,
        definitions: "v1".into(),
        rows: 2,
    };
    let rollup_file =
        |path: &str, first: i64, last: i64| file(TableName::Rollups, path, ("a", "b"), (first * h, last * h), 2);
    for hour in 0..3 {
        assert!(
            cat.commit_rollup_hour(&state(hour), &rollup_file(&format!("ro/{hour}"), hour, hour), None)
                .await
                .expect("hour")
        );
    }
    let file_of =
        |hours: &[hourglass_catalog::RollupHour], hour: i64| hours.iter().find(|r| r.hour == hour).map(|r| r.file_id);
    let before = cat.rollup_hours(0, 24).await.expect("hours");
    let from = |hour| file_of(&before, hour).expect("committed");
    let rollups = FileFilter { table: TableName::Rollups, tenant: None, min_time_ms: None, max_time_ms: None };

    // A merge that names the wrong file of an hour changes nothing.
    let wrong = RollupCommit { carried: vec![(0, from(1)), (1, from(1))], ..RollupCommit::default() };
    assert!(!cat.commit_rollups(&wrong, &rollup_file("ro/bad", 0, 1)).await.expect("wrong file"));
    assert_eq!(paths(cat.list_files(&rollups).await.expect("list")), ["ro/0", "ro/1", "ro/2"]);

    assert_eq!(cat.mergeable_rollup_days(24, "v1", 1 << 20, 10).await.expect("split days"), [0]);
    assert_eq!(
        cat.mergeable_rollup_days(2, "v1", 1 << 20, 10).await.expect("split days"),
        [0],
        "by its hours before the bound"
    );
    assert!(cat.mergeable_rollup_days(24, "v1", 59, 10).await.expect("split days").is_empty(), "too large to merge");
    assert!(cat.mergeable_rollup_days(0, "v1", 1 << 20, 10).await.expect("split days").is_empty());
    assert!(cat.mergeable_rollup_days(24, "v2", 1 << 20, 10).await.expect("split days").is_empty(), "old definitions");
    cat.commit_persist("i", 1, &[file(TableName::Events, "ev/5", ("a", "b"), (5 * h, 5 * h + 1), 1)])
        .await
        .expect("persist");
    assert!(
        cat.mergeable_rollup_days(24, "v1", 1 << 20, 10).await.expect("split days").is_empty(),
        "hour 5 has events and no rollup yet"
    );
    // The day merges: every hour keeps its state and points at the one file.
    let merge = RollupCommit { carried: (0..3).map(|hour| (hour, from(hour))).collect(), ..RollupCommit::default() };
    assert!(cat.commit_rollups(&merge, &rollup_file("ro/day", 0, 2)).await.expect("merge"));
    let merged = cat.rollup_hours(0, 24).await.expect("hours");
    let day = file_of(&merged, 0).expect("merged");
    assert!(merged.iter().all(|r| r.file_id == day && r.fresh && r.rows == 2), "{merged:?}");
    assert_eq!(paths(cat.list_files(&rollups).await.expect("list")), ["ro/day"]);
    assert!(cat.mergeable_rollup_days(24, "v1", 1 << 20, 10).await.expect("split days").is_empty(), "merged");
    let mut garbage = cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage");
    garbage.sort();
    assert_eq!(garbage, ["ro/0", "ro/1", "ro/2"]);
    // One hour recomputed alone, or moved alone, cannot replace a file other hours are in.
    assert!(!cat.commit_rollup_hour(&state(1), &rollup_file("ro/1b", 1, 1), Some(day)).await.expect("alone"));
    let partial = RollupCommit { carried: vec![(0, day)], ..RollupCommit::default() };
    assert!(!cat.commit_rollups(&partial, &rollup_file("ro/0b", 0, 0)).await.expect("stale view"));
    assert_eq!(paths(cat.list_files(&rollups).await.expect("list")), ["ro/day"]);

    // Hour 1 recomputed, hour 0 expired, hour 2 carried: one rewrite of the day.
    let epoch = cat.retention_epoch().await.expect("epoch");
    let rewrite = RollupCommit {
        computed: vec![(NewRollupHour { rows: 5, ..state(1) }, Some(day))],
        carried: vec![(2, day)],
        expired: vec![(0, day)],
    };
    assert!(cat.commit_rollups(&rewrite, &rollup_file("ro/day2", 1, 2)).await.expect("rewrite"));
    let after = cat.rollup_hours(0, 24).await.expect("hours");
    assert_eq!(after.iter().map(|r| (r.hour, r.rows)).collect::<Vec<_>>(), [(1, 5), (2, 2)]);
    assert_eq!(file_of(&after, 1), file_of(&after, 2));
    assert_eq!(paths(cat.list_files(&rollups).await.expect("list")), ["ro/day2"]);
    assert_eq!(cat.retention_epoch().await.expect("epoch"), epoch + 1, "expired hours move the epoch");
    let garbage = cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage");
    assert!(garbage.contains(&"ro/day".to_string()), "{garbage:?}");
}

on_both_backends!(backfills_are_claimed_once_resumed_by_their_owner_and_fenced);
async fn backfills_are_claimed_once_resumed_by_their_owner_and_fenced(fx: Fixture) {
    use hourglass_catalog::{BackfillProgress, BackfillState, NewBackfill};
    let cat = fx.open().await;
    cat.create_tenant(&tenant("a"), "w", "r").await.expect("tenant");
    let lease = Duration::from_secs(60);
    assert_eq!(cat.claim_backfill("c1", lease).await.expect("nothing queued"), None);
    let spec = NewBackfill {
        table: TableName::Events,
        tenant: Some(tenant("a")),
        from_hour: 100,
        to_hour: 124,
        processor_version: 4,
    };
    let queued = cat.create_backfill(&spec).await.expect("queue");
    assert_eq!((queued.state, queued.progress.next_hour, queued.owner.clone()), (BackfillState::Queued, 100, None));
    let everyone = cat.create_backfill(&NewBackfill { tenant: None, ..spec.clone() }).await.expect("queue");

    let claimed = cat.claim_backfill("c1", lease).await.expect("claim").expect("the oldest job");
    assert_eq!((claimed.id, claimed.state, claimed.owner.as_deref()), (queued.id, BackfillState::Running, Some("c1")));
    assert_eq!(claimed.spec, spec);
    let second = cat.claim_backfill("c2", lease).await.expect("claim").expect("the next job");
    assert_eq!(second.id, everyone.id, "a running job with a live owner is not handed out twice");
    assert_eq!(cat.claim_backfill("c3", lease).await.expect("claim"), None);

    let progress = BackfillProgress {
        next_hour: 110,
        partitions_done: 10,
        partitions_skipped: 1,
        rows_read: 500,
        rows_written: 480,
    };
    assert!(cat.record_backfill_progress(queued.id, "c1", &progress).await.expect("progress"));
    assert!(!cat.record_backfill_progress(queued.id, "c2", &progress).await.expect("fenced"), "only the owner records");
    // The owner, restarted, takes its job back where it was; a silent owner's job is taken over.
    let back = cat.claim_backfill("c1", lease).await.expect("claim").expect("its own job");
    assert_eq!((back.id, back.progress), (queued.id, progress));
    assert_eq!(back.started_at_ms, claimed.started_at_ms, "the first start is kept");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let taken = cat.claim_backfill("c3", Duration::from_millis(1)).await.expect("claim").expect("an abandoned job");
    assert_eq!((taken.id, taken.owner.as_deref()), (queued.id, Some("c3")));
    assert!(!cat.record_backfill_progress(queued.id, "c1", &progress).await.expect("fenced"), "the old owner stops");

    assert!(cat.finish_backfill(queued.id, "c3", None).await.expect("finish"));
    let done = cat.get_backfill(queued.id).await.expect("get").expect("job");
    assert_eq!(done.state, BackfillState::Done);
    assert!(done.finished_at_ms.is_some());
    assert!(!cat.finish_backfill(queued.id, "c3", Some("late")).await.expect("finished"), "a final state stays");

    let cancelled = cat.cancel_backfill(everyone.id).await.expect("cancel").expect("job");
    assert_eq!(cancelled.state, BackfillState::Cancelled);
    assert!(!cat.record_backfill_progress(everyone.id, "c2", &progress).await.expect("cancelled"), "its owner stops");
    assert_eq!(cat.cancel_backfill(everyone.id + 100).await.expect("cancel"), None);
    let listed: Vec<i64> = cat.list_backfills(10).await.expect("list").iter().map(|b| b.id).collect();
    assert_eq!(listed, [everyone.id, queued.id], "newest first");
    assert_eq!(cat.claim_backfill("c4", Duration::from_millis(1)).await.expect("claim"), None, "final jobs stay final");
}

on_both_backends!(version_hours_count_events_files_by_processor_version);
async fn version_hours_count_events_files_by_processor_version(fx: Fixture) {
    let cat = fx.open().await;
    let h = 3_600_000;
    let versioned = |path: &str, hour: i64, version: i32| NewFile {
        processor_version: Some(version),
        ..file(TableName::Events, path, ("a", "b"), (hour * h, hour * h + 10), 5)
    };
    let raw = file(TableName::RawEvents, "raw/10", ("a", "b"), (10 * h, 10 * h + 10), 6);
    cat.commit_persist("i", 1, &[versioned("e/10a", 10, 3), versioned("e/10b", 10, 3), versioned("e/11", 11, 4), raw])
        .await
        .expect("persist");
    let hours: Vec<(i64, i32, u64, u64)> = cat
        .version_hours()
        .await
        .expect("versions")
        .iter()
        .map(|v| (v.hour, v.processor_version, v.files, v.rows))
        .collect();
    assert_eq!(hours, [(10, 3, 2, 10), (11, 4, 1, 5)], "raw files carry no version");
}

on_both_backends!(retention_marks_files_and_expires_them_with_their_rollup_hours);
async fn retention_marks_files_and_expires_them_with_their_rollup_hours(fx: Fixture) {
    use hourglass_catalog::NewRollupHour;
    let cat = fx.open().await;
    let h = 3_600_000;
    let marked = NewFile {
        retention_mark: Some("drop:1:ab".into()),
        ..file(TableName::Events, "ev/10", ("a", "b"), (10 * h, 10 * h + 10), 5)
    };
    cat.commit_persist("i", 1, &[marked, file(TableName::Events, "ev/11", ("a", "b"), (11 * h, 11 * h), 5)])
        .await
        .expect("persist");
    let listed = cat.list_files(&events(None, None, None)).await.expect("list").files;
    let marks: Vec<Option<&str>> = listed.iter().map(|f| f.file.retention_mark.as_deref()).collect();
    assert_eq!(marks, [Some("drop:1:ab"), None], "a mark is recorded with the file");
    let ids: Vec<i64> = listed.iter().map(|f| f.id).collect();
    cat.mark_retention(&[ids[1], ids[1] + 1000], "keep:2:cd").await.expect("mark; a gone file is skipped");
    let listed = cat.list_files(&events(None, None, None)).await.expect("list").files;
    assert_eq!(listed[1].file.retention_mark.as_deref(), Some("keep:2:cd"));

    let state = NewRollupHour {
        hour: 10,
        input_file_id: ids[1],
        window_start_hour: 10,
        window_end_hour: 10,
        definitions: "v1".into(),
        rows: 1,
    };
    let rollup = file(TableName::Rollups, "ro/10", ("a", "b"), (10 * h, 10 * h), 1);
    assert!(cat.commit_rollup_hour(&state, &rollup, None).await.expect("rollup"));
    let rollup_id = cat.rollup_hours(0, 100).await.expect("hours")[0].file_id;

    let epoch = cat.retention_epoch().await.expect("epoch");
    assert_eq!(cat.expire_files(&[ids[0], rollup_id, ids[0] + 1000]).await.expect("expire"), 2, "gone ids skipped");
    assert_eq!(cat.retention_epoch().await.expect("epoch"), epoch + 1);
    assert_eq!(paths(cat.list_files(&events(None, None, None)).await.expect("list")), ["ev/11"]);
    assert!(cat.rollup_hours(0, 100).await.expect("hours").is_empty(), "the rollup hour leaves with its file");
    let mut garbage = cat.garbage_older_than(Duration::ZERO, Duration::from_secs(30), 10).await.expect("garbage");
    garbage.sort();
    assert_eq!(garbage, ["ev/10", "ro/10"]);
    assert_eq!(cat.expire_files(&[ids[0]]).await.expect("again"), 0);
    assert_eq!(cat.retention_epoch().await.expect("epoch"), epoch + 1, "a pass that removed nothing leaves it");
}

on_both_backends!(garbage_waits_for_the_queries_of_live_queriers);
async fn garbage_waits_for_the_queries_of_live_queriers(fx: Fixture) {
    let cat = fx.open().await;
    let lease = Duration::from_secs(60);
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    cat.heartbeat(&node("querier-0", "q"), lease).await.expect("announce");
    // Its oldest query started a minute ago, before the file below is removed.
    cat.report_read_horizon("querier-0", "q", now() - 60_000).await.expect("horizon");
    cat.commit_persist("i", 1, &[file(TableName::Events, "ev/1", ("a", "b"), (0, 10), 3)]).await.expect("commit");
    let id = cat.list_files(&events(None, None, None)).await.expect("list").files[0].id;
    cat.replace_files("compactor", &[id], &[]).await.expect("remove");
    let garbage = || cat.garbage_older_than(Duration::ZERO, lease, 10);
    assert!(garbage().await.expect("garbage").is_empty(), "a running query may have listed ev/1");
    // Another incarnation's report changes nothing; a stale node holds nothing back.
    cat.report_read_horizon("querier-0", "other", now() + 1_000).await.expect("ignored");
    assert!(garbage().await.expect("garbage").is_empty());
    assert_eq!(
        cat.garbage_older_than(Duration::ZERO, Duration::ZERO, 10).await.expect("garbage"),
        ["ev/1"],
        "a querier silent for longer than the lease holds nothing back"
    );
    // The query ended: the next report moves the horizon past the removal.
    tokio::time::sleep(Duration::from_millis(5)).await;
    cat.report_read_horizon("querier-0", "q", now()).await.expect("horizon");
    assert_eq!(garbage().await.expect("garbage"), ["ev/1"]);
}
