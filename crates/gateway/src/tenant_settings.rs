//! `GET` and `PATCH /api/v1/admin/tenants/{id}/settings`: a tenant's session timeout,
//! identified mode, allowed hostnames, key events and reporting currency, with its public
//! site key.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hourglass_catalog::TenantConfig;
use hourglass_types::settings::SettingsPatch;
use hourglass_types::{ErrorKind, TenantId};

use crate::error::ApiError;
use crate::handlers::{Shared, read_body};

/// The JSON answer for a tenant's settings: every setting with its current value.
pub(crate) fn config_json(tenant: &TenantId, config: &TenantConfig) -> serde_json::Value {
    serde_json::json!({
        "tenant": tenant.as_str(),
        "site_key": config.site_key,
        "settings": config.settings,
    })
}

fn tenant_of(id: &str) -> Result<TenantId, ApiError> {
    TenantId::new(id).map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("tenant id: {e}")))
}

fn no_tenant(tenant: &TenantId) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no tenant {tenant}"))
}

/// `GET /api/v1/admin/tenants/{id}/settings`.
pub(crate) async fn get_settings(
    State(gw): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let tenant = tenant_of(&id)?;
    let config = gw.catalog.tenant_config(&tenant).await?.ok_or_else(|| no_tenant(&tenant))?;
    Ok(Json(config_json(&tenant, &config)).into_response())
}

/// `PATCH /api/v1/admin/tenants/{id}/settings`: the fields given replace their values.
pub(crate) async fn patch_settings(
    State(gw): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    gw.auth.admin(&headers).await?;
    let tenant = tenant_of(&id)?;
    let patch: SettingsPatch = serde_json::from_slice(&read_body(body, 64 * 1024).await?)
        .map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("invalid settings: {e}")))?;
    let config = gw.catalog.update_tenant_settings(&tenant, &patch).await?.ok_or_else(|| no_tenant(&tenant))?;
    gw.settings.invalidate(&tenant);
    tracing::info!(tenant = %tenant, settings = ?config.settings, "tenant settings changed");
    Ok(Json(config_json(&tenant, &config)).into_response())
}
