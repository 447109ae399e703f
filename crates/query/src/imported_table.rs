//! Tables a tenant imported (CRM exports, signup lists): one Parquet object each, registered
//! in the tenant's sessions next to `events` so that the two join in SQL.

use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use hourglass_catalog::ImportedTable;

/// The Arrow schema of an imported table as the catalog stores it (an IPC stream header).
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// The schema [`encode_schema`] wrote.
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef> {
    Ok(StreamReader::try_new(Cursor::new(bytes), None)?.schema())
}

/// One imported table: a single Parquet object with a known schema.
#[derive(Debug)]
pub(crate) struct ImportedTableProvider {
    schema: SchemaRef,
    path: String,
    bytes: u64,
    store_url: ObjectStoreUrl,
}

impl ImportedTableProvider {
    /// The table `record` describes, read from the store registered at `store_url`.
    pub fn new(record: &ImportedTable, store_url: ObjectStoreUrl) -> Result<Self> {
        let schema = decode_schema(&record.arrow_schema).map_err(|e| {
            DataFusionError::Internal(format!("imported table {} has an unreadable schema: {e}", record.name))
        })?;
        Ok(Self { schema, path: record.path.clone(), bytes: record.bytes, store_url })
    }
}

#[async_trait]
impl TableProvider for ImportedTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune row groups; DataFusion still applies them exactly.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let runtime = state.runtime_env();
        let store = runtime.object_store(&self.store_url)?;
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let mut source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(state.default_table_options().parquet)
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(store, cache)));
        if let Some(predicate) = conjunction(filters.to_vec()) {
            let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let group: FileGroup = vec![PartitionedFile::new(self.path.clone(), self.bytes)].into_iter().collect();
        let projection = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(vec![group])
            .with_projection_indices(Some(projection))?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

    use super::*;

    #[test]
    fn schemas_survive_the_catalog_encoding() {
        let schema = Schema::new(vec![
            Field::new("email", DataType::Utf8, true),
            Field::new("seats", DataType::Int64, true),
            Field::new("signed_up", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
        ]);
        let encoded = encode_schema(&schema).expect("encode");
        assert_eq!(decode_schema(&encoded).expect("decode").as_ref(), &schema);
        assert!(decode_schema(b"not a schema").is_err());
    }
}
