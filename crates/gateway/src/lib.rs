//! Hourglass gateway: the HTTP API. Authenticates every request, scopes it to the token's
//! tenant, and maps every error kind to a status code in one place ([`error`]).
//!
//! Routes:
//! - `GET /health`, `GET /ready`, `GET /metrics`
//! - `POST /api/v1/admin/tenants` (admin token) creates a tenant and returns its credentials
//! - `GET`, `PATCH /api/v1/admin/tenants/{id}/settings` (admin token) reads and changes a
//!   tenant's settings
//! - `POST /api/v1/admin/flush` (admin token) persists every buffered event now
//! - `POST`, `GET /api/v1/admin/backfills`, `GET`, `DELETE /api/v1/admin/backfills/{id}`,
//!   `GET /api/v1/admin/processor-versions` (admin token): rebuilding `events` from raw data
//! - `POST /api/v1/events` (write key) ingests NDJSON or a JSON array, optionally gzip
//! - `POST /api/v1/collect` (public site key in the body) takes one event from a web page;
//!   `GET /js/hourglass.js` is the tracker that sends them
//! - `POST /mp/collect`, `POST /debug/mp/collect` (site key and write key as query parameters):
//!   GA4 Measurement Protocol
//! - `POST /api/v1/query` (read token) runs SQL; JSON, CSV or Arrow IPC by `Accept`
//! - `POST /api/v1/report`, `POST /api/v1/report/realtime`, `GET /api/v1/metadata` (read
//!   token): the dashboard's report API
//! - `GET /`, `GET /sql`, `GET /ui/{file}`: the web dashboard and SQL explorer (module `ui`),
//!   which sign in with a read token and use only the APIs above

mod auth;
mod backfills;
mod collect;
pub mod error;
mod forward;
mod handlers;
mod import;
pub mod metrics;
mod output;
pub mod readiness;
mod report;
mod ring;
mod startup;
mod tenant_settings;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use hourglass_catalog::{Catalog, SettingsCache};
use hourglass_ingest::Ingester;
use hourglass_query::Querier;
use tokio::sync::Semaphore;

pub use collect::ClientHeaders;
pub use forward::ClusterRoutes;
pub use readiness::{Condition, Readiness};
pub use startup::{LateRouter, startup_router};

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Queries the gateway role forwards at once; more are refused with 429 and `Retry-After`.
    /// (An in-process querier queues its own queries fairly per tenant.)
    pub max_concurrent_queries: usize,
    /// Ingest requests handled at once; more are refused with 429 and `Retry-After`, which
    /// bounds the memory that request bodies in flight can take.
    pub max_concurrent_ingest: usize,
    /// Largest import upload.
    pub max_import_bytes: u64,
    /// Proxy and CDN headers trusted for browser events' address and country.
    pub client_headers: ClientHeaders,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_concurrent_queries: 16,
            max_concurrent_ingest: 64,
            max_import_bytes: 1 << 30,
            client_headers: ClientHeaders::default(),
        }
    }
}

/// What serves ingest and queries behind this API: components in this process, the cluster's
/// nodes reached through [`ClusterRoutes`] (the gateway role), or a mix.
#[derive(Debug, Default)]
pub struct Services {
    /// The in-process ingester (roles `serve` and `ingester`).
    pub ingester: Option<Arc<Ingester>>,
    /// The in-process querier (roles `serve` and `querier`).
    pub querier: Option<Arc<Querier>>,
    /// Forwarding to other nodes for whatever has no in-process component (role `gateway`).
    pub cluster: Option<Arc<ClusterRoutes>>,
    /// Largest ingest body accepted when ingest is forwarded (an in-process ingester has its
    /// own limit).
    pub max_forwarded_body_bytes: usize,
    /// The object store, on nodes that use one (not the gateway role): imports write to it.
    pub store: Option<Arc<dyn object_store::ObjectStore>>,
    /// The report engine, on nodes with a querier.
    pub reports: Option<Arc<hourglass_report::Engine>>,
}

/// Everything the handlers need.
#[derive(Debug)]
pub struct Gateway {
    catalog: Arc<dyn Catalog>,
    services: Services,
    auth: auth::Authenticator,
    query_slots: Semaphore,
    ingest_slots: Semaphore,
    /// Imports converted at once: each takes a core and temporary disk for a while.
    import_slots: Semaphore,
    max_import_bytes: u64,
    readiness: Arc<Readiness>,
    settings: SettingsCache,
    site_keys: collect::SiteKeys,
    client_headers: ClientHeaders,
}

impl Gateway {
    /// A gateway over these components; `/ready` reports `readiness`.
    pub fn new(
        config: GatewayConfig,
        readiness: Arc<Readiness>,
        catalog: Arc<dyn Catalog>,
        services: Services,
    ) -> Arc<Self> {
        Arc::new(Self {
            auth: auth::Authenticator::new(Arc::clone(&catalog)),
            settings: SettingsCache::new(Arc::clone(&catalog)),
            site_keys: collect::SiteKeys::default(),
            client_headers: config.client_headers,
            catalog,
            services,
            query_slots: Semaphore::new(config.max_concurrent_queries.max(1)),
            ingest_slots: Semaphore::new(config.max_concurrent_ingest.max(1)),
            import_slots: Semaphore::new(2),
            max_import_bytes: config.max_import_bytes,
            readiness,
        })
    }

    /// The HTTP routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(ui::page))
            .route("/sql", get(ui::page))
            .route("/ui/{file}", get(ui::asset))
            .route("/health", get(handlers::health))
            .route("/ready", get(handlers::ready))
            .route("/metrics", get(handlers::metrics))
            .route("/api/v1/admin/tenants", post(handlers::create_tenant))
            .route(
                "/api/v1/admin/tenants/{id}/settings",
                get(tenant_settings::get_settings).patch(tenant_settings::patch_settings),
            )
            .route("/api/v1/admin/flush", post(handlers::flush))
            .route("/api/v1/admin/queries", get(handlers::list_queries))
            .route("/api/v1/admin/backfills", post(backfills::create).get(backfills::list))
            .route("/api/v1/admin/backfills/{id}", get(backfills::get).delete(backfills::cancel))
            .route("/api/v1/admin/processor-versions", get(backfills::versions))
            .route("/api/v1/admin/queries/{id}", axum::routing::delete(handlers::cancel_query))
            .route("/api/v1/events", post(handlers::ingest))
            .route("/api/v1/collect", post(collect::collect).options(collect::collect_preflight))
            .route("/js/hourglass.js", get(collect::tracker))
            .route("/mp/collect", post(collect::mp_collect))
            .route("/debug/mp/collect", post(collect::mp_debug))
            .route("/api/v1/query", post(handlers::query))
            .route("/api/v1/report", post(report::report))
            .route("/api/v1/report/realtime", post(report::realtime))
            .route("/api/v1/metadata", get(report::metadata))
            .route("/api/v1/tables", get(import::list_tables))
            .route("/api/v1/tables/{name}", axum::routing::delete(import::drop_table))
            .route("/api/v1/tables/{name}/import", post(import::import_table))
            .fallback(handlers::not_found)
            .with_state(Arc::clone(self))
    }
}
