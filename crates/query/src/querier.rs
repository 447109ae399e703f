//! Tenant-scoped SQL sessions and query execution.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use hourglass_catalog::{Catalog, SettingsCache};
use hourglass_processor::sessions::SessionRules;
use hourglass_types::{TableName, TenantId};
use object_store::ObjectStore;

use crate::admission::{Admission, AdmissionConfig};
use crate::buffer_source::BufferSource;
use crate::imported_table::ImportedTableProvider;
use crate::query_memory::{QueryPool, Refused};
use crate::running::{Interface, QueryInfo, Registered, RunningQueries};
use crate::sessions_table::SessionsTable;
use crate::table::TenantTable;
use crate::{Error, Result, metrics, system_tables};

/// Querier settings.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Memory all running queries may use together; a query that cannot get memory because
    /// others hold it fails with `querier_busy` instead of growing the process.
    pub memory_limit_bytes: usize,
    /// Memory one query may use. Sorts and grouped aggregations spill to disk past it; other
    /// operators fail the query with `query_memory_limit`.
    pub query_memory_limit_bytes: usize,
    /// Disk all running queries may fill with spill files together.
    pub spill_limit_bytes: u64,
    /// Memory for cached Parquet footers and page indexes.
    pub metadata_cache_bytes: usize,
    /// Memory for cached byte ranges of Parquet objects (the hot pages of recent queries).
    pub object_cache_bytes: usize,
    /// Parallelism of one query.
    pub target_partitions: usize,
    /// Largest result one query may return.
    pub max_result_bytes: usize,
    /// Most rows one query may return.
    pub max_result_rows: usize,
    /// Longest a query may run before it is cancelled.
    pub timeout: std::time::Duration,
    /// How many queries run at once, per tenant and in all, and how long the rest may wait.
    pub admission: AdmissionConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 2 * 1024 * 1024 * 1024,
            query_memory_limit_bytes: 512 * 1024 * 1024,
            spill_limit_bytes: 16 * 1024 * 1024 * 1024,
            metadata_cache_bytes: 128 * 1024 * 1024,
            object_cache_bytes: 256 * 1024 * 1024,
            target_partitions: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            max_result_bytes: 256 * 1024 * 1024,
            max_result_rows: 10_000_000,
            timeout: std::time::Duration::from_secs(60),
            admission: AdmissionConfig::default(),
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

/// Who cancels through [`Querier::cancel`].
const BY_ADMIN: &str = "by the admin";

/// How a statement is run, beyond its text and parameters.
#[derive(Default, Clone, Copy)]
pub struct RunOptions<'a> {
    /// The front end it came through, for `system.queries`.
    pub interface: Interface,
    /// Tables and functions the front end adds to the session.
    pub setup: Option<&'a dyn SessionSetup>,
}

/// Runs tenant-scoped SQL. Cheap to share; holds the runtime (memory pool, metadata cache),
/// the admission queue and the registry of running queries.
#[derive(Debug)]
pub struct Querier {
    config: QueryConfig,
    catalog: Arc<dyn Catalog>,
    buffers: Vec<Arc<dyn BufferSource>>,
    runtime: Arc<RuntimeEnv>,
    store_url: ObjectStoreUrl,
    cpu: Option<tokio::runtime::Handle>,
    admission: Arc<Admission>,
    running: Arc<RunningQueries>,
    settings: SettingsCache,
}

/// A tenant's events in ingester buffers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Buffered {
    /// The UTC hours (hours since the epoch) they fall in.
    pub hours: std::collections::BTreeSet<i64>,
    /// How many rows (buffers only grow until a persist, which adds a file instead).
    pub rows: usize,
}

