//! Migrations: applied once, safely when many nodes start together, refused when too new.

use hourglass_catalog::{CatalogOptions, Error, SqlCatalog};
use sqlx::Connection;

use crate::fixture::{Fixture, on_both_backends};

on_both_backends!(nodes_starting_together_migrate_once);
async fn nodes_starting_together_migrate_once(fx: Fixture) {
    let options = CatalogOptions::default();
    let opens = (0..6).map(|_| SqlCatalog::open(&fx.url, &options));
    for opened in futures::future::join_all(opens).await {
        opened.expect("every concurrent start succeeds");
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&fx.url).await.expect("connect");
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .expect("versions");
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
}

on_both_backends!(version_8_keeps_files_and_never_reuses_their_ids);
async fn version_8_keeps_files_and_never_reuses_their_ids(fx: Fixture) {
    use hourglass_catalog::{Catalog, FileFilter, NewFile, Segment};
    use hourglass_types::TableName;
    use sqlx::Executor;

    sqlx::any::install_default_drivers();
    let sqlite = fx.url.starts_with("sqlite:");
    let url = if sqlite { format!("{}?mode=rwc", fx.url) } else { fx.url.clone() };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let before: [&'static str; 7] = if sqlite {
        [
            include_str!("../../../../sql/sqlite/0001_init.sql"),
            include_str!("../../../../sql/sqlite/0002_cluster.sql"),
            include_str!("../../../../sql/sqlite/0003_imports.sql"),
            include_str!("../../../../sql/sqlite/0004_settings.sql"),
            include_str!("../../../../sql/sqlite/0005_rollups.sql"),
            include_str!("../../../../sql/sqlite/0006_backfills.sql"),
            include_str!("../../../../sql/sqlite/0007_retention.sql"),
        ]
    } else {
        [
            include_str!("../../../../sql/postgres/0001_init.sql"),
            include_str!("../../../../sql/postgres/0002_cluster.sql"),
            include_str!("../../../../sql/postgres/0003_imports.sql"),
            include_str!("../../../../sql/postgres/0004_settings.sql"),
            include_str!("../../../../sql/postgres/0005_rollups.sql"),
            include_str!("../../../../sql/postgres/0006_backfills.sql"),
            include_str!("../../../../sql/postgres/0007_retention.sql"),
        ]
    };
    conn.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .await
        .expect("bootstrap");
    for (i, sql) in before.into_iter().enumerate() {
        conn.execute(sql).await.expect("an older migration");
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)")
            .bind(i as i64 + 1)
            .execute(&mut conn)
            .await
            .expect("record it");
    }
    // Three files of a version 7 catalog; the newest is then removed, so its id is the
    // highest ever given but no longer in the table.
    for n in 0..3 {
        sqlx::query(
            "INSERT INTO files (table_name, hour, shard, generation, path, min_tenant, max_tenant, min_time, \
             max_time, rows, bytes, processor_version, ingester_id, wal_through, created_at) \
             VALUES ('events', 10, 0, 1, $1, 'a', 'b', 36000000, 36000010, 5, 50, 4, 'i', 1, 0)",
        )
        .bind(format!("ev/{n}"))
        .execute(&mut conn)
        .await
        .expect("an old file");
    }
    let newest: i64 = sqlx::query_scalar("SELECT MAX(id) FROM files").fetch_one(&mut conn).await.expect("max id");
    sqlx::query("DELETE FROM files WHERE id = $1").bind(newest).execute(&mut conn).await.expect("remove it");
    drop(conn);

    let cat = fx.open().await;
    let filter = FileFilter { table: TableName::Events, tenant: None, min_time_ms: None, max_time_ms: None };
    let kept = cat.list_files(&filter).await.expect("list").files;
    assert_eq!(kept.iter().map(|f| f.file.path.as_str()).collect::<Vec<_>>(), ["ev/0", "ev/1"]);
    assert!(kept.iter().all(|f| f.file.segment.is_none() && f.file.rows == 5));
    // Two hours of one object: the path repeats, each with its own segment.
    let segment = |start: u64| NewFile {
        hour: 10 + start as i64,
        path: "ev/day".into(),
        segment: Some(Segment { start, end: start + 1, object_bytes: 10 }),
        ..kept[0].file.clone()
    };
    cat.replace_files("compactor", &[], &[segment(0), segment(1)]).await.expect("segments of one object");
    let ids: Vec<i64> = cat.list_files(&filter).await.expect("list").files.iter().map(|f| f.id).collect();
    assert!(ids[2..].iter().all(|id| *id > newest), "new ids follow the highest ever given: {ids:?} after {newest}");
    let same = cat.replace_files("compactor", &[], &[segment(1)]).await;
    assert!(same.is_err(), "the same segment of the same object is recorded once");
}

on_both_backends!(a_newer_schema_is_refused);
async fn a_newer_schema_is_refused(fx: Fixture) {
    drop(fx.open().await);
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&fx.url).await.expect("connect");
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        .execute(&mut conn)
        .await
        .expect("pretend a newer binary migrated");
    let err = SqlCatalog::open(&fx.url, &CatalogOptions::default()).await.expect_err("too new");
    assert!(matches!(err, Error::SchemaTooNew { found: 999, supported: 8 }), "{err}");
}

#[tokio::test]
async fn unknown_urls_are_refused_clearly() {
    let err = SqlCatalog::open("mysql://root:secret@localhost/x", &CatalogOptions::default()).await.expect_err("mysql");
    assert!(matches!(err, Error::UnsupportedUrl { .. }), "{err}");
    assert!(!err.to_string().contains("secret"), "the password is masked: {err}");
}
