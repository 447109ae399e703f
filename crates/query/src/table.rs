//! The table provider that scopes a table to one tenant.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType, col, lit};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use hourglass_catalog::{Catalog, FileFilter};
use hourglass_types::schema::{self, col as column};
use hourglass_types::{TableName, TenantId};
use object_store::ObjectStore;

use crate::buffer_source::BufferSource;
use crate::metrics;
use crate::tenant_scope::TenantScopeExec;
use crate::time_bounds::TimeBounds;

/// One stored table as one tenant sees it: the catalog's Parquet files plus the ingesters'
/// buffered rows, restricted to the tenant in every scan.
#[derive(Debug)]
pub struct TenantTable {
    table: TableName,
    tenant: TenantId,
    schema: SchemaRef,
    catalog: Arc<dyn Catalog>,
    buffers: Vec<Arc<dyn BufferSource>>,
    store_url: ObjectStoreUrl,
}

impl TenantTable {
    /// `table` for `tenant`, reading files from the object store registered at `store_url`.
    pub fn new(
        table: TableName,
        tenant: TenantId,
        catalog: Arc<dyn Catalog>,
        buffers: Vec<Arc<dyn BufferSource>>,
        store_url: ObjectStoreUrl,
    ) -> Self {
        Self { table, tenant, schema: query_schema(&schema::of(table)), catalog, buffers, store_url }
    }

    fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
        DataFusionError::External(Box::new(e))
    }
}

#[async_trait]
impl TableProvider for TenantTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune files, row groups and pages, but DataFusion still applies them exactly.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let bounds = TimeBounds::from_filters(filters);
        let tenant_idx = self.schema.index_of(column::TENANT_ID)?;

        // Columns to read: what the query wants plus tenant_id for the isolation filter,
        // which is then projected away.
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let mut scan_cols = wanted.clone();
        if !scan_cols.contains(&tenant_idx) {
            scan_cols.push(tenant_idx);
        }
        let tenant_pos = scan_cols.iter().position(|i| *i == tenant_idx).unwrap_or(0);

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !bounds.is_empty() {
            // Buffers first, then the catalog: see BufferSource for why the order matters.
            let from = bounds.min_ms.unwrap_or(0);
            let to = bounds.max_ms.unwrap_or(i64::MAX);
            let mut chunks = Vec::new();
            // Only ingested tables have buffered rows.
            let buffers = if TableName::INGESTED.contains(&self.table) { self.buffers.as_slice() } else { &[] };
            for source in buffers {
                let got =
                    source.snapshot(self.table, &self.tenant, from, to).await.map_err(DataFusionError::External)?;
                chunks.extend(got);
            }
            let filter = FileFilter {
                table: self.table,
                tenant: Some(self.tenant.clone()),
                min_time_ms: bounds.min_ms,
                max_time_ms: bounds.max_ms,
            };
            let listing = self.catalog.list_files(&filter).await.map_err(Self::external)?;

            let buffered: Vec<_> = chunks
                .into_iter()
                .filter(|c| c.max_seq > listing.persisted.get(&c.ingester_id).copied().unwrap_or(0))
                .flat_map(|c| c.batches)
                .filter(|b| b.num_rows() > 0)
                .map(|b| to_query_schema(&b, &self.schema))
                .collect::<Result<_>>()?;
            if !buffered.is_empty() {
                inputs.push(MemorySourceConfig::try_new_exec(
                    &[buffered],
                    Arc::clone(&self.schema),
                    Some(scan_cols.clone()),
                )?);
            }

            if !listing.files.is_empty() {
                metrics::FILES_SCANNED.add(listing.files.len() as u64);
                inputs.push(self.parquet_scan(state, &listing.files, &scan_cols).await?);
            }
        }
        if inputs.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(
                &[vec![]],
                Arc::clone(&self.schema),
                Some(scan_cols.clone()),
            )?);
        }
        let input = UnionExec::try_new(inputs)?;

        let output: Vec<usize> = (0..wanted.len()).collect();
        let tenant: Arc<str> = Arc::from(self.tenant.as_str());
        let plan = TenantScopeExec::try_new(input, tenant_pos, tenant, output)?;
        Ok(Arc::new(plan))
    }
}

/// The scan's view of `file`: the whole object, or, for an hour of a day object, the byte
/// range of its row groups (the scan reads the row groups whose first column chunk starts in
/// it, as the jobs do).
fn partitioned_file(file: &hourglass_catalog::NewFile) -> PartitionedFile {
    let scanned = PartitionedFile::new(file.path.clone(), file.object_bytes());
    match file.segment {
        Some(segment) => scanned.with_range(segment.start as i64, segment.end as i64),
        None => scanned,
    }
}

/// Makes sure every file's footer *and page index* are in the metadata cache.
///
/// The scan reads footers through the cache but without the page index, and then loads and
/// decodes the page index again on every query. Fetching once with the page index stores
/// both, so later scans find them cached (a cache hit costs a hash lookup).
async fn warm_metadata_cache(
    store: &Arc<dyn ObjectStore>,
    cache: &Arc<FileMetadataCache>,
    files: &[PartitionedFile],
) -> Result<()> {
    // The hours of a day object share its footer: fetch it once.
    let mut seen = std::collections::HashSet::new();
    let files: Vec<&PartitionedFile> = files.iter().filter(|f| seen.insert(&f.object_meta.location)).collect();
    for batch in files.chunks(8) {
        let mut fetches = Vec::with_capacity(batch.len());
        for file in batch {
            let fetch = DFParquetMetadata::new(store.as_ref(), &file.object_meta)
                .with_file_metadata_cache(Some(Arc::clone(cache)))
                .with_page_index_policy(Some(PageIndexPolicy::Optional));
            fetches.push(async move { fetch.fetch_metadata().await });
        }
        futures::future::try_join_all(fetches).await?;
    }
    Ok(())
}

/// The schema queries see: stored `Utf8` columns are read as `Utf8View`, which the Parquet
/// reader fills without copying string bytes and DataFusion's string kernels prefer.
fn query_schema(stored: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = stored
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Casts a batch to `schema`, column by column (for example stored `Utf8` to the query
/// schema's `Utf8View`, or back).
pub fn to_query_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(Arc::clone(c)) } else { cast(c, f.data_type()) })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

impl TenantTable {
    async fn parquet_scan(
        &self,
        state: &dyn Session,
        files: &[hourglass_catalog::FileRecord],
        scan_cols: &[usize],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The tenant test is the only predicate given to the scan, where it prunes row groups
        // and pages; TenantScopeExec then filters the rows. User filters are evaluated above
        // TenantScopeExec, on this tenant's rows only (see tenant_scope.rs).
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
        let predicate = state.create_physical_expr(col(column::TENANT_ID).eq(lit(self.tenant.as_str())), &df_schema)?;

        let runtime = state.runtime_env();
        let store = runtime.object_store(&self.store_url)?;
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(state.default_table_options().parquet)
            // Row-level filtering inside the decoder measured no faster than TenantScopeExec
            // alone once pages are pruned, and it evaluated the tenant test twice.
            .with_pushdown_filters(false)
            .with_reorder_filters(false)
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                Arc::clone(&store),
                Arc::clone(&cache),
            )))
            .with_predicate(predicate);
        let group: FileGroup = files.iter().map(|f| partitioned_file(&f.file)).collect();
        warm_metadata_cache(&store, &cache, group.files()).await?;
        let groups = group.split_files(state.config().target_partitions().max(1));
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(Some(scan_cols.to_vec()))?
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