/// Name of the computed table of sessions every tenant session has.
pub const SESSIONS_TABLE: &str = "sessions";

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
        let metadata: Arc<dyn datafusion::execution::cache::Cache<_, _>> =
            Arc::new(crate::caches::MetadataCache::new(config.metadata_cache_bytes));
        let caches = datafusion::execution::cache::cache_manager::CacheManagerConfig::default()
            .with_file_metadata_cache(Some(metadata))
            .with_metadata_cache_limit(config.metadata_cache_bytes);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.memory_limit_bytes, 1.0)
            .with_cache_manager(caches)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_max_temp_directory_size(config.spill_limit_bytes),
            )
            .build_arc()?;
        let store_url = ObjectStoreUrl::parse("hourglass://data")?;
        let store: Arc<dyn ObjectStore> = if config.object_cache_bytes > 0 {
            Arc::new(crate::caches::CachingStore::new(store, config.object_cache_bytes))
        } else {
            store
        };
        runtime.register_object_store(store_url.as_ref(), store);
        let admission = Arc::new(Admission::new(config.admission.clone()));
        let running = Arc::new(RunningQueries::default());
        let settings = SettingsCache::new(Arc::clone(&catalog));
        Ok(Self { config, catalog, buffers, runtime, store_url, cpu, admission, running, settings })
    }

    /// The queries running or waiting for a slot now, oldest first.
    pub fn running_queries(&self) -> Vec<QueryInfo> {
        self.running.list()
    }

    /// When the oldest query or report read still running arrived (epoch ms): objects
    /// removed from the catalog since may still be read by it.
    pub fn oldest_query_start_ms(&self) -> Option<i64> {
        self.running.oldest_start_ms()
    }

    /// Cancels query `id` (from [`Querier::running_queries`]); false when it is not running.
    pub fn cancel(&self, id: u64) -> bool {
        self.running.cancel(id)
    }

    /// Largest result a query may return, in bytes.
    pub fn max_result_bytes(&self) -> usize {
        self.config.max_result_bytes
    }

    fn context(&self, runtime: Arc<RuntimeEnv>) -> SessionContext {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(self.config.target_partitions.max(1));
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        crate::functions::register(&ctx);
        ctx
    }

    /// A session for `scope`: a tenant's rows of `events` and `raw_events`, or the admin's
    /// `system.*` tables.
    pub async fn session_for(&self, scope: &Scope) -> Result<SessionContext> {
        self.session_in(scope, Arc::clone(&self.runtime)).await
    }

    async fn session_in(&self, scope: &Scope, runtime: Arc<RuntimeEnv>) -> Result<SessionContext> {
        match scope {
            Scope::Tenant(tenant) => self.tenant_session(tenant, runtime).await,
            Scope::Admin => {
                let ctx = self.context(runtime);
                let schema = system_tables::system_schema(self.catalog.as_ref(), &self.running.list()).await?;
                if let Some(catalog) = ctx.catalog("datafusion") {
                    catalog.register_schema("system", schema)?;
                }
                Ok(ctx)
            }
        }
    }

    /// A session that sees only `tenant`'s rows of `events` and `raw_events`, and the tables
    /// it imported.
    pub async fn session(&self, tenant: &TenantId) -> Result<SessionContext> {
        self.tenant_session(tenant, Arc::clone(&self.runtime)).await
    }

    async fn tenant_session(&self, tenant: &TenantId, runtime: Arc<RuntimeEnv>) -> Result<SessionContext> {
        let ctx = self.context(runtime);
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
        let config = self.settings.get(tenant).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        let rules = config.map(|c| SessionRules::from(&c.settings)).unwrap_or_default();
        let events = TenantTable::new(
            TableName::Events,
            tenant.clone(),
            Arc::clone(&self.catalog),
            self.buffers.clone(),
            self.store_url.clone(),
        );
        ctx.register_table(SESSIONS_TABLE, Arc::new(SessionsTable::new(events, rules)))?;
        let imports = self.catalog.list_imports(tenant).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        for imported in &imports {
            let provider = ImportedTableProvider::new(imported, self.store_url.clone())?;
            ctx.register_table(imported.name.as_str(), Arc::new(provider))?;
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
        self.query_with(scope, sql, params, RunOptions::default()).await
    }

    /// Runs `sql` with `params` as `options` say: the query waits for a slot in its tenant's
    /// turn, is listed in `system.queries` until it ends, runs within its memory, row, byte
    /// and time limits, and stops when the admin cancels it or the returned future is dropped.
    pub async fn query_with(
        &self,
        scope: &Scope,
        sql: &str,
        params: Vec<ScalarValue>,
        options: RunOptions<'_>,
    ) -> Result<QueryResult> {
        let started = Instant::now();
        let tenant = match scope {
            Scope::Tenant(tenant) => Some(tenant.as_str().to_string()),
            Scope::Admin => None,
        };
        let registered = self.running.register(tenant, options.interface, sql);
        let cancel = registered.cancel_signal();
        let result = tokio::select! {
            result = self.admit_and_run(scope, Job::Sql { sql, params, setup: options.setup }, &registered) => result,
            () = cancel.cancelled() => Err(Error::Cancelled(BY_ADMIN)),
        };
        metrics::QUERY_SECONDS.observe(started.elapsed());
        if let Err(e) = &result {
            metrics::QUERY_ERRORS.inc();
            tracing::debug!(query = registered.id(), error = %e, "query failed");
        }
        result
    }

    /// Reads `columns` of `tenant`'s `events` with timestamps in `[from_ms, to_ms)`, for the
    /// report API. The read is admitted, listed in `system.queries`, time-limited and
    /// cancellable like a query, and the rows it holds count against its memory budget; the
    /// result row and byte limits, which are for clients, do not apply.
    pub async fn read_events(
        &self,
        tenant: &TenantId,
        columns: &[&str],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<QueryResult> {
        self.read_table(tenant, TableName::Events, columns, from_ms, to_ms, None).await
    }

    /// Reads `columns` of `tenant`'s rows of `rollup` in the UTC hours starting in
    /// `[from_ms, to_ms)`, like [`Querier::read_events`].
    pub async fn read_rollup(
        &self,
        tenant: &TenantId,
        rollup: &str,
        columns: &[&str],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<QueryResult> {
        self.read_table(
            tenant,
            TableName::Rollups,
            columns,
            from_ms,
            to_ms,
            Some((hourglass_types::schema::col::ROLLUP_NAME, rollup)),
        )
        .await
    }

    /// What of `tenant`'s events is still in ingester buffers (including chunks being
    /// persisted right now): what a report cannot take from rollups yet, and what a cached
    /// report must not have missed.
    pub async fn buffered(&self, tenant: &TenantId) -> Result<Buffered> {
        use datafusion::arrow::array::AsArray;
        let mut out = Buffered::default();
        for source in &self.buffers {
            let chunks =
                source.snapshot(TableName::Events, tenant, 0, i64::MAX / 2).await.map_err(DataFusionError::External)?;
            for batch in chunks.iter().flat_map(|c| &c.batches) {
                let Some(times) = batch
                    .column_by_name(hourglass_types::schema::col::TIMESTAMP)
                    .and_then(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::TimestampMillisecondType>())
                else {
                    continue;
                };
                out.rows += times.len();
                out.hours.extend(times.values().iter().map(|t| hourglass_types::partition::hour_of(*t)));
            }
        }
        Ok(out)
    }

    async fn read_table(
        &self,
        tenant: &TenantId,
        table: TableName,
        columns: &[&str],
        from_ms: i64,
        to_ms: i64,
        equals: Option<(&str, &str)>,
    ) -> Result<QueryResult> {
        let started = Instant::now();
        let scope = Scope::Tenant(tenant.clone());
        let description = format!("report: {table} {} from {from_ms} to {to_ms}", columns.join(","));
        let registered = self.running.register(Some(tenant.as_str().to_string()), Interface::Report, &description);
        let cancel = registered.cancel_signal();
        let read = Read {
            table,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            from_ms,
            to_ms,
            equals: equals.map(|(c, v)| (c.to_string(), v.to_string())),
        };
        let result = tokio::select! {
            result = self.admit_and_run(&scope, Job::Read(read), &registered) => result,
            () = cancel.cancelled() => Err(Error::Cancelled(BY_ADMIN)),
        };
        metrics::QUERY_SECONDS.observe(started.elapsed());
        if result.is_err() {
            metrics::QUERY_ERRORS.inc();
        }
        result
    }

    async fn admit_and_run(&self, scope: &Scope, job: Job<'_>, registered: &Registered) -> Result<QueryResult> {
        let key = match scope {
            Scope::Tenant(tenant) => format!("tenant:{tenant}"),
            Scope::Admin => "admin".to_string(),
        };
        let _slot = self.admission.admit(&key).await.map_err(|refusal| {
            metrics::QUERIES_REFUSED.inc();
            Error::TooManyQueries(refusal.to_string())
        })?;
        let pool =
            Arc::new(QueryPool::new(Arc::clone(&self.runtime.memory_pool), self.config.query_memory_limit_bytes));
        registered.running(Arc::clone(&pool));
        let runtime = RuntimeEnvBuilder::from_runtime_env(&self.runtime)
            .with_memory_pool(Arc::clone(&pool) as Arc<dyn datafusion::execution::memory_pool::MemoryPool>)
            .build_arc()?;
        let ctx = self.session_in(scope, runtime).await?;
        let run = match job {
            Job::Sql { sql, params, setup } => {
                if let Some(setup) = setup {
                    setup.setup(&ctx).await?;
                }
                let limits = ResultLimits { bytes: self.config.max_result_bytes, rows: self.config.max_result_rows };
                futures::future::Either::Left(collect(ctx, sql.to_string(), params, limits))
            }
            Job::Read(read) => futures::future::Either::Right(read_events(ctx, read)),
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
        result.map_err(|e| memory_error(e, &pool))
    }
}

/// What an admitted query does.
enum Job<'a> {
    /// A statement from a client.
    Sql { sql: &'a str, params: Vec<ScalarValue>, setup: Option<&'a dyn SessionSetup> },
    /// An internal read of a table.
    Read(Read),
}

/// Columns and a time range of a table to read, optionally only rows where a column equals a
/// value.
struct Read {
    table: TableName,
    columns: Vec<String>,
    from_ms: i64,
    to_ms: i64,
    equals: Option<(String, String)>,
}

/// Reads what `read` names from the session's tables, holding the batches against the
/// query's memory budget until they are handed over.
async fn read_events(ctx: SessionContext, read: Read) -> Result<QueryResult> {
    use datafusion::logical_expr::{col, lit};
    let ts = |ms: i64| lit(ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())));
    let columns: Vec<&str> = read.columns.iter().map(String::as_str).collect();
    let mut df = ctx
        .table(read.table.as_str())
        .await?
        .filter(col(hourglass_types::schema::col::TIMESTAMP).gt_eq(ts(read.from_ms)))?
        .filter(col(hourglass_types::schema::col::TIMESTAMP).lt(ts(read.to_ms)))?;
    if let Some((column, value)) = &read.equals {
        df = df.filter(col(column.as_str()).eq(lit(value.as_str())))?;
    }
    let df = df.select_columns(&columns)?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let physical = df.create_physical_plan().await?;
    let task = ctx.task_ctx();
    let reservation =
        datafusion::execution::memory_pool::MemoryConsumer::new("report read").register(task.memory_pool());
    let mut stream = datafusion::physical_plan::execute_stream(physical, task)?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        reservation.try_grow(batch.get_array_memory_size())?;
        batches.push(batch);
    }
    Ok(QueryResult { schema, batches })
}

