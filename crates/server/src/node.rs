//! Running a node: `hourglass serve` (every role in one process on embedded defaults) or one
//! role of a cluster (`hourglass ingester|querier|compactor|gateway`), wired the same way.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use hourglass_catalog::membership::role;
use hourglass_catalog::{Catalog, CatalogOptions, Membership, NodeInfo, SqlCatalog, TokenCache, redact_url, secret};
use hourglass_flight::{BufferService, BulkIngest, ClusterSecret, FlightSqlServer, IngestRpc, RemoteBuffers};
use hourglass_gateway::{
    ClientHeaders, ClusterRoutes, Condition, Gateway, GatewayConfig, LateRouter, Readiness, Services, startup_router,
};
use hourglass_ingest::{GeoIp, IngestLimits, Ingester, IngesterConfig};
use hourglass_jobs::{
    BackfillConfig, Backfiller, Compactor, CompactorConfig, Retention, RetentionConfig, RollupConfig, RollupJob,
};
use hourglass_pgwire::PgServer;
use hourglass_query::{AdmissionConfig, BufferSource, BufferedChunk, Querier, QueryConfig};
use hourglass_storage::{ObjectStoreConfig, ParquetOptions, S3Config};
use hourglass_types::error::display_chain;
use hourglass_types::settings::RetentionDays;
use hourglass_types::{ErrorKind, SystemClock, TableName, TenantId};
use object_store::ObjectStore;

use crate::cli::{
    CompactArgs, DemoArgs, ForwardArgs, IngestArgs, NodeArgs, ObjectStoreKind, QueryEngineArgs, StorageArgs,
};

/// Hands the in-process ingester's buffer to the querier.
/// Hands the in-process ingester's buffer to a querier (in process, or over Flight). Until
/// the ingester has replayed its WAL the buffer is unavailable, so readers fail (and retry)
/// rather than miss acknowledged events.
#[derive(Debug, Default)]
struct LocalBuffer(std::sync::OnceLock<Arc<Ingester>>);

