//! Racing writers: two persisters, two compactors and a querier, each with its own connection
//! pool as separate processes would have. Every snapshot the querier takes must hold exactly
//! the rows the persisters had committed in it: no file lost, none registered twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hourglass_catalog::{Catalog, Error, FileFilter, FileListing};
use hourglass_types::TableName;

use crate::contract::file;
use crate::fixture::{Fixture, on_both_backends};

const COMMITS: u64 = 40;
const INGESTERS: [&str; 2] = ["ingester-a", "ingester-b"];

fn all_events() -> FileFilter {
    FileFilter { table: TableName::Events, tenant: None, min_time_ms: None, max_time_ms: None }
}

/// Commit `p` of every ingester records two files of `p` rows each.
fn expected_rows(listing: &FileListing) -> u64 {
    INGESTERS.iter().map(|i| listing.persisted.get(*i).map(|p| p * (p + 1)).unwrap_or(0)).sum()
}

fn listed_rows(listing: &FileListing) -> u64 {
    listing.files.iter().map(|f| f.file.rows).sum()
}

async fn persist(catalog: impl Catalog, ingester: &'static str) {
    for p in 1..=COMMITS {
        let files = [
            file(TableName::Events, &format!("{ingester}/{p}/a"), ("a", "m"), (0, 10), p),
            file(TableName::Events, &format!("{ingester}/{p}/b"), ("n", "z"), (0, 10), p),
        ];
        // Each commit is sent twice at once, as a persister retrying after a timeout might.
        let (first, second) =
            tokio::join!(catalog.commit_persist(ingester, p, &files), catalog.commit_persist(ingester, p, &files));
        first.expect("commit");
        second.expect("duplicate commit");
    }
}

async fn compact(catalog: impl Catalog, name: &'static str, stop: Arc<AtomicBool>, lost: Arc<AtomicUsize>) -> usize {
    let mut merges = 0;
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let listing = catalog.list_files(&all_events()).await.expect("compactor listing");
        if listing.files.len() < 3 {
            tokio::task::yield_now().await;
            continue;
        }
        // Both compactors pick overlapping sets, so they collide often.
        let picked = &listing.files[..3];
        let ids: Vec<i64> = picked.iter().map(|f| f.id).collect();
        let rows = picked.iter().map(|f| f.file.rows).sum();
        let merged = file(TableName::Events, &format!("{name}/{round}"), ("a", "z"), (0, 10), rows);
        match catalog.replace_files(name, &ids, &[merged]).await {
            Ok(()) => merges += 1,
            Err(Error::FilesGone { .. }) => {
                lost.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    merges
}

async fn query(catalog: impl Catalog, stop: Arc<AtomicBool>) -> usize {
    let mut snapshots = 0;
    while !stop.load(Ordering::Relaxed) {
        let listing = catalog.list_files(&all_events()).await.expect("querier listing");
        assert_eq!(listed_rows(&listing), expected_rows(&listing), "snapshot {snapshots} is inconsistent");
        let unique: HashSet<&str> = listing.files.iter().map(|f| f.file.path.as_str()).collect();
        assert_eq!(unique.len(), listing.files.len(), "a path is listed twice");
        snapshots += 1;
    }
    snapshots
}

on_both_backends!(racing_writers_lose_and_duplicate_nothing);
async fn racing_writers_lose_and_duplicate_nothing(fx: Fixture) {
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicUsize::new(0));
    let compactors = [("compactor-1", fx.open().await), ("compactor-2", fx.open().await)]
        .map(|(name, cat)| tokio::spawn(compact(cat, name, stop.clone(), lost.clone())));
    let querier = tokio::spawn(query(fx.open().await, stop.clone()));
    let persisters =
        [tokio::spawn(persist(fx.open().await, INGESTERS[0])), tokio::spawn(persist(fx.open().await, INGESTERS[1]))];
    for p in persisters {
        p.await.expect("persister");
    }
    stop.store(true, Ordering::Relaxed);
    let mut merges = 0;
    for c in compactors {
        merges += c.await.expect("compactor");
    }
    let snapshots = querier.await.expect("querier");

    let catalog = fx.open().await;
    let listing = catalog.list_files(&all_events()).await.expect("final listing");
    assert_eq!(listing.persisted.get(INGESTERS[0]), Some(&COMMITS));
    assert_eq!(listed_rows(&listing), 2 * COMMITS * (COMMITS + 1), "every committed row is listed once");
    assert!(merges > 0, "the compactors merged nothing; the race was not exercised");
    assert!(snapshots > 0, "the querier took no snapshot");
    eprintln!("merges {merges}, lost races {}, snapshots {snapshots}", lost.load(Ordering::Relaxed));
}
