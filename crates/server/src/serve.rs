//! `hourglass serve`: every role in one process on embedded defaults.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use hourglass_catalog::{Catalog, SqliteCatalog, secret};
use hourglass_gateway::{Gateway, GatewayConfig};
use hourglass_ingest::{IngestLimits, Ingester, IngesterConfig};
use hourglass_query::{BufferSource, BufferedChunk, Querier, QueryConfig};
use hourglass_storage::{ObjectStoreConfig, ParquetOptions};
use hourglass_types::{SystemClock, TableName, TenantId};

use crate::cli::ServeArgs;

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

/// Runs the server until SIGTERM or SIGINT, then shuts down in order: stop accepting
/// requests, finish those in flight, commit and persist the buffer.
pub async fn run(args: ServeArgs, query_runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    let ingest_config = ingester_config(&args)?;
    tracing::info!(
        http_addr = %args.http_addr,
        data_dir = %args.data_dir.display(),
        ingester_id = %ingest_config.ingester_id,
        shards = ingest_config.shards,
        persist_max_bytes = ingest_config.persist_max_bytes,
        persist_max_age_ms = ingest_config.persist_max_age_ms,
        admin_token = if args.admin_token.is_some() { "(set)" } else { "(unset)" },
        "starting hourglass"
    );
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let store = ObjectStoreConfig::Local { dir: args.data_dir.join("objects") }.build()?;
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(&args.data_dir.join("catalog.db")).await?);

    match &args.admin_token {
        Some(token) if token.len() < 16 => {
            anyhow::bail!("--admin-token must be at least 16 characters")
        }
        Some(token) => catalog.add_admin_token(&secret::hash(token)).await?,
        None if !catalog.has_admin_token().await? => {
            let token = secret::generate(secret::ADMIN_PREFIX);
            catalog.add_admin_token(&secret::hash(&token)).await?;
            println!("admin token (shown once, keep it): {token}");
        }
        None => {}
    }

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
        catalog,
        Arc::clone(&ingester),
        querier,
    );

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    gateway.set_ready(true);
    tracing::info!(%addr, "http listening");
    println!("hourglass listening on http://{addr}");

    let shutdown_gateway = Arc::clone(&gateway);
    // Small responses must not wait for Nagle's algorithm: ingest latency is the client's
    // throughput when it sends one request at a time.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
    });
    axum::serve(listener, gateway.router())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            shutdown_gateway.set_ready(false);
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await
        .context("serving HTTP")?;

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
