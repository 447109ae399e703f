//! Tenant-scoped SQL sessions and query execution.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use hourglass_catalog::Catalog;
use hourglass_types::{TableName, TenantId};
use object_store::ObjectStore;

use crate::buffer_source::BufferSource;
use crate::table::TenantTable;
use crate::{Error, Result, metrics, system_tables};

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
    /// Longest a query may run before it is cancelled.
    pub timeout: std::time::Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 2 * 1024 * 1024 * 1024,
            metadata_cache_bytes: 128 * 1024 * 1024,
            target_partitions: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            max_result_bytes: 256 * 1024 * 1024,
            timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Whose query it is: what its session can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A merchant: its own rows of `events` and `raw_events`, nothing else.
    Tenant(TenantId),
    /// The deployment's admin: the `system.*` tables, and no tenant's rows.
    Admin,
}

/// What a statement returns and takes, before it runs.
#[derive(Debug, Clone)]
pub struct Described {
    /// The result schema.
    pub schema: SchemaRef,
    /// Parameters by name (`$1`, `$2`...), in order, with their types where known.
    pub parameters: Vec<(String, Option<DataType>)>,
}

/// A query's complete result.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Result schema.
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
}

/// Extra tables and functions a protocol front end adds to a session before its statement is
/// planned: the PostgreSQL wire front end adds `pg_catalog` and the functions its clients call.
/// What it adds cannot widen the scope: it sees the session only after the scope's tables are in.
#[async_trait::async_trait]
pub trait SessionSetup: Send + Sync {
    /// Registers what the front end needs in `ctx`.
    async fn setup(&self, ctx: &SessionContext) -> datafusion::error::Result<()>;
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
        Ok(Self { config, catalog, buffers, runtime, store_url, cpu })
    }

    /// Largest result a query may return, in bytes.
    pub fn max_result_bytes(&self) -> usize {
        self.config.max_result_bytes
    }

    fn context(&self) -> SessionContext {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(self.config.target_partitions.max(1));
        let ctx = SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime));
        crate::functions::register(&ctx);
        ctx
    }

    /// A session for `scope`: a tenant's rows of `events` and `raw_events`, or the admin's
    /// `system.*` tables.
    pub async fn session_for(&self, scope: &Scope) -> Result<SessionContext> {
        match scope {
            Scope::Tenant(tenant) => self.session(tenant),
            Scope::Admin => {
                let ctx = self.context();
                let schema = system_tables::system_schema(self.catalog.as_ref()).await?;
                if let Some(catalog) = ctx.catalog("datafusion") {
                    catalog.register_schema("system", schema)?;
                }
                Ok(ctx)
            }
        }
    }

    /// A session that sees only `tenant`'s rows of `events` and `raw_events`.
    pub fn session(&self, tenant: &TenantId) -> Result<SessionContext> {
        let ctx = self.context();
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
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
    }

    /// Runs one read-only SQL statement as `tenant` and collects the result.
    ///
    /// The query runs on the CPU runtime; it is cancelled when it exceeds the configured
    /// timeout or when the returned future is dropped (the client went away).
    pub async fn query(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult> {
        self.query_as(&Scope::Tenant(tenant.clone()), sql).await
    }

    /// Runs one read-only SQL statement in `scope`; see [`Querier::query`].
    pub async fn query_as(&self, scope: &Scope, sql: &str) -> Result<QueryResult> {
        self.query_with_params(scope, sql, Vec::new()).await
    }

    /// Plans `sql` in `ctx`, refusing anything but a read-only query.
    async fn plan(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        let plan = ctx.state().create_logical_plan(sql).await?;
        if matches!(plan, LogicalPlan::Analyze(_)) {
            // Its metrics count rows pruned in files shared with other tenants.
            return Err(Error::NotReadOnly("EXPLAIN ANALYZE is not available; use EXPLAIN".into()));
        }
        Self::read_only().verify_plan(&plan).map_err(|e| Error::NotReadOnly(e.to_string()))?;
        Ok(plan)
    }

    /// The result schema of `sql` and the types of its `$1, $2, ...` parameters (`None` where
    /// the statement does not fix one), without running it: prepared statements use it.
    pub async fn describe(&self, scope: &Scope, sql: &str) -> Result<Described> {
        self.describe_with(scope, sql, None).await
    }

    /// [`Querier::describe`] in a session extended by `setup`.
    pub async fn describe_with(&self, scope: &Scope, sql: &str, setup: Option<&dyn SessionSetup>) -> Result<Described> {
        let ctx = self.session_for(scope).await?;
        if let Some(setup) = setup {
            setup.setup(&ctx).await?;
        }
        let plan = Self::plan(&ctx, sql).await?;
        let mut parameters: Vec<(String, Option<DataType>)> = plan.get_parameter_types()?.into_iter().collect();
        // `$2` sorts after `$10` as text; order by number.
        parameters.sort_by_key(|(name, _)| name.trim_start_matches('$').parse::<u32>().unwrap_or(u32::MAX));
        Ok(Described { schema: Arc::new(plan.schema().as_arrow().clone()), parameters })
    }

    /// Every table `scope` can read, as (catalog, schema, table, columns), for metadata calls
    /// of SQL clients.
    pub async fn tables(&self, scope: &Scope) -> Result<Vec<(String, String, String, SchemaRef)>> {
        let ctx = self.session_for(scope).await?;
        let mut out = Vec::new();
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                for table_name in schema.table_names() {
                    if let Some(table) = schema.table(&table_name).await? {
                        out.push((catalog_name.clone(), schema_name.clone(), table_name, table.schema()));
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        Ok(out)
    }

    /// Runs `sql` with values for its `$1, $2, ...` parameters; see [`Querier::query`].
    pub async fn query_with_params(&self, scope: &Scope, sql: &str, params: Vec<ScalarValue>) -> Result<QueryResult> {
        self.query_with(scope, sql, params, None).await
    }

    /// [`Querier::query_with_params`] in a session extended by `setup`.
    pub async fn query_with(
        &self,
        scope: &Scope,
        sql: &str,
        params: Vec<ScalarValue>,
        setup: Option<&dyn SessionSetup>,
    ) -> Result<QueryResult> {
        let started = Instant::now();
        let ctx = self.session_for(scope).await?;
        if let Some(setup) = setup {
            setup.setup(&ctx).await?;
        }
        let sql = sql.to_string();
        let limit = self.config.max_result_bytes;
        let run = async move {
            let mut plan = Self::plan(&ctx, &sql).await?;
            if !params.is_empty() {
                plan = plan.with_param_values(params)?;
            }
            let df = ctx.execute_logical_plan(plan).await?;
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
        let timeout = self.config.timeout;
        let result = match &self.cpu {
            Some(handle) => {
                let task = AbortOnDrop(handle.spawn(run));
                match tokio::time::timeout(timeout, task).await {
                    Ok(joined) => joined,
                    Err(_) => Err(Error::Timeout { seconds: timeout.as_secs() }),
                }
            }
            None => {
                tokio::time::timeout(timeout, run).await.unwrap_or(Err(Error::Timeout { seconds: timeout.as_secs() }))
            }
        };
        metrics::QUERY_SECONDS.observe(started.elapsed());
        if result.is_err() {
            metrics::QUERY_ERRORS.inc();
        }
        result
    }
}

/// A spawned query that is aborted when its handle is dropped, so that a client that goes
/// away or a timeout stops the work instead of leaving it running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<Result<T>> {
    type Output = Result<T>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(|e| Err(Error::Task(e.to_string()))))
    }
}
