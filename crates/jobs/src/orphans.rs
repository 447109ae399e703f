//! Objects never committed. A job that crashes, or is stopped, between writing an object and
//! recording it in the catalog (an ingester's persist, a merge, a backfill, a rollup, an
//! import upload) leaves an object nothing refers to, and so does a lost race whose delete
//! failed. The sweep lists the tables' and imports' prefixes, takes the objects older than any
//! write could take to be committed, and queues those the catalog does not know as garbage,
//! so they are deleted like replaced files: after the grace period.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use hourglass_catalog::Catalog;
use hourglass_types::TableName;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::{Error, Result};

/// The prefixes whose objects the catalog records: every table's, and imported tables'.
fn prefixes() -> Vec<String> {
    TableName::ALL.iter().map(|t| format!("{}/", t.as_str())).chain(["imports/".to_string()]).collect()
}

/// Queues as garbage every object under the catalog's prefixes that is older than `min_age`
/// and that no file, import or queued garbage names. Returns how many it queued.
pub(crate) async fn sweep(store: &dyn ObjectStore, catalog: &dyn Catalog, min_age: Duration) -> Result<usize> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let cutoff_ms = i64::try_from(now.saturating_sub(min_age).as_millis()).unwrap_or(i64::MAX);
    let mut queued = 0;
    for prefix in prefixes() {
        // Listed before the catalog is read: an object committed in between is known to it.
        let old: Vec<String> = store
            .list(Some(&Path::from(prefix.as_str())))
            .try_filter(|meta| std::future::ready(meta.last_modified.timestamp_millis() <= cutoff_ms))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|source| Error::Object { path: prefix.clone(), source })?;
        if old.is_empty() {
            continue;
        }
        let known: HashSet<String> = catalog.known_paths(&prefix).await?.into_iter().collect();
        let orphans: Vec<String> = old.into_iter().filter(|p| !known.contains(p)).collect();
        if orphans.is_empty() {
            continue;
        }
        tracing::info!(prefix, objects = orphans.len(), "objects never committed queued as garbage");
        catalog.queue_garbage(&orphans).await?;
        queued += orphans.len();
    }
    Ok(queued)
}
