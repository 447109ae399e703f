//! `POST /api/v1/report`, `POST /api/v1/report/realtime` and `GET /api/v1/metadata`: the
//! dashboard's read path, answered by the in-process report engine or relayed to a querier.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hourglass_report::ReportKind;
use hourglass_types::ErrorKind;

use crate::error::ApiError;
use crate::handlers::{Shared, read_body, role_missing};
use hourglass_report::metrics;

/// Largest report request body.
const MAX_REQUEST_BYTES: usize = 256 * 1024;

pub(crate) async fn report(state: Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    run(state, headers, body, ReportKind::Standard, "/api/v1/report").await
}

pub(crate) async fn realtime(state: Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    run(state, headers, body, ReportKind::Realtime, "/api/v1/report/realtime").await
}

async fn run(
    State(gw): Shared,
    headers: HeaderMap,
    body: Body,
    kind: ReportKind,
    path: &str,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let tenant = gw.auth.reader(&headers).await?;
    let raw = read_body(body, MAX_REQUEST_BYTES).await?;
    let engine = match (&gw.services.reports, &gw.services.cluster) {
        (Some(engine), _) => engine,
        (None, Some(cluster)) => return cluster.to_querier(reqwest::Method::POST, path, &headers, raw).await,
        (None, None) => return Err(role_missing("querier")),
    };
    let value: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::new(ErrorKind::InvalidArgument, format!("invalid JSON body: {e}"))
            .with_code("invalid_request")
            .with_path("")
    })?;
    let request = hourglass_report::parse(&value, kind).map_err(hourglass_report::Error::from)?;
    let result = engine.report(&tenant, &request).await;
    metrics::REPORT_SECONDS.observe(started.elapsed());
    let mut body = result?;
    body["meta"]["elapsed_ms"] = serde_json::json!(started.elapsed().as_millis() as u64);
    Ok(Json(body).into_response())
}

pub(crate) async fn metadata(State(gw): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = gw.auth.reader(&headers).await?;
    let engine = match (&gw.services.reports, &gw.services.cluster) {
        (Some(engine), _) => engine,
        (None, Some(cluster)) => {
            return cluster.to_querier(reqwest::Method::GET, "/api/v1/metadata", &headers, Default::default()).await;
        }
        (None, None) => return Err(role_missing("querier")),
    };
    Ok(Json(engine.metadata(&tenant).await?).into_response())
}
