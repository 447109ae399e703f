//! The querier's caches, on moka: Parquet metadata (footers and page indexes), and the bytes
//! of hot objects (the byte ranges queries read from Parquet files).
//!
//! Both are safe without invalidation because every Parquet object is written once under a
//! key nobody reuses (a UUID per file), and is only ever replaced by a new key.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::common::{HashMap, TableReference};
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::execution::cache::{Cache, CacheEntryInfo};
use futures::StreamExt;
use futures::stream::BoxStream;
use hourglass_types::metrics::Counter;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// Metadata cache hits.
pub static METADATA_HITS: Counter =
    Counter::new("hourglass_cache_parquet_metadata_hits_total", "Parquet footers and page indexes found cached.");
/// Metadata cache misses.
pub static METADATA_MISSES: Counter = Counter::new(
    "hourglass_cache_parquet_metadata_misses_total",
    "Parquet footers and page indexes read from storage.",
);
/// Object byte cache hits.
pub static BYTES_HITS: Counter =
    Counter::new("hourglass_cache_object_bytes_hits_total", "Byte ranges of Parquet objects found cached.");
/// Object byte cache misses.
pub static BYTES_MISSES: Counter =
    Counter::new("hourglass_cache_object_bytes_misses_total", "Byte ranges of Parquet objects read from storage.");

/// Renders a hit ratio gauge from two counters (0 before the first lookup).
pub fn render_ratio(out: &mut String, name: &str, help: &str, hits: &Counter, misses: &Counter) {
    let (h, m) = (hits.get(), misses.get());
    let ratio = if h + m == 0 { 0.0 } else { h as f64 / (h + m) as f64 };
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {ratio}\n"));
}

/// Appends the cache metrics in Prometheus text format.
pub fn render(out: &mut String) {
    for counter in [&METADATA_HITS, &METADATA_MISSES, &BYTES_HITS, &BYTES_MISSES] {
        counter.render(out);
    }
    render_ratio(
        out,
        "hourglass_cache_parquet_metadata_hit_ratio",
        "Share of Parquet metadata lookups found cached.",
        &METADATA_HITS,
        &METADATA_MISSES,
    );
    render_ratio(
        out,
        "hourglass_cache_object_bytes_hit_ratio",
        "Share of Parquet byte-range reads found cached.",
        &BYTES_HITS,
        &BYTES_MISSES,
    );
}

fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX).max(1)
}

/// DataFusion's file metadata cache, on moka (size-weighted, TinyLFU admission).
pub(crate) struct MetadataCache {
    cache: RwLock<moka::sync::Cache<Path, CachedFileMetadataEntry>>,
    limit: RwLock<usize>,
}

impl fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataCache").field("limit", &self.cache_limit()).finish()
    }
}

fn metadata_cache(limit: usize) -> moka::sync::Cache<Path, CachedFileMetadataEntry> {
    moka::sync::Cache::builder()
        .max_capacity(limit as u64)
        .weigher(|path: &Path, entry: &CachedFileMetadataEntry| {
            weight(path.as_ref().len() + entry.file_metadata.memory_size())
        })
        .build()
}

impl MetadataCache {
    pub(crate) fn new(limit: usize) -> Self {
        Self { cache: RwLock::new(metadata_cache(limit)), limit: RwLock::new(limit) }
    }

