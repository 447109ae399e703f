use super::*;

fn file(table: TableName, path: &str, tenants: (&str, &str), times: (i64, i64)) -> NewFile {
    NewFile {
        table,
        hour: 0,
        shard: 0,
        generation: 1,
        path: path.to_string(),
        min_tenant: tenants.0.to_string(),
        max_tenant: tenants.1.to_string(),
        min_time_ms: times.0,
        max_time_ms: times.1,
        rows: 10,
        bytes: 100,
        processor_version: None,
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("valid tenant")
}

#[tokio::test]
async fn tenants_and_tokens() {
    let cat = SqliteCatalog::in_memory().await.expect("catalog");
    cat.create_tenant(&tenant("a"), "wa", "ra").await.expect("create");
    let err = cat.create_tenant(&tenant("a"), "wa2", "ra2").await.expect_err("duplicate");
    assert!(matches!(err, Error::TenantExists { .. }));
    assert_eq!(cat.lookup_token("wa").await.expect("lookup"), Some(Principal::Writer(tenant("a"))));
    assert_eq!(cat.lookup_token("ra").await.expect("lookup"), Some(Principal::Reader(tenant("a"))));
    assert_eq!(cat.lookup_token("wa2").await.expect("lookup"), None);
    assert!(!cat.has_admin_token().await.expect("has"));
    cat.add_admin_token("adm").await.expect("admin");
    cat.add_admin_token("adm").await.expect("admin again is a no-op");
    assert!(cat.has_admin_token().await.expect("has"));
    assert_eq!(cat.lookup_token("adm").await.expect("lookup"), Some(Principal::Admin));
    assert_eq!(cat.list_tenants().await.expect("list"), vec![tenant("a")]);
}

#[tokio::test]
async fn persist_commits_files_and_position_together() {
    let cat = SqliteCatalog::in_memory().await.expect("catalog");
    assert_eq!(cat.persisted_position("i").await.expect("pos"), None);
    let files = [
        file(TableName::RawEvents, "raw/1", ("a", "c"), (0, 100)),
        file(TableName::Events, "ev/1", ("a", "c"), (0, 100)),
        file(TableName::Events, "ev/2", ("d", "f"), (200, 300)),
    ];
    cat.commit_persist("i", 5, &files).await.expect("commit");
    assert_eq!(cat.persisted_position("i").await.expect("pos"), Some(5));
    // Positions never move backwards.
    cat.commit_persist("i", 3, &[]).await.expect("commit");
    assert_eq!(cat.persisted_position("i").await.expect("pos"), Some(5));

    let list = |tenant: Option<&str>, min, max| FileFilter {
        table: TableName::Events,
        tenant: tenant.map(self::tenant),
        min_time_ms: min,
        max_time_ms: max,
    };
    let paths = |l: FileListing| l.files.into_iter().map(|f| f.file.path).collect::<Vec<_>>();
    assert_eq!(paths(cat.list_files(&list(None, None, None)).await.expect("list")), ["ev/1", "ev/2"]);
    assert_eq!(paths(cat.list_files(&list(Some("b"), None, None)).await.expect("list")), ["ev/1"]);
    assert_eq!(paths(cat.list_files(&list(Some("g"), None, None)).await.expect("list")), Vec::<String>::new());
    assert_eq!(paths(cat.list_files(&list(None, Some(150), None)).await.expect("list")), ["ev/2"]);
    assert_eq!(paths(cat.list_files(&list(None, None, Some(200))).await.expect("list")), ["ev/1"]);
    let listing = cat.list_files(&list(None, None, None)).await.expect("list");
    assert_eq!(listing.persisted.get("i"), Some(&5));
}

#[tokio::test]
async fn salts_are_stable_per_day() {
    let cat = SqliteCatalog::in_memory().await.expect("catalog");
    let a = cat.daily_salt("2026-01-01").await.expect("salt");
    assert_eq!(a.len(), 32);
    assert_eq!(cat.daily_salt("2026-01-01").await.expect("salt"), a);
    assert_ne!(cat.daily_salt("2026-01-02").await.expect("salt"), a);
}

#[tokio::test]
async fn file_catalog_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    {
        let cat = SqliteCatalog::open(&path).await.expect("open");
        cat.create_tenant(&tenant("a"), "w", "r").await.expect("create");
    }
    let cat = SqliteCatalog::open(&path).await.expect("reopen");
    assert_eq!(cat.list_tenants().await.expect("list"), vec![tenant("a")]);
}