#[async_trait]
impl BufferSource for LocalBuffer {
    async fn snapshot(
        &self,
        table: TableName,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BufferedChunk>, Box<dyn std::error::Error + Send + Sync>> {
        let ingester = self.0.get().ok_or("the ingester is still replaying its WAL")?;
        let id = ingester.ingester_id().to_string();
        let last_ms = to_ms.saturating_sub(1).max(from_ms);
        Ok(ingester
            .snapshot(table, tenant, from_ms, last_ms)?
            .into_iter()
            .map(|c| BufferedChunk { ingester_id: id.clone(), max_seq: c.max_seq, batches: c.batches })
            .collect())
    }
}

fn ingester_config(a: &IngestArgs) -> anyhow::Result<IngesterConfig> {
    TenantId::new(&a.ingester_id).map_err(|e| anyhow::anyhow!("--ingester-id: {e}"))?;
    let ms = |d: &humantime::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let bytes = |b: &bytesize::ByteSize| usize::try_from(b.as_u64()).unwrap_or(usize::MAX);
    Ok(IngesterConfig {
        ingester_id: a.ingester_id.clone(),
        shards: a.shards,
        limits: IngestLimits {
            max_body_bytes: bytes(&a.max_body_bytes),
            max_decompressed_bytes: bytes(&a.max_decompressed_bytes),
            max_events_per_request: a.max_events_per_request.max(1),
            max_string_bytes: bytes(&a.max_string_bytes),
            max_props: a.max_props,
            max_future_ms: ms(&a.max_future),
            max_past_ms: ms(&a.max_past),
        },
        persist_max_bytes: bytes(&a.persist_max_bytes),
        persist_max_age_ms: ms(&a.persist_max_age),
        max_buffer_bytes: bytes(&a.max_buffer_bytes),
        parquet: ParquetOptions::default(),
        geoip: a.geoip_database.as_deref().map(open_geoip).transpose()?,
        processor_version: a.processor_version,
    })
}

fn open_geoip(path: &Path) -> anyhow::Result<Arc<GeoIp>> {
    let geoip = GeoIp::open(path).context("--geoip-database")?;
    tracing::info!(
        path = %path.display(),
        database_type = geoip.database_type(),
        build_epoch = geoip.build_epoch(),
        "GeoIP database loaded"
    );
    Ok(Arc::new(geoip))
}

/// The object store the flags describe.
pub(crate) fn object_store_config(args: &StorageArgs, data_dir: &Path) -> anyhow::Result<ObjectStoreConfig> {
    Ok(match args.object_store {
        ObjectStoreKind::Local => ObjectStoreConfig::Local { dir: data_dir.join("objects") },
        ObjectStoreKind::Memory => ObjectStoreConfig::Memory,
        ObjectStoreKind::S3 => {
            let bucket = args.bucket.clone().filter(|b| !b.is_empty()).context("--object-store s3 needs --bucket")?;
            let mut config = S3Config::new(bucket);
            config.endpoint = args.endpoint.clone().filter(|e| !e.is_empty());
            config.region = args.region.clone().filter(|r| !r.is_empty());
            config.conditional_put = args.s3_conditional_put;
            config.retry_timeout = *args.object_store_retry_timeout;
            ObjectStoreConfig::S3(config)
        }
    })
}

/// The catalog URL the flags describe: `--catalog`, or SQLite in the data directory.
pub(crate) fn catalog_url(args: &StorageArgs, data_dir: &Path) -> String {
    match &args.catalog {
        Some(url) if !url.is_empty() => url.clone(),
        _ => format!("sqlite://{}", data_dir.join("catalog.db").display()),
    }
}

/// Opens the catalog, waiting while it is unreachable (a cluster may start before its
/// database); configuration errors end the wait at once.
pub(crate) async fn open_catalog(url: &str, max_connections: u32) -> anyhow::Result<Arc<dyn Catalog>> {
    let options = CatalogOptions { max_connections, ..CatalogOptions::default() };
    let mut delay = Duration::from_millis(250);
    loop {
        match SqlCatalog::open(url, &options).await {
            Ok(catalog) => return Ok(Arc::new(catalog)),
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                tracing::warn!(catalog = %redact_url(url), error = %display_chain(&e), "catalog unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).with_context(|| format!("opening catalog {}", redact_url(url))),
        }
    }
}

/// Waits until the object store answers a listing.
pub(crate) async fn wait_for_store(store: &dyn ObjectStore, describe: &str) {
    let mut delay = Duration::from_millis(250);
    while let Err(e) = hourglass_storage::probe(store, "wal").await {
        tracing::warn!(store = describe, error = %display_chain(&e), "object store unreachable; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Probes the catalog and the object store every two seconds and records the outcome in
/// `readiness`, so that a load balancer stops sending work a node cannot do.
pub(crate) fn spawn_dependency_monitor(
    readiness: Arc<Readiness>,
    catalog: Arc<dyn Catalog>,
    store: Option<Arc<dyn ObjectStore>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let timeout = Duration::from_secs(3);
            let catalog_ok = matches!(tokio::time::timeout(timeout, catalog.ping()).await, Ok(Ok(())));
            readiness.set(Condition::CatalogUnreachable, !catalog_ok);
            if let Some(store) = &store {
                let probe = hourglass_storage::probe(store.as_ref(), "wal");
                let store_ok = matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(())));
                readiness.set(Condition::ObjectStoreUnreachable, !store_ok);
            }
        }
    })
}