    fn inner(&self) -> moka::sync::Cache<Path, CachedFileMetadataEntry> {
        // moka caches are cheap handles onto shared state.
        self.cache.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Cache<Path, CachedFileMetadataEntry> for MetadataCache {
    fn get(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        let found = self.inner().get(key);
        if found.is_some() {
            METADATA_HITS.inc()
        } else {
            METADATA_MISSES.inc()
        }
        found
    }

    fn put(&self, key: &Path, value: CachedFileMetadataEntry) -> Option<CachedFileMetadataEntry> {
        let inner = self.inner();
        let previous = inner.get(key);
        inner.insert(key.clone(), value);
        previous
    }

    fn remove(&self, k: &Path) -> Option<CachedFileMetadataEntry> {
        self.inner().remove(k)
    }

    fn contains_key(&self, k: &Path) -> bool {
        self.inner().contains_key(k)
    }

    fn len(&self) -> usize {
        self.inner().entry_count() as usize
    }

    fn clear(&self) {
        self.inner().invalidate_all();
    }

    fn name(&self) -> String {
        "hourglass parquet metadata (moka)".to_string()
    }

    fn cache_limit(&self) -> usize {
        *self.limit.read().unwrap_or_else(|e| e.into_inner())
    }

    fn update_cache_limit(&self, limit: usize) {
        let mut current = self.limit.write().unwrap_or_else(|e| e.into_inner());
        if *current != limit {
            // moka's capacity is fixed at build time: a new limit starts a new cache.
            *self.cache.write().unwrap_or_else(|e| e.into_inner()) = metadata_cache(limit);
            *current = limit;
        }
    }

    fn cache_ttl(&self) -> Option<Duration> {
        None
    }

    fn update_cache_ttl(&self, _ttl: Option<Duration>) {}

    fn drop_table_entries(&self, _table_ref: &TableReference) -> datafusion::common::Result<()> {
        // Keys are object paths, not tied to tables; objects are immutable.
        Ok(())
    }

    fn list_entries(&self) -> HashMap<Path, CacheEntryInfo<CachedFileMetadataEntry>> {
        self.inner()
            .iter()
            .map(|(k, v)| {
                let size = v.file_metadata.memory_size();
                ((*k).clone(), CacheEntryInfo { value: v, size_bytes: size, hits: 0, expires: None })
            })
            .collect()
    }
}

/// A cached byte range, with the object's metadata to answer `get_opts`.
#[derive(Clone)]
struct Cached {
    bytes: Bytes,
    meta: ObjectMeta,
}

/// An object store that keeps byte ranges of immutable Parquet objects in memory.
#[derive(Debug)]
pub(crate) struct CachingStore {
    inner: Arc<dyn ObjectStore>,
    ranges: moka::sync::Cache<(Path, u64, u64), Cached>,
}

impl fmt::Display for CachingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caching({})", self.inner)
    }
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes of {}", self.bytes.len(), self.meta.location)
    }
}

/// Whether objects under `path` are write-once Parquet files (the WAL is read once, at
/// replay, and not worth caching).
fn cacheable(path: &Path) -> bool {
    path.as_ref().ends_with(".parquet")
}

impl CachingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, limit: usize) -> Self {
        let ranges = moka::sync::Cache::builder()
            .max_capacity(limit as u64)
            .weigher(|key: &(Path, u64, u64), value: &Cached| weight(key.0.as_ref().len() + value.bytes.len()))
            .build();
        Self { inner, ranges }
    }
}

#[async_trait]
impl ObjectStore for CachingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let plain = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none()
            && !options.head;
        let range = match &options.range {
            Some(GetRange::Bounded(r)) if plain && cacheable(location) => r.clone(),
            _ => return self.inner.get_opts(location, options).await,
        };
        let key = (location.clone(), range.start, range.end);
        let cached = match self.ranges.get(&key) {
            Some(hit) => {
                BYTES_HITS.inc();
                hit
            }
            None => {
                BYTES_MISSES.inc();
                let result = self.inner.get_opts(location, options).await?;
                let meta = result.meta.clone();
                let bytes = result.bytes().await?;
                let value = Cached { bytes, meta };
                self.ranges.insert(key, value.clone());
                value
            }
        };
        let end = range.start + cached.bytes.len() as u64;
        let payload = futures::stream::once(async move { Ok(cached.bytes) }).boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta: cached.meta,
            range: range.start..end,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        if !cacheable(location) {
            return self.inner.get_ranges(location, ranges).await;
        }
        let mut out: Vec<Option<Bytes>> =
            ranges.iter().map(|r| self.ranges.get(&(location.clone(), r.start, r.end)).map(|c| c.bytes)).collect();
        let missing: Vec<Range<u64>> =
            ranges.iter().zip(&out).filter(|(_, got)| got.is_none()).map(|(r, _)| r.clone()).collect();
        BYTES_HITS.add((ranges.len() - missing.len()) as u64);
        if !missing.is_empty() {
            BYTES_MISSES.add(missing.len() as u64);
            let fetched = self.inner.get_ranges(location, &missing).await?;
            // Ranges without a size or time are enough here: get_opts answers carry the
            // metadata of the request that filled them.
            let meta = ObjectMeta {
                location: location.clone(),
                last_modified: Default::default(),
                size: 0,
                e_tag: None,
                version: None,
            };
            let mut fetched = fetched.into_iter();
            for (slot, range) in out.iter_mut().zip(ranges) {
                if slot.is_none() {
                    let bytes = fetched.next().unwrap_or_default();
                    self.ranges.insert(
                        (location.clone(), range.start, range.end),
                        Cached { bytes: bytes.clone(), meta: meta.clone() },
                    );
                    *slot = Some(bytes);
                }
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
