//! Backfill administration (admin token):
//!
//! - `POST /api/v1/admin/backfills` queues a rebuild of `events` for a range of days or hours,
//!   for one tenant or all, with a processor version; a compactor runs it.
//! - `GET /api/v1/admin/backfills` lists them, newest first; `GET .../{id}` shows one with its
//!   progress; `DELETE .../{id}` cancels one.
//! - `GET /api/v1/admin/processor-versions` shows which processor versions derived which
//!   ranges of `events`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use hourglass_catalog::{Backfill, NewBackfill, VersionRange, version_ranges};
use hourglass_types::{ErrorKind, TableName, TenantId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::handlers::{Shared, read_body};

const HOUR_MS: i64 = 3_600_000;

/// The body of `POST /api/v1/admin/backfills`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBackfill {
    #[serde(default = "events_table")]
    table: String,
    #[serde(default)]
    tenant: Option<String>,
    from: String,
    to: String,
    #[serde(default)]
    processor_version: Option<i32>,
}

fn events_table() -> String {
    TableName::Events.as_str().to_string()
}

fn invalid(path: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, message).with_path(path)
}

/// Where a bound starts, in hours since the epoch: a date (`2026-11-01`, its UTC day) or an
/// RFC 3339 time (its hour). `end` gives the first hour after the bound instead: the day
/// after a date, the hour after a time's hour.
fn hour_bound(text: &str, end: bool, path: &str) -> Result<i64, ApiError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default();
        return Ok(start.div_euclid(HOUR_MS) + if end { 24 } else { 0 });
    }
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|_| invalid(path, format!("{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time")))?;
    Ok(time.timestamp_millis().div_euclid(HOUR_MS) + i64::from(end))
}

fn hour_text(hour: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(hour * HOUR_MS).map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn time_text(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// A backfill as the API shows it.
pub(crate) fn backfill_json(job: &Backfill) -> serde_json::Value {
    let spec = &job.spec;
    let total = (spec.to_hour - spec.from_hour).max(0);
    let done = (job.progress.next_hour - spec.from_hour).clamp(0, total);
    serde_json::json!({
        "id": job.id,
        "table": spec.table.as_str(),
        "tenant": spec.tenant.as_ref().map(TenantId::as_str),
        "from": hour_text(spec.from_hour),
        "to": hour_text(spec.to_hour),
        "processor_version": spec.processor_version,
        "state": job.state.as_str(),
        "progress": {
            "hours_total": total,
            "hours_done": done,
            "next_hour": hour_text(job.progress.next_hour),
            "partitions_done": job.progress.partitions_done,
            "partitions_skipped": job.progress.partitions_skipped,
            "rows_read": job.progress.rows_read,
            "rows_written": job.progress.rows_written,
        },
        "owner": job.owner,
        "error": job.error,
        "created_at": time_text(job.created_at_ms),
        "started_at": job.started_at_ms.map(time_text),
        "updated_at": time_text(job.updated_at_ms),
        "finished_at": job.finished_at_ms.map(time_text),
    })
}

fn range_json(range: &VersionRange) -> serde_json::Value {
    serde_json::json!({
        "table": "events",
        "processor_version": range.processor_version,
        "from": hour_text(range.from_hour),
        "to": hour_text(range.to_hour),
        "hours": range.hours,
        "files": range.files,
        "rows": range.rows,
    })
}

/// `POST /api/v1/admin/backfills`.
pub(crate) async fn create(State(gw): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let request: CreateBackfill = serde_json::from_slice(&read_body(body, 64 * 1024).await?)
        .map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("invalid backfill request: {e}")))?;
    let table = match TableName::parse(&request.table) {
        Some(TableName::Events) => TableName::Events,
        _ => {
            return Err(invalid(
                "table",
                format!(
                    "{:?} cannot be backfilled: only events is derived from raw_events (rollups and sessions follow it)",
                    request.table
                ),
            ));
        }
    };
    let tenant = match &request.tenant {
        Some(id) => {
            let tenant = TenantId::new(id).map_err(|e| invalid("tenant", format!("tenant id: {e}")))?;
            if gw.catalog.tenant_config(&tenant).await?.is_none() {
                return Err(ApiError::new(ErrorKind::NotFound, format!("no tenant {tenant}")).with_path("tenant"));
            }
            Some(tenant)
        }
        None => None,
    };
    let from_hour = hour_bound(&request.from, false, "from")?;
    let to_hour = hour_bound(&request.to, true, "to")?;
    if to_hour <= from_hour {
        return Err(invalid(
            "to",
            format!("the range {} to {} is empty: to comes before from", request.from, request.to),
        ));
    }
    let version = request.processor_version.unwrap_or(hourglass_processor::PROCESSOR_VERSION);
    hourglass_processor::supported(version).map_err(|e| invalid("processor_version", e.to_string()))?;
    let spec = NewBackfill { table, tenant, from_hour, to_hour, processor_version: version };
    let job = gw.catalog.create_backfill(&spec).await?;
    tracing::info!(job = job.id, ?spec, "backfill queued");
    Ok((StatusCode::CREATED, Json(backfill_json(&job))).into_response())
}

/// `GET /api/v1/admin/backfills`.
pub(crate) async fn list(State(gw): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let jobs = gw.catalog.list_backfills(100).await?;
    Ok(Json(serde_json::json!({"backfills": jobs.iter().map(backfill_json).collect::<Vec<_>>()})).into_response())
}

fn no_backfill(id: i64) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no backfill {id}"))
}

/// `GET /api/v1/admin/backfills/{id}`.
pub(crate) async fn get(State(gw): Shared, headers: HeaderMap, Path(id): Path<i64>) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let job = gw.catalog.get_backfill(id).await?.ok_or_else(|| no_backfill(id))?;
    Ok(Json(backfill_json(&job)).into_response())
}

/// `DELETE /api/v1/admin/backfills/{id}`: partitions already rebuilt stay rebuilt.
pub(crate) async fn cancel(State(gw): Shared, headers: HeaderMap, Path(id): Path<i64>) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let job = gw.catalog.cancel_backfill(id).await?.ok_or_else(|| no_backfill(id))?;
    tracing::info!(job = id, state = job.state.as_str(), "backfill cancel requested");
    Ok(Json(backfill_json(&job)).into_response())
}

/// `GET /api/v1/admin/processor-versions`.
pub(crate) async fn versions(State(gw): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let ranges = version_ranges(&gw.catalog.version_hours().await?);
    Ok(Json(serde_json::json!({
        "newest": hourglass_processor::PROCESSOR_VERSION,
        "supported": hourglass_processor::SUPPORTED_VERSIONS.collect::<Vec<_>>(),
        "ranges": ranges.iter().map(range_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_cover_whole_days_and_times_their_hours() {
        let day = hour_bound("2026-11-01", false, "from").expect("date");
        assert_eq!(hour_text(day), "2026-11-01T00:00:00+00:00");
        assert_eq!(hour_bound("2026-11-30", true, "to").expect("date") - day, 30 * 24);
        let hour = hour_bound("2026-11-01T05:30:00Z", false, "from").expect("time");
        assert_eq!(hour - day, 5);
        assert_eq!(hour_bound("2026-11-01T05:30:00+01:00", true, "to").expect("time") - day, 5);
        assert!(hour_bound("yesterday", false, "from").is_err());
    }
}