/// What one process runs: the roles and the flags that configure them.
pub struct Plan {
    /// Flags every role shares.
    pub node: NodeArgs,
    /// The ingester role, with its flags and the gRPC address of its buffer service (none in
    /// `serve`, where the querier reads the buffer in process).
    pub ingester: Option<(IngestArgs, Option<SocketAddr>)>,
    /// The querier role.
    pub querier: Option<QueryEngineArgs>,
    /// The compactor role.
    pub compactor: Option<CompactArgs>,
    /// The gateway role (forwarding to other nodes).
    pub gateway: Option<ForwardArgs>,
    /// Where to serve Arrow Flight SQL (nodes with a querier).
    pub flight_sql: Option<SocketAddr>,
    /// Where to serve the PostgreSQL wire protocol (nodes with a querier).
    pub postgres: Option<SocketAddr>,
    /// `hourglass serve`: every role in one process, the only process on its catalog.
    pub standalone: bool,
    /// `hourglass demo`: fill a demo tenant with generated traffic once ready.
    pub demo: Option<DemoArgs>,
}

impl Plan {
    /// A plan with no role yet.
    pub fn new(node: NodeArgs) -> Self {
        Self {
            node,
            ingester: None,
            querier: None,
            compactor: None,
            gateway: None,
            flight_sql: None,
            postgres: None,
            standalone: false,
            demo: None,
        }
    }

