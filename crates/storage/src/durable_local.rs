//! A local-directory object store whose writes are on disk when they return.
//!
//! `object_store`'s `LocalFileSystem` writes a staging file and renames it into place, which is
//! atomic but not durable: neither the file nor the directory entry is synced, so a power loss
//! can lose an acknowledged write. Hourglass acknowledges ingest only after the WAL segment is
//! written, so this wrapper syncs the file before the rename and the directory after it (and
//! every directory it had to create), then delegates everything else to `LocalFileSystem`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path as FsPath, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// A [`LocalFileSystem`] whose `put` and completed multipart uploads are fsynced, file and
/// directory, before they return.
#[derive(Debug)]
pub struct DurableLocalFileSystem {
    inner: LocalFileSystem,
    root: PathBuf,
}

impl DurableLocalFileSystem {
    /// A store rooted at `root`, which must exist.
    pub fn new(root: &FsPath) -> Result<Self> {
        let root = std::fs::canonicalize(root).map_err(|source| object_store::Error::Generic {
            store: "DurableLocalFileSystem",
            source: Box::new(source),
        })?;
        Ok(Self { inner: LocalFileSystem::new_with_prefix(&root)?, root })
    }
}

impl fmt::Display for DurableLocalFileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocalFileSystem({})", self.root.display())
    }
}

fn io_error(path: &FsPath, source: std::io::Error) -> object_store::Error {
    if source.kind() == ErrorKind::AlreadyExists {
        return object_store::Error::AlreadyExists { path: path.display().to_string(), source: Box::new(source) };
    }
    object_store::Error::Generic {
        store: "DurableLocalFileSystem",
        source: format!("{}: {source}", path.display()).into(),
    }
}

fn sync_dir(dir: &FsPath) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, syncing each parent whose entries changed so that
/// the new directories survive a crash.
fn create_dirs_durably(dir: &FsPath) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes `payload` to `dest` durably: a synced staging file, renamed (or hard-linked for
/// create-only puts) into place, and the directory synced.
fn write_durably(dest: &FsPath, payload: &PutPayload, create_only: bool) -> std::io::Result<()> {
    let parent = dest.parent().unwrap_or(FsPath::new("/"));
    create_dirs_durably(parent)?;
    // LocalFileSystem's listing hides `name#<digits>`, so staging files stay invisible.
    let staging = PathBuf::from(format!("{}#{}", dest.display(), uuid::Uuid::new_v4().as_u128()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&staging)?;
        for chunk in payload.iter() {
            file.write_all(chunk)?;
        }
        file.sync_all()?;
        drop(file);
        if create_only {
            std::fs::hard_link(&staging, dest)?;
            std::fs::remove_file(&staging)?;
        } else {
            std::fs::rename(&staging, dest)?;
        }
        sync_dir(parent)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    result
}

#[async_trait]
impl ObjectStore for DurableLocalFileSystem {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let create_only = match opts.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            // Conditional updates need etags the local store cannot compare atomically.
            PutMode::Update(_) => return self.inner.put_opts(location, payload, opts).await,
        };
        let dest = self.inner.path_to_filesystem(location)?;
        let written = dest.clone();
        tokio::task::spawn_blocking(move || write_durably(&written, &payload, create_only))
            .await
            .map_err(|e| object_store::Error::Generic { store: "DurableLocalFileSystem", source: Box::new(e) })?
            .map_err(|e| io_error(&dest, e))?;
        // No e_tag: this store cannot honour conditional updates anyway (PutMode::Update is
        // delegated above), and a stat per WAL segment is measurable on the ingest path.
        Ok(PutResult { e_tag: None, version: None })
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        let dest = self.inner.path_to_filesystem(location)?;
        Ok(Box::new(SyncedUpload { inner, dest }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        let dest = self.inner.path_to_filesystem(to)?;
        sync_written(dest).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        let dest = self.inner.path_to_filesystem(to)?;
        sync_written(dest).await
    }
}

/// Syncs a file that another call wrote, and its directory.
async fn sync_written(dest: PathBuf) -> Result<()> {
    let path = dest.clone();
    tokio::task::spawn_blocking(move || {
        File::open(&path)?.sync_all()?;
        sync_dir(path.parent().unwrap_or(FsPath::new("/")))
    })
    .await
    .map_err(|e| object_store::Error::Generic { store: "DurableLocalFileSystem", source: Box::new(e) })?
    .map_err(|e| io_error(&dest, e))
}

/// A multipart upload that syncs the completed file and its directory.
#[derive(Debug)]
struct SyncedUpload {
    inner: Box<dyn MultipartUpload>,
    dest: PathBuf,
}

#[async_trait]
impl MultipartUpload for SyncedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await?;
        sync_written(self.dest.clone()).await?;
        Ok(result)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    #[tokio::test]
    async fn put_creates_directories_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DurableLocalFileSystem::new(dir.path()).expect("store");
        let path = Path::from("a/b/c.bin");
        store.put(&path, PutPayload::from_static(b"hello")).await.expect("put");
        let got = store.get(&path).await.expect("get").bytes().await.expect("bytes");
        assert_eq!(&got[..], b"hello");
        let listed: Vec<_> = futures::StreamExt::collect::<Vec<_>>(store.list(None)).await;
        assert_eq!(listed.len(), 1, "staging files must not be listed");
    }

    #[tokio::test]
    async fn create_mode_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DurableLocalFileSystem::new(dir.path()).expect("store");
        let path = Path::from("x");
        let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
        store.put_opts(&path, PutPayload::from_static(b"1"), create()).await.expect("first");
        let err =
            store.put_opts(&path, PutPayload::from_static(b"2"), create()).await.expect_err("second create must fail");
        assert!(matches!(err, object_store::Error::AlreadyExists { .. }), "{err}");
        let got = store.get(&path).await.expect("get").bytes().await.expect("bytes");
        assert_eq!(&got[..], b"1");
    }
}
