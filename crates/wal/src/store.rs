//! Reading, writing and deleting WAL segments in an object store.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::segment::{DecodedSegment, decode_segment, encode_segment};
use crate::{Error, Result};

/// Sequence number of a segment within one ingester's WAL; grows by one per segment.
pub type SegmentId = u64;

/// One ingester's WAL in an object store.
#[derive(Debug, Clone)]
pub struct WalStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl WalStore {
    /// The WAL of `ingester_id` (which must be a valid object-key segment) in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, ingester_id: &str) -> Self {
        Self { store, prefix: format!("wal/{ingester_id}") }
    }

    fn path(&self, id: SegmentId) -> Path {
        Path::from(format!("{}/{id:020}.wal", self.prefix))
    }

    fn quarantine_path(&self, id: SegmentId) -> Path {
        Path::from(format!("wal-quarantine/{}/{id:020}.wal", self.prefix.trim_start_matches("wal/")))
    }

    /// Writes segment `id` holding `entries` and returns once it is durable.
    ///
    /// The write is create-only: if a segment with this id already exists (another process
    /// using the same ingester id), it fails instead of overwriting acknowledged data.
    pub async fn write_segment(&self, id: SegmentId, entries: &[Bytes]) -> Result<usize> {
        let path = self.path(id);
        let data = encode_segment(entries);
        let len = data.len();
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.store
            .put_opts(&path, PutPayload::from(data), opts)
            .await
            .map_err(|source| Error::Write { path: path.to_string(), source })?;
        Ok(len)
    }

    /// Ids of every segment present, ascending.
    pub async fn list_segments(&self) -> Result<Vec<SegmentId>> {
        let prefix = Path::from(self.prefix.as_str());
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| Error::Access { path: self.prefix.clone(), source })?;
        let mut ids: Vec<SegmentId> =
            metas.iter().filter_map(|m| m.location.filename()?.strip_suffix(".wal")?.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reads and decodes segment `id`.
    pub async fn read_segment(&self, id: SegmentId) -> Result<DecodedSegment> {
        let path = self.path(id);
        let access = |source| Error::Access { path: path.to_string(), source };
        let data: Bytes = self.store.get(&path).await.map_err(access)?.bytes().await.map_err(access)?;
        Ok(decode_segment(&data))
    }

    /// Copies a damaged segment aside under `wal-quarantine/` so that it can be inspected after
    /// the WAL itself moves on.
    pub async fn quarantine(&self, id: SegmentId) -> Result<String> {
        let from = self.path(id);
        let to = self.quarantine_path(id);
        self.store.copy(&from, &to).await.map_err(|source| Error::Access { path: from.to_string(), source })?;
        Ok(to.to_string())
    }

    /// Deletes every segment with an id up to and including `through`; call only after the
    /// catalog records that their events are persisted.
    pub async fn delete_through(&self, through: SegmentId) -> Result<usize> {
        let doomed: Vec<Path> =
            self.list_segments().await?.into_iter().filter(|id| *id <= through).map(|id| self.path(id)).collect();
        let count = doomed.len();
        let stream = futures::stream::iter(doomed.into_iter().map(Ok)).boxed();
        self.store
            .delete_stream(stream)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|source| Error::Access { path: self.prefix.clone(), source })?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn write_list_read_delete() {
        let wal = WalStore::new(Arc::new(InMemory::new()), "ingester-0");
        for id in [3u64, 1, 2] {
            wal.write_segment(id, &[Bytes::from(format!("entry {id}"))]).await.expect("write");
        }
        assert_eq!(wal.list_segments().await.expect("list"), vec![1, 2, 3]);
        let seg = wal.read_segment(2).await.expect("read");
        assert_eq!(seg.entries, vec![Bytes::from("entry 2")]);
        assert!(seg.corruption.is_none());
        assert_eq!(wal.delete_through(2).await.expect("delete"), 2);
        assert_eq!(wal.list_segments().await.expect("list"), vec![3]);
    }

    #[tokio::test]
    async fn segments_are_never_overwritten() {
        let wal = WalStore::new(Arc::new(InMemory::new()), "i");
        wal.write_segment(1, &[Bytes::from("a")]).await.expect("first");
        assert!(wal.write_segment(1, &[Bytes::from("b")]).await.is_err());
        assert_eq!(wal.read_segment(1).await.expect("read").entries, vec![Bytes::from("a")]);
    }

    #[tokio::test]
    async fn quarantine_keeps_a_copy() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let wal = WalStore::new(Arc::clone(&store), "i");
        wal.write_segment(7, &[Bytes::from("a")]).await.expect("write");
        let copy = wal.quarantine(7).await.expect("quarantine");
        assert_eq!(copy, "wal-quarantine/i/00000000000000000007.wal");
        assert!(store.head(&Path::from(copy)).await.is_ok());
    }
}