    fn roles(&self) -> Vec<String> {
        let mut roles = Vec::new();
        if self.ingester.is_some() {
            roles.push(role::INGESTER);
        }
        if self.querier.is_some() {
            roles.push(role::QUERIER);
        }
        if self.compactor.is_some() {
            roles.push(role::COMPACTOR);
        }
        if self.gateway.is_some() || self.standalone {
            roles.push(role::GATEWAY);
        }
        roles.into_iter().map(String::from).collect()
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The host other nodes reach this one at.
fn advertised_host(node: &NodeArgs, bound: SocketAddr) -> String {
    match &node.advertise_host {
        Some(host) if !host.is_empty() => host.clone(),
        _ if bound.ip().is_unspecified() => host_name(),
        _ => bound.ip().to_string(),
    }
}

fn url(host: &str, port: u16) -> String {
    if host.contains(':') { format!("http://[{host}]:{port}") } else { format!("http://{host}:{port}") }
}

/// Runs the plan's roles until SIGTERM or SIGINT, then shuts down in order: stop accepting
/// requests and finish those in flight, persist the buffer, stop serving it, leave the cluster.
pub async fn run(plan: Plan, query_runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    let node = &plan.node;
    let roles = plan.roles();
    let ingest_config = plan.ingester.as_ref().map(|(args, _)| ingester_config(args)).transpose()?;
    let store_config = object_store_config(&node.storage, &node.data_dir)?;
    let catalog_url = catalog_url(&node.storage, &node.data_dir);
    if let Some(token) = &node.admin_token
        && token.len() < 16
    {
        anyhow::bail!("--admin-token must be at least 16 characters");
    }
    let needs_secret = !plan.standalone && (plan.ingester.is_some() || plan.querier.is_some());
    let secret = match &node.cluster_secret {
        Some(s) if s.len() >= 16 => Some(ClusterSecret::new(s)),
        Some(_) => anyhow::bail!("--cluster-secret must be at least 16 characters"),
        None if needs_secret => {
            anyhow::bail!("the {} role needs --cluster-secret (HOURGLASS_CLUSTER_SECRET)", roles.join("+"))
        }
        None => None,
    };
    if !plan.standalone && matches!(store_config, ObjectStoreConfig::Local { .. }) && roles.len() < 4 {
        tracing::warn!(
            "a role started alone on a local-directory object store shares data only with processes on this machine"
        );
    }
    tracing::info!(
        roles = %roles.join(","),
        http_addr = %node.http_addr,
        data_dir = %node.data_dir.display(),
        object_store = %store_config.describe(),
        catalog = %redact_url(&catalog_url),
        ingester_id = ingest_config.as_ref().map(|c| c.ingester_id.as_str()).unwrap_or("-"),
        shards = ingest_config.as_ref().map(|c| c.shards).unwrap_or(0),
        admin_token = if node.admin_token.is_some() { "(set)" } else { "(unset)" },
        cluster_secret = if secret.is_some() { "(set)" } else { "(unset)" },
        "starting hourglass"
    );
    std::fs::create_dir_all(&node.data_dir)
        .with_context(|| format!("creating data directory {}", node.data_dir.display()))?;

    let shutdown = Shutdown::on_signals();
    // Listen first: while the WAL replays, /health answers and /ready says why it is not ready.
    let listener = tokio::net::TcpListener::bind(node.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", node.http_addr))?;
    let http_addr = listener.local_addr()?;
    let readiness = Arc::new(Readiness::new());
    let app: LateRouter = Arc::default();
    let server = tokio::spawn(serve_http(
        listener,
        startup_router(Arc::clone(&readiness), Arc::clone(&app)),
        Arc::clone(&readiness),
        shutdown.clone(),
    ));
    tracing::info!(addr = %http_addr, "http listening");
    println!("hourglass listening on http://{http_addr}");

    let grpc_listener = match plan.ingester.as_ref().and_then(|(_, grpc)| *grpc) {
        Some(addr) => {
            Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding gRPC address {addr}"))?)
        }
        None => None,
    };
    let host = advertised_host(node, http_addr);
    let flight_url = grpc_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| url(&host, a.port()));

    // A gateway only forwards: it never touches the object store, so it neither waits for it
    // nor reports it in /ready.
    let uses_store = plan.ingester.is_some() || plan.querier.is_some() || plan.compactor.is_some();
    let store = store_config.build()?;
    if uses_store {
        wait_for_store(store.as_ref(), &store_config.describe()).await;
    }
    let catalog = open_catalog(&catalog_url, node.storage.catalog_max_connections).await?;
    match &node.admin_token {
        Some(token) => catalog.add_admin_token(&secret::hash(token)).await?,
        None if plan.standalone && !catalog.has_admin_token().await? => {
            let token = secret::generate(secret::ADMIN_PREFIX);
            catalog.add_admin_token(&secret::hash(&token)).await?;
            println!("admin token (shown once, keep it): {token}");
        }
        None => {}
    }
    let monitor =
        spawn_dependency_monitor(Arc::clone(&readiness), Arc::clone(&catalog), uses_store.then(|| Arc::clone(&store)));

    let node_id = match (&ingest_config, &node.node_id) {
        (Some(c), Some(id)) if id != &c.ingester_id => {
            anyhow::bail!(
                "--node-id {id} differs from --ingester-id {}; an ingester's node id is its ingester id",
                c.ingester_id
            )
        }
        (Some(c), _) => c.ingester_id.clone(),
        (None, Some(id)) => id.clone(),
        (None, None) => {
            format!("{}-{}-{}", roles.first().map(String::as_str).unwrap_or("node"), host_name(), http_addr.port())
        }
    };
    let me = NodeInfo {
        id: node_id,
        incarnation: secret::generate("inc_"),
        roles: roles.clone(),
        http_url: url(&host, http_addr.port()),
        flight_url,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    // `serve` is alone on its catalog: a restart after a crash takes its id back at once.
    let claim_lease = if plan.standalone { Duration::ZERO } else { *node.node_lease };
    let membership = Membership::join(Arc::clone(&catalog), me, *node.node_lease, claim_lease).await?;

    // The buffer service answers from the moment the node is listed, failing reads until the
    // WAL has replayed, so that no querier waits on a silent port.
    let local_buffer = Arc::new(LocalBuffer::default());
    let tokens = Arc::new(TokenCache::new(Arc::clone(&catalog)));
    // Bulk ingest over gRPC goes wherever an ingester runs: beside the buffer service on an
    // ingester's gRPC port, beside Flight SQL on `serve`'s.
    let bulk = ingest_config.as_ref().map(|c| BulkIngest::new(c.limits.clone(), Arc::clone(&tokens)));
    let flight = match (grpc_listener, &secret) {
        (Some(listener), Some(secret)) => {
            let mut service = BufferService::new(Arc::clone(&local_buffer) as Arc<dyn BufferSource>, secret.clone());
            let mut routes = tonic::service::Routes::default();
            if let Some(bulk) = &bulk {
                service = service.with_bulk_ingest(Arc::clone(bulk));
                routes = routes.add_service(IngestRpc::new(Arc::clone(bulk)).into_server());
            }
            Some(GrpcServer::spawn(listener, routes.add_service(service.into_server())))
        }
        _ => None,
    };
    let ingester = match ingest_config {
        Some(config) => {
            let ingester =
                Ingester::start(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(SystemClock)).await?;
            let _ = local_buffer.0.set(Arc::clone(&ingester));
            if let Some(bulk) = &bulk {
                bulk.attach(Arc::clone(&ingester));
            }
            Some(ingester)
        }
        None => None,
    };

    let querier = match &plan.querier {
        Some(args) => {
            let buffers: Vec<Arc<dyn BufferSource>> = match (&ingester, &secret) {
                (Some(_), _) => vec![Arc::clone(&local_buffer) as Arc<dyn BufferSource>],
                (None, Some(secret)) => {
                    vec![Arc::new(RemoteBuffers::new(Arc::clone(&membership), secret.clone(), *args.query_timeout))]
                }
                (None, None) => Vec::new(),
            };
            let bytes = |size: bytesize::ByteSize| usize::try_from(size.as_u64()).unwrap_or(usize::MAX);
            let config = QueryConfig {
                memory_limit_bytes: bytes(args.query_memory),
                query_memory_limit_bytes: bytes(args.query_memory_per_query),
                spill_limit_bytes: args.query_spill_limit.as_u64(),
                max_result_bytes: bytes(args.query_max_result_bytes),
                max_result_rows: args.query_max_result_rows,
                timeout: *args.query_timeout,
                metadata_cache_bytes: bytes(args.query_metadata_cache),
                object_cache_bytes: bytes(args.query_object_cache),
                admission: AdmissionConfig {
                    max_running: args.max_concurrent_queries,
                    max_running_per_tenant: args.max_concurrent_queries_per_tenant,
                    max_queued_per_tenant: args.max_queued_queries_per_tenant,
                    queue_timeout: *args.query_queue_timeout,
                },
                ..QueryConfig::default()
            };
            Some(Arc::new(Querier::new(
                config,
                Arc::clone(&catalog),
                Arc::clone(&store),
                buffers,
                Some(query_runtime),
            )?))
        }
        None => None,
    };
    if let Some(querier) = &querier {
        let querier = Arc::downgrade(querier);
        membership.set_oldest_read(Arc::new(move || querier.upgrade().and_then(|q| q.oldest_query_start_ms())));
    }
    let compactor = plan.compactor.as_ref().map(|args| {
        let retention = RetentionDays { raw_events: args.retention_raw_days, events: args.retention_events_days };
        let config = CompactorConfig {
            writer_id: membership.me().id.clone(),
            min_age: *args.compact_min_age,
            max_open_files: args.compact_max_open_files,
            max_input_bytes: args.compact_max_input_bytes.as_u64(),
            memory_limit: args.compact_memory.as_u64(),
            garbage_grace: *args.garbage_grace,
            readers_lease: *node.node_lease,
            parquet: ParquetOptions::default(),
            orphan_age: *args.orphan_age,
            merge_days_after: args.compact_merge_days.then_some(*args.compact_merge_after),
            max_day_bytes: args.compact_max_day_bytes.as_u64(),
            ..CompactorConfig::default()
        };
        let compactor = Compactor::new(config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(SystemClock));
        let interval = *args.compact_interval;
        let stop = shutdown.clone();
        let rollups = RollupJob::new(
            RollupConfig {
                settle: *args.rollup_settle,
                merge_days_after: args.rollup_merge_days.then_some(*args.rollup_merge_after),
                ..RollupConfig::default()
            },
            Arc::clone(&store),
            Arc::clone(&catalog),
            Arc::new(SystemClock),
        );
        let rollup_interval = *args.rollup_interval;
        let rollup_stop = shutdown.clone();
        let backfiller = Backfiller::new(
            BackfillConfig {
                owner: membership.me().id.clone(),
                lease: *args.backfill_lease,
                retention,
                ..BackfillConfig::default()
            },
            Arc::clone(&store),
            Arc::clone(&catalog),
        );
        let backfill_interval = *args.backfill_interval;
        let backfill_stop = shutdown.clone();
        let retention_job = Retention::new(
            RetentionConfig {
                writer_id: membership.me().id.clone(),
                defaults: retention,
                ..RetentionConfig::default()
            },
            Arc::clone(&store),
            Arc::clone(&catalog),
            Arc::new(SystemClock),
        );
        let retention_interval = *args.retention_interval;
        let retention_stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::join!(
                compactor.run(interval, stop.wait()),
                rollups.run(rollup_interval, rollup_stop.wait()),
                backfiller.run(backfill_interval, backfill_stop.wait()),
                retention_job.run(retention_interval, retention_stop.wait())
            );
        })
    });
    let cluster = match &plan.gateway {
        Some(_) => Some(Arc::new(ClusterRoutes::new(Arc::clone(&membership)).map_err(|e| anyhow::anyhow!("{e:?}"))?)),
        None => None,
    };
    let limits = match (&plan.ingester, &plan.querier, &plan.gateway) {
        (_, _, Some(g)) => (g.max_concurrent_queries, g.max_concurrent_ingest, g.max_body_bytes.as_u64()),
        (Some((i, _)), q, None) => (
            q.as_ref().map(|q| q.max_concurrent_queries).unwrap_or(16),
            i.max_concurrent_ingest,
            i.max_body_bytes.as_u64(),
        ),
        (None, Some(q), None) => (q.max_concurrent_queries, 64, 16 << 20),
        (None, None, None) => (16, 64, 16 << 20),
    };
    let gateway = Gateway::new(
        GatewayConfig {
            max_concurrent_queries: limits.0,
            max_concurrent_ingest: limits.1,
            max_import_bytes: plan.querier.as_ref().map_or(1 << 30, |q| q.max_import_bytes.as_u64()),
            client_headers: ClientHeaders {
                client_ip: plan.node.client_ip_header.clone(),
                country: plan.node.country_header.clone(),
            },
        },
        Arc::clone(&readiness),
        Arc::clone(&catalog),
        Services {
            ingester: ingester.clone(),
            querier: querier.clone(),
            cluster,
            max_forwarded_body_bytes: usize::try_from(limits.2).unwrap_or(usize::MAX),
            store: uses_store.then(|| Arc::clone(&store)),
            reports: querier.as_ref().map(|q| {
                let engine = hourglass_report::Engine::new(Arc::clone(q), Arc::clone(&catalog), Arc::new(SystemClock));
                let engine = match &plan.querier {
                    Some(args) => {
                        let engine =
                            engine.with_cache_sizes(args.report_cache.as_u64(), args.report_rollup_cache.as_u64());
                        if args.report_rollups { engine } else { engine.without_rollups() }
                    }
                    None => engine,
                };
                Arc::new(engine)
            }),
        },
    );
    let postgres = match (plan.postgres, &querier) {
        (Some(addr), Some(querier)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding PostgreSQL wire address {addr}"))?;
            let bound = listener.local_addr()?;
            tracing::info!(addr = %bound, "postgres wire listening");
            println!("hourglass postgres listening on postgresql://{bound}");
            Some(PgServer::spawn(listener, Arc::clone(querier), Arc::clone(&tokens)))
        }
        _ => None,
    };
    let flight_sql = match (plan.flight_sql, &querier) {
        (Some(addr), Some(querier)) => {
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding gRPC address {addr}"))?;
            let bound = listener.local_addr()?;
            let mut service = FlightSqlServer::new(Arc::clone(querier), Arc::clone(&tokens))
                .map_err(|e| anyhow::anyhow!("starting Flight SQL: {}", e.message()))?;
            let mut routes = tonic::service::Routes::default();
            if let Some(bulk) = &bulk {
                service = service.with_bulk_ingest(Arc::clone(bulk));
                routes = routes.add_service(IngestRpc::new(Arc::clone(bulk)).into_server());
            }
            let server = GrpcServer::spawn(listener, routes.add_service(service.into_server()));
            tracing::info!(addr = %bound, "flight sql listening");
            println!("hourglass flight sql listening on grpc://{bound}");
            Some(server)
        }
        _ => None,
    };
    if app.set(gateway.router()).is_err() {
        anyhow::bail!("the API router was set twice");
    }
    readiness.set(Condition::Starting, false);
    println!("hourglass ready");
    let demo = match (&plan.demo, &ingester) {
        (Some(args), Some(ingester)) => {
            let web = url(&advertised_host(node, http_addr), http_addr.port());
            let work =
                crate::demo::run(args.clone(), Arc::clone(&catalog), Arc::clone(ingester), node.data_dir.clone(), web);
            Some(tokio::spawn(async move {
                match work.await {
                    // Shutdown interrupted the demo: what was acknowledged is stored and recorded.
                    Err(e) if crate::demo::ingester_stopped(&e) => {}
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "demo traffic failed");
                        eprintln!("demo failed: {e:#}");
                    }
                    Ok(()) => {}
                }
            }))
        }
        _ => None,
    };

    server.await.context("HTTP server task")??;
    monitor.abort();
    if let Some(task) = demo {
        task.abort();
    }
    if let Some(ingester) = &ingester {
        tracing::info!("persisting the buffer");
        match tokio::time::timeout(Duration::from_secs(120), ingester.shutdown()).await {
            Ok(Ok(())) => tracing::info!("buffer persisted"),
            Ok(Err(e)) => tracing::error!(error = %display_chain(&e), "final persist failed; events stay in the WAL"),
            Err(_) => tracing::error!("final persist timed out; events stay in the WAL"),
        }
    }
    if let Some(server) = flight_sql {
        server.stop("flight sql").await;
    }
    if let Some(server) = postgres {
        server.stop().await;
    }
    if let Some(server) = flight {
        server.stop("the buffer service").await;
    }
    if let Some(task) = compactor {
        let _ = task.await;
    }
    if let Err(e) = membership.leave().await {
        tracing::warn!(error = %display_chain(&e), "leaving the cluster failed; the node's lease will lapse");
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A gRPC server task and the switch that stops it.
struct GrpcServer {
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    stop: Arc<tokio::sync::Notify>,
}

impl GrpcServer {
    fn spawn(listener: tokio::net::TcpListener, routes: tonic::service::Routes) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let notified = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_routes(routes)
                // Without TCP_NODELAY a small answer waits for the client's delayed ACK: about
                // 40 ms per round trip, twice per Flight SQL query (GetFlightInfo, DoGet).
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async move {
                        notified.notified().await;
                    },
                )
                .await
        });
        Self { task, stop }
    }

    async fn stop(self, what: &str) {
        self.stop.notify_one();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, service = what, "gRPC service stopped with an error"),
            Err(e) => tracing::warn!(error = %e, service = what, "gRPC service task failed"),
        }
    }
}

/// Resolves once SIGTERM or SIGINT arrives; cheap to clone and wait on from many tasks.
#[derive(Clone)]
pub(crate) struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    fn on_signals() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
            // Keep the sender alive so that waiters see `true` rather than a closed channel.
            std::future::pending::<()>().await;
        });
        Self(rx)
    }

    async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Serves `router` until SIGTERM or SIGINT, then stops accepting and finishes the requests in
/// flight.
pub(crate) async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    readiness: Arc<Readiness>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    // Small responses must not wait for Nagle's algorithm: ingest latency is the client's
    // throughput when it sends one request at a time.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
    });
    // The peer address is the client's address for browser events (unless a trusted proxy
    // header says otherwise).
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.wait().await;
            readiness.set(Condition::Draining, true);
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await
        .context("serving HTTP")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
