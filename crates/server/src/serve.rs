//! `hourglass serve`: every role in one process on embedded defaults.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use hourglass_catalog::{Catalog, CatalogOptions, SqlCatalog, redact_url, secret};
use hourglass_gateway::{Condition, Gateway, GatewayConfig, LateRouter, Readiness, startup_router};
use hourglass_ingest::{IngestLimits, Ingester, IngesterConfig};
use hourglass_query::{BufferSource, BufferedChunk, Querier, QueryConfig};
use hourglass_storage::{ObjectStoreConfig, ParquetOptions, S3Config};
use hourglass_types::error::display_chain;
use hourglass_types::{ErrorKind, SystemClock, TableName, TenantId};
use object_store::ObjectStore;

use crate::cli::{ObjectStoreKind, ServeArgs, StorageArgs};

/// Hands the in-process ingester's buffer to the querier.
#[derive(Debug)]
struct LocalBuffer(Arc<Ingester>);

#[async_trait]
impl BufferSource for LocalBuffer {
    async fn snapshot(
        &self,
        table: TableName,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<BufferedChunk>, Box<dyn std::error::Error + Send + Sync>> {
        let id = self.0.ingester_id().to_string();
        let last_ms = to_ms.saturating_sub(1).max(from_ms);
        Ok(self
            .0
            .snapshot(table, tenant, from_ms, last_ms)?
            .into_iter()
            .map(|c| BufferedChunk { ingester_id: id.clone(), max_seq: c.max_seq, batches: c.batches })
            .collect())
    }
}

fn ingester_config(args: &ServeArgs) -> anyhow::Result<IngesterConfig> {
    let a = &args.ingest;
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
    })
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
    store: Arc<dyn ObjectStore>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let timeout = Duration::from_secs(3);
            let catalog_ok = matches!(tokio::time::timeout(timeout, catalog.ping()).await, Ok(Ok(())));
            readiness.set(Condition::CatalogUnreachable, !catalog_ok);
            let store_ok = matches!(
                tokio::time::timeout(timeout, hourglass_storage::probe(store.as_ref(), "wal")).await,
                Ok(Ok(()))
            );
            readiness.set(Condition::ObjectStoreUnreachable, !store_ok);
        }
    })
}

/// Runs the server until SIGTERM or SIGINT, then shuts down in order: stop accepting
/// requests, finish those in flight, commit and persist the buffer.
pub async fn run(args: ServeArgs, query_runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    let ingest_config = ingester_config(&args)?;
    let store_config = object_store_config(&args.storage, &args.data_dir)?;
    let catalog_url = catalog_url(&args.storage, &args.data_dir);
    tracing::info!(
        http_addr = %args.http_addr,
        data_dir = %args.data_dir.display(),
        object_store = %store_config.describe(),
        catalog = %redact_url(&catalog_url),
        ingester_id = %ingest_config.ingester_id,
        shards = ingest_config.shards,
        persist_max_bytes = ingest_config.persist_max_bytes,
        persist_max_age_ms = ingest_config.persist_max_age_ms,
        admin_token = if args.admin_token.is_some() { "(set)" } else { "(unset)" },
        "starting hourglass"
    );
    if let Some(token) = &args.admin_token
        && token.len() < 16
    {
        anyhow::bail!("--admin-token must be at least 16 characters");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;

    // Listen first: while the WAL replays, /health answers and /ready says why it is not ready.
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    let readiness = Arc::new(Readiness::new());
    let app: LateRouter = Arc::default();
    let server = tokio::spawn(serve_http(
        listener,
        startup_router(Arc::clone(&readiness), Arc::clone(&app)),
        Arc::clone(&readiness),
    ));
    tracing::info!(%addr, "http listening");
    println!("hourglass listening on http://{addr}");

    let store = store_config.build()?;
    wait_for_store(store.as_ref(), &store_config.describe()).await;
    let catalog = open_catalog(&catalog_url, args.storage.catalog_max_connections).await?;
    match &args.admin_token {
        Some(token) => catalog.add_admin_token(&secret::hash(token)).await?,
        None if !catalog.has_admin_token().await? => {
            let token = secret::generate(secret::ADMIN_PREFIX);
            catalog.add_admin_token(&secret::hash(&token)).await?;
            println!("admin token (shown once, keep it): {token}");
        }
        None => {}
    }
    let monitor = spawn_dependency_monitor(Arc::clone(&readiness), Arc::clone(&catalog), Arc::clone(&store));

    let ingester =
        Ingester::start(ingest_config, Arc::clone(&store), Arc::clone(&catalog), Arc::new(SystemClock)).await?;
    let query_config = QueryConfig {
        memory_limit_bytes: usize::try_from(args.query.query_memory.as_u64()).unwrap_or(usize::MAX),
        max_result_bytes: usize::try_from(args.query.query_max_result_bytes.as_u64()).unwrap_or(usize::MAX),
        timeout: *args.query.query_timeout,
        ..QueryConfig::default()
    };
    let buffers: Vec<Arc<dyn BufferSource>> = vec![Arc::new(LocalBuffer(Arc::clone(&ingester)))];
    let querier = Arc::new(Querier::new(query_config, Arc::clone(&catalog), store, buffers, Some(query_runtime))?);
    let gateway = Gateway::new(
        GatewayConfig {
            max_concurrent_queries: args.query.max_concurrent_queries,
            max_concurrent_ingest: args.ingest.max_concurrent_ingest,
        },
        Arc::clone(&readiness),
        catalog,
        Arc::clone(&ingester),
        querier,
    );
    if app.set(gateway.router()).is_err() {
        anyhow::bail!("the API router was set twice");
    }
    readiness.set(Condition::Starting, false);
    println!("hourglass ready");

    server.await.context("HTTP server task")??;
    monitor.abort();
    tracing::info!("persisting the buffer");
    match tokio::time::timeout(Duration::from_secs(120), ingester.shutdown()).await {
        Ok(Ok(())) => tracing::info!("stopped cleanly"),
        Ok(Err(e)) => {
            tracing::error!(error = %hourglass_types::error::display_chain(&e), "final persist failed; events stay in the WAL")
        }
        Err(_) => tracing::error!("final persist timed out; events stay in the WAL"),
    }
    Ok(())
}

/// Serves `router` until SIGTERM or SIGINT, then stops accepting and finishes the requests in
/// flight.
pub(crate) async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    readiness: Arc<Readiness>,
) -> anyhow::Result<()> {
    // Small responses must not wait for Nagle's algorithm: ingest latency is the client's
    // throughput when it sends one request at a time.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
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
