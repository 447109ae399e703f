//! Counting the requests Hourglass sends to its object store, by kind: on S3 each one is a
//! billed request, so `hourglass_object_store_requests_total` is the running cost of a
//! deployment.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use hourglass_types::metrics::Counter;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// PUT requests (whole objects), including WAL segments.
pub static PUTS: Counter = Counter::new(
    "hourglass_object_store_puts_total",
    "Single-request object uploads (WAL segments, Parquet files, quarantined segments).",
);
/// Multipart uploads started.
pub static MULTIPART_UPLOADS: Counter =
    Counter::new("hourglass_object_store_multipart_uploads_total", "Multipart uploads started.");
/// GET requests (whole objects and ranges).
pub static GETS: Counter =
    Counter::new("hourglass_object_store_gets_total", "Object reads: whole objects and byte ranges.");
/// LIST requests.
pub static LISTS: Counter = Counter::new("hourglass_object_store_lists_total", "Listings started.");
/// DELETE requests.
pub static DELETES: Counter = Counter::new("hourglass_object_store_deletes_total", "Objects deleted.");

/// Appends the object-store metrics in Prometheus text format.
pub fn render(out: &mut String) {
    for counter in [&PUTS, &MULTIPART_UPLOADS, &GETS, &LISTS, &DELETES] {
        counter.render(out);
    }
}

/// Wraps a store and counts its requests.
#[derive(Debug)]
pub(crate) struct CountedStore(pub(crate) Arc<dyn ObjectStore>);

impl fmt::Display for CountedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[async_trait]
impl ObjectStore for CountedStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        PUTS.inc();
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        MULTIPART_UPLOADS.inc();
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        GETS.inc();
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        GETS.add(ranges.len() as u64);
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.0.delete_stream(
            locations
                .map(|l| {
                    DELETES.inc();
                    l
                })
                .boxed(),
        )
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        LISTS.inc();
        self.0.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        LISTS.inc();
        self.0.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        LISTS.inc();
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        PUTS.inc();
        self.0.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        PUTS.inc();
        self.0.rename_opts(from, to, options).await
    }
}
