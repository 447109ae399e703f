//! The gateway role: requests forwarded to the cluster's ingesters and queriers.
//!
//! Ingest goes to the tenant's ingester on the consistent-hash ring; when that ingester
//! refuses the connection or answers 503 (not started, draining, store unreachable), the next
//! one on the ring is tried. Queries go round-robin to live queriers, skipping those that
//! refuse connections. Forwarded requests keep the client's `Authorization` header: every node
//! authenticates on its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use hourglass_catalog::Membership;
use hourglass_catalog::membership::role;
use hourglass_types::{ErrorKind, TenantId};

use crate::error::ApiError;
use crate::metrics;
use crate::ring::Ring;

/// Routes client requests to the nodes that serve them.
#[derive(Debug)]
pub struct ClusterRoutes {
    membership: Arc<Membership>,
    http: reqwest::Client,
    next_querier: AtomicUsize,
    ring: Mutex<Arc<Ring>>,
}

/// The outcome of one forwarding attempt.
enum Attempt {
    /// The node answered; relay its answer.
    Answered(reqwest::Response),
    /// The node did not take the request; another may.
    Refused(String),
    /// The request failed after it was sent: the node may have acted on it, so it must not be
    /// retried elsewhere.
    Failed(String),
}

impl ClusterRoutes {
    /// Routes over the nodes `membership` lists as alive.
    pub fn new(membership: Arc<Membership>) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ApiError::new(ErrorKind::Internal, format!("building the HTTP client: {e}")))?;
        Ok(Self {
            membership,
            http,
            next_querier: AtomicUsize::new(0),
            ring: Mutex::new(Arc::new(Ring::new(Vec::new()))),
        })
    }

    /// The ring over the live ingesters, rebuilt only when they change.
    fn ring(&self, ids: Vec<String>) -> Arc<Ring> {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.nodes() != ids.as_slice() {
            *ring = Arc::new(Ring::new(ids));
        }
        Arc::clone(&ring)
    }

    fn live(&self, role: &str) -> Vec<(String, String)> {
        self.membership.live(role).into_iter().map(|n| (n.info.id, n.info.http_url)).collect()
    }

    async fn attempt(
        &self,
        method: reqwest::Method,
        url: String,
        headers: &HeaderMap,
        forwarded: &[header::HeaderName],
        body: Bytes,
        retry_on_503: bool,
    ) -> Attempt {
        let mut request = self.http.request(method, &url).body(body);
        for name in forwarded {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        match request.send().await {
            Ok(response) if retry_on_503 && response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                Attempt::Refused(format!("{url} answered 503"))
            }
            Ok(response) => Attempt::Answered(response),
            Err(e) if e.is_connect() => Attempt::Refused(format!("{url}: {e}")),
            Err(e) => Attempt::Failed(format!("{url}: {e}")),
        }
    }

    /// Forwards an ingest request for `tenant` to its ingester, falling back along the ring.
    pub(crate) async fn ingest(
        &self,
        tenant: &TenantId,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let live = self.live(role::INGESTER);
        let ring = self.ring(live.iter().map(|(id, _)| id.clone()).collect());
        let forwarded = [header::AUTHORIZATION, header::CONTENT_TYPE, header::CONTENT_ENCODING];
        let mut refusals = Vec::new();
        for id in ring.route(tenant.as_str()) {
            let Some((_, base)) = live.iter().find(|(i, _)| i == id) else { continue };
            let url = format!("{base}/api/v1/events");
            match self.attempt(reqwest::Method::POST, url, headers, &forwarded, body.clone(), true).await {
                Attempt::Answered(response) => return relay(response).await,
                Attempt::Failed(why) => return Err(ApiError::new(ErrorKind::Unavailable, why)),
                Attempt::Refused(why) => {
                    metrics::FORWARD_RETRIES.inc();
                    tracing::warn!(ingester = id, reason = %why, "ingester refused; trying the next one");
                    refusals.push(why);
                }
            }
        }
        Err(no_node("ingester", &refusals))
    }

    /// Forwards a query to a live querier, round-robin.
    pub(crate) async fn query(&self, headers: &HeaderMap, body: Bytes) -> Result<Response, ApiError> {
        self.to_querier(reqwest::Method::POST, "/api/v1/query", headers, body).await
    }

    /// Forwards a read-only request (SQL, reports, metadata) to a live querier, round-robin,
    /// trying the next one when a querier refuses it.
    pub(crate) async fn to_querier(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let live = self.live(role::QUERIER);
        let start = self.next_querier.fetch_add(1, Ordering::Relaxed);
        let forwarded = [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT];
        let mut refusals = Vec::new();
        for k in 0..live.len() {
            let (id, base) = &live[(start + k) % live.len()];
            // Queries are read-only, so a querier's 503 can safely be retried on another.
            let url = format!("{base}{path}");
            match self.attempt(method.clone(), url, headers, &forwarded, body.clone(), true).await {
                Attempt::Answered(response) => return relay(response).await,
                Attempt::Failed(why) => return Err(ApiError::new(ErrorKind::Unavailable, why)),
                Attempt::Refused(why) => {
                    metrics::FORWARD_RETRIES.inc();
                    tracing::warn!(querier = %id, reason = %why, "querier refused; trying the next one");
                    refusals.push(why);
                }
            }
        }
        Err(no_node("querier", &refusals))
    }

    /// Asks every live ingester to persist its buffer now.
    pub(crate) async fn flush(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let forwarded = [header::AUTHORIZATION];
        let live = self.live(role::INGESTER);
        if live.is_empty() {
            return Err(no_node("ingester", &[]));
        }
        for (id, base) in live {
            let url = format!("{base}/api/v1/admin/flush");
            match self.attempt(reqwest::Method::POST, url, headers, &forwarded, Bytes::new(), false).await {
                Attempt::Answered(response) if response.status().is_success() => {}
                Attempt::Answered(response) => {
                    return Err(ApiError::new(
                        ErrorKind::Unavailable,
                        format!("ingester {id} answered {} to flush", response.status()),
                    ));
                }
                Attempt::Refused(why) | Attempt::Failed(why) => {
                    return Err(ApiError::new(ErrorKind::Unavailable, format!("ingester {id} unreachable: {why}")));
                }
            }
        }
        Ok(())
    }
}

fn no_node(role: &str, refusals: &[String]) -> ApiError {
    let detail = if refusals.is_empty() { "none is alive".to_string() } else { refusals.join("; ") };
    ApiError::new(ErrorKind::Unavailable, format!("no {role} took the request: {detail}"))
}

/// Turns a node's answer into the gateway's, streaming the body through.
async fn relay(response: reqwest::Response) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = Response::builder().status(status);
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) =
            response.headers().get(name.as_str()).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Body::from_stream(response.bytes_stream()))
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("relaying a node's answer: {e}")))
}
