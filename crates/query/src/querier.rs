//! Tenant-scoped SQL sessions and query execution.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use hourglass_catalog::Catalog;
use hourglass_types::{TableName, TenantId};
use object_store::ObjectStore;

use crate::buffer_source::BufferSource;
use crate::table::TenantTable;
use crate::{Error, Result, metrics};

/// Querier settings.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Memory all running queries may use together; a query past it fails with
    /// `resources exhausted` instead of growing the process.
    pub memory_limit_bytes: usize,
    /// Memory for cached Parquet footers and page indexes.
    pub metadata_cache_bytes: usize,
    /// Parallelism of one query.
    pub target_partitions: usize,
    /// Largest result one query may return.
    pub max_result_bytes: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 2 * 1024 * 1024 * 1024,
            metadata_cache_bytes: 128 * 1024 * 1024,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_result_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A query's complete result.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Result schema.
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
}

/// Runs tenant-scoped SQL. Cheap to share; holds the runtime (memory pool, metadata cache).
#[derive(Debug)]
pub struct Querier {
    config: QueryConfig,
    catalog: Arc<dyn Catalog>,
    buffers: Vec<Arc<dyn BufferSource>>,
    runtime: Arc<RuntimeEnv>,
    store_url: ObjectStoreUrl,
    cpu: Option<tokio::runtime::Handle>,
}

impl Querier {
    /// A querier reading `store` and `catalog`, and the unpersisted rows of `buffers`.
    /// Query execution runs on `cpu` when given (so that it does not starve IO), else on the
    /// caller's runtime.
    pub fn new(
        config: QueryConfig,
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        buffers: Vec<Arc<dyn BufferSource>>,
        cpu: Option<tokio::runtime::Handle>,
    ) -> Result<Self> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.memory_limit_bytes, 1.0)
            .with_metadata_cache_limit(config.metadata_cache_bytes)
            .build_arc()?;
        let store_url = ObjectStoreUrl::parse("hourglass://data")?;
        runtime.register_object_store(store_url.as_ref(), store);
        Ok(Self {
            config,
            catalog,
            buffers,
            runtime,
            store_url,
            cpu,
        })
    }

    /// A session that sees only `tenant`'s rows of `events` and `raw_events`.
    pub fn session(&self, tenant: &TenantId) -> Result<SessionContext> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(self.config.target_partitions.max(1));
        config.options_mut().execution.parquet.pushdown_filters = true;
        config.options_mut().execution.parquet.reorder_filters = true;
        let ctx = SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime));
        for table in TableName::ALL {
            let provider = TenantTable::new(
                table,
                tenant.clone(),
                Arc::clone(&self.catalog),
                self.buffers.clone(),
                self.store_url.clone(),
            );
            ctx.register_table(table.as_str(), Arc::new(provider))?;
        }
        Ok(ctx)
    }

    /// Options that make a session read-only: no DDL, DML, COPY or SET.
    pub fn read_only() -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    }

    /// Runs one read-only SQL statement as `tenant` and collects the result.
    pub async fn query(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult> {
        let started = Instant::now();
        let ctx = self.session(tenant)?;
        let sql = sql.to_string();
        let limit = self.config.max_result_bytes;
        let run = async move {
            let df = ctx.sql_with_options(&sql, Self::read_only()).await.map_err(|e| {
                if matches!(e.find_root(), datafusion::error::DataFusionError::Plan(m) if m.contains("not supported")) {
                    Error::NotReadOnly(e.to_string())
                } else {
                    Error::DataFusion(e)
                }
            })?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await?;
            let mut batches = Vec::new();
            let mut bytes = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                bytes += batch.get_array_memory_size();
                if bytes > limit {
                    return Err(Error::ResultTooLarge { limit });
                }
                batches.push(batch);
            }
            Ok(QueryResult { schema, batches })
        };
        let result = match &self.cpu {
            Some(handle) => handle
                .spawn(run)
                .await
                .map_err(|e| Error::Task(e.to_string()))?,
            None => run.await,
        };
        metrics::QUERY_SECONDS.observe(started.elapsed());
        if result.is_err() {
            metrics::QUERY_ERRORS.inc();
        }
        result
    }
}
