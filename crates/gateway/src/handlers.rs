//! HTTP handlers.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hourglass_catalog::secret;
use hourglass_types::{ErrorKind, TenantId};
use serde::Deserialize;

use crate::Gateway;
use crate::error::ApiError;
use crate::output::Format;

pub(crate) type Shared = State<Arc<Gateway>>;

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub(crate) async fn ready(State(gw): Shared) -> Response {
    crate::startup::readiness_response(&gw.readiness)
}

pub(crate) async fn metrics() -> Response {
    let mut out = String::new();
    hourglass_ingest::metrics::render(&mut out);
    hourglass_query::metrics::render(&mut out);
    hourglass_report::metrics::render(&mut out);
    hourglass_storage::counted::render(&mut out);
    crate::metrics::render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such endpoint; see docs/api.md")
}

/// Bytes of an oversized body read and thrown away before answering 413. Answering without
/// reading makes the server close a connection the client is still writing to, and the client
/// then often loses the 413 itself to the TCP reset.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads a request body up to `limit` bytes, answering 413 past it.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("reading the request body: {e}")))?;
        seen += chunk.len();
        if seen <= limit {
            buffer.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        ));
    }
    Ok(Bytes::from(buffer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    id: String,
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("invalid JSON body: {e}")))
}

pub(crate) async fn create_tenant(State(gw): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let request: CreateTenant = parse_json(&read_body(body, 64 * 1024).await?)?;
    let tenant =
        TenantId::new(&request.id).map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("id: {e}")))?;
    let write_key = secret::generate(secret::WRITE_PREFIX);
    let read_token = secret::generate(secret::READ_PREFIX);
    gw.catalog.create_tenant(&tenant, &secret::hash(&write_key), &secret::hash(&read_token)).await?;
    tracing::info!(tenant = %tenant, "tenant created");
    let site_key = gw.catalog.tenant_config(&tenant).await?.map(|c| c.site_key);
    let body = serde_json::json!({
        "id": tenant.as_str(),
        "write_key": write_key,
        "read_token": read_token,
        "site_key": site_key,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/admin/queries`: the queries this node's querier is running or queueing.
pub(crate) async fn list_queries(State(gw): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let querier = gw.services.querier.as_ref().ok_or_else(|| role_missing("querier"))?;
    let queries: Vec<serde_json::Value> = querier
        .running_queries()
        .into_iter()
        .map(|q| {
            let started_at = chrono::DateTime::<chrono::Utc>::from(q.started_at);
            serde_json::json!({
                "id": q.id,
                "tenant": q.tenant,
                "interface": q.interface.as_str(),
                "state": q.state,
                "started_at": started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "memory_bytes": q.memory_bytes,
                "sql": q.sql,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"queries": queries})).into_response())
}

/// `DELETE /api/v1/admin/queries/{id}`: cancels a running or queued query.
pub(crate) async fn cancel_query(
    State(gw): Shared,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let querier = gw.services.querier.as_ref().ok_or_else(|| role_missing("querier"))?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::new(ErrorKind::InvalidArgument, format!("query id must be a number, not {id:?}")))?;
    if !querier.cancel(id) {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no query {id} is running on this node")));
    }
    tracing::info!(query = id, "query cancelled by the admin");
    Ok(Json(serde_json::json!({"id": id, "cancelled": true})).into_response())
}

pub(crate) fn role_missing(role: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("this node does not run the {role} role"))
}

pub(crate) async fn flush(State(gw): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    match (&gw.services.ingester, &gw.services.cluster) {
        (Some(ingester), _) => ingester.flush().await?,
        (None, Some(cluster)) => cluster.flush(&headers).await?,
        (None, None) => return Err(role_missing("ingester")),
    }
    Ok(Json(serde_json::json!({"persisted": true})).into_response())
}

pub(crate) async fn ingest(State(gw): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let tenant = gw.auth.writer(&headers).await?;
    let gzip =
        match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase()) {
            None => false,
            Some(e) if e == "gzip" || e == "x-gzip" => true,
            Some(e) if e == "identity" => false,
            Some(e) => {
                return Err(ApiError::new(
                    ErrorKind::InvalidArgument,
                    format!("Content-Encoding {e:?} is not supported; use gzip or none"),
                ));
            }
        };
    let _slot = gw.ingest_slots.try_acquire().map_err(|_| {
        ApiError::new(ErrorKind::ResourceExhausted, "too many ingest requests in flight; retry shortly")
    })?;
    let ingester = match (&gw.services.ingester, &gw.services.cluster) {
        (Some(ingester), _) => ingester,
        (None, Some(cluster)) => {
            let body = read_body(body, gw.services.max_forwarded_body_bytes).await?;
            return cluster.ingest(&tenant, &headers, body).await;
        }
        (None, None) => return Err(role_missing("ingester")),
    };
    let body = read_body(body, ingester.limits().max_body_bytes).await?;
    let outcome = ingester.ingest(&tenant, body, gzip).await?;
    let status =
        if outcome.accepted == 0 && !outcome.errors.is_empty() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = serde_json::json!({
        "accepted": outcome.accepted,
        "rejected": outcome.errors.len(),
        "duplicates": outcome.duplicates,
        "errors": outcome.errors,
    });
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
}

pub(crate) async fn query(State(gw): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let scope = gw.auth.query_scope(&headers).await?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            "Accept must be application/json, text/csv or application/vnd.apache.arrow.stream",
        )
    })?;
    let raw = read_body(body, 1024 * 1024).await?;
    let request: QueryRequest = parse_json(&raw)?;
    let querier = match (&gw.services.querier, &gw.services.cluster) {
        (Some(querier), _) => querier,
        (None, Some(cluster)) => {
            // The querier queues fairly per tenant; this only bounds what the gateway relays.
            let _slot = gw.query_slots.try_acquire().map_err(|_| {
                ApiError::new(
                    ErrorKind::ResourceExhausted,
                    "too many queries in flight through this gateway; retry shortly",
                )
                .with_code("too_many_queries")
            })?;
            return cluster.query(&headers, raw).await;
        }
        (None, None) => return Err(role_missing("querier")),
    };
    let result = querier.query_as(&scope, &request.sql).await?;
    let encoded = format
        .encode(&result.schema, &result.batches)
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("encoding the result: {e}")))?;
    let limit = querier.max_result_bytes();
    if encoded.len() > limit {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("encoded query result exceeds {limit} bytes; add a LIMIT or aggregate"),
        )
        .with_code("result_too_large"));
    }
    Ok(([(header::CONTENT_TYPE, format.content_type())], encoded).into_response())
}