/// The most a result may hold.
#[derive(Debug, Clone, Copy)]
struct ResultLimits {
    bytes: usize,
    rows: usize,
}

/// Plans, runs and collects one statement in `ctx`.
async fn collect(
    ctx: SessionContext,
    sql: String,
    params: Vec<ScalarValue>,
    limits: ResultLimits,
) -> Result<QueryResult> {
    let mut plan = Querier::plan(&ctx, &sql).await?;
    if !params.is_empty() {
        plan = plan.with_param_values(params)?;
    }
    let df = ctx.execute_logical_plan(plan).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let physical = df.create_physical_plan().await?;
    let mut stream = datafusion::physical_plan::execute_stream(Arc::clone(&physical), ctx.task_ctx())?;
    let mut batches = Vec::new();
    let (mut bytes, mut rows) = (0usize, 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        bytes += batch.get_array_memory_size();
        rows += batch.num_rows();
        if rows > limits.rows {
            return Err(Error::TooManyRows { limit: limits.rows });
        }
        if bytes > limits.bytes {
            return Err(Error::ResultTooLarge { limit: limits.bytes });
        }
        batches.push(batch);
    }
    let (spills, spilled_bytes) = spilled(physical.as_ref());
    if spills > 0 {
        metrics::SPILLS.add(spills as u64);
        metrics::SPILLED_BYTES.add(spilled_bytes as u64);
    }
    Ok(QueryResult { schema, batches })
}

/// Spill files and bytes an executed plan wrote, over all its operators.
fn spilled(plan: &dyn ExecutionPlan) -> (usize, usize) {
    let own = plan.metrics().map_or((0, 0), |m| (m.spill_count().unwrap_or(0), m.spilled_bytes().unwrap_or(0)));
    plan.children().into_iter().fold(own, |(count, bytes), child| {
        let (c, b) = spilled(child.as_ref());
        (count + c, bytes + b)
    })
}

/// Tells a query that needed more than its own memory limit from one that found the shared
/// pool full.
fn memory_error(e: Error, pool: &QueryPool) -> Error {
    let Error::DataFusion(df) = &e else { return e };
    match df.find_root() {
        // Spill files of all queries share one disk budget: like the shared pool, it frees up
        // as other queries end.
        DataFusionError::ResourcesExhausted(message) if message.contains("disk space") => Error::QuerierBusy,
        DataFusionError::ResourcesExhausted(_) => match pool.last_refusal() {
            Refused::QueryLimit => Error::MemoryLimit { limit: pool.limit() },
            Refused::SharedPool | Refused::Never => Error::QuerierBusy,
        },
        _ => e,
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
