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
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
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
    assert!(matches!(err, Error::SchemaTooNew { found: 999, supported: 7 }), "{err}");
}

#[tokio::test]
async fn unknown_urls_are_refused_clearly() {
    let err = SqlCatalog::open("mysql://root:secret@localhost/x", &CatalogOptions::default()).await.expect_err("mysql");
    assert!(matches!(err, Error::UnsupportedUrl { .. }), "{err}");
    assert!(!err.to_string().contains("secret"), "the password is masked: {err}");
}
