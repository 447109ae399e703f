//! Bearer-token authentication with a cache of known credentials.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use hourglass_catalog::{Catalog, Principal, TokenCache};
use hourglass_query::Scope;
use hourglass_types::{ErrorKind, TenantId};

use crate::error::ApiError;

/// Resolves the bearer token of an HTTP request to its principal.
#[derive(Debug)]
pub(crate) struct Authenticator {
    tokens: TokenCache,
}

impl Authenticator {
    pub(crate) fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { tokens: TokenCache::new(catalog) }
    }

    async fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "missing Authorization: Bearer <token> header"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(ErrorKind::Unauthenticated, "Authorization header must be 'Bearer <token>'")
            })?;
        self.tokens.resolve(token).await?.ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "unknown token"))
    }

    /// The principal of a token given outside the `Authorization` header (a query parameter).
    pub(crate) async fn resolve(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        Ok(self.tokens.resolve(token).await?)
    }

    pub(crate) async fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.principal(headers).await? {
            Principal::Admin => Ok(()),
            _ => Err(ApiError::new(ErrorKind::PermissionDenied, "this endpoint needs the admin token")),
        }
    }

    pub(crate) async fn writer(&self, headers: &HeaderMap) -> Result<TenantId, ApiError> {
        match self.principal(headers).await? {
            Principal::Writer(t) => Ok(t),
            _ => Err(ApiError::new(ErrorKind::PermissionDenied, "ingest and imports need a tenant write key")),
        }
    }

    /// The tenant of a read token (reports are read with read tokens only).
    pub(crate) async fn reader(&self, headers: &HeaderMap) -> Result<TenantId, ApiError> {
        match self.principal(headers).await? {
            Principal::Reader(t) => Ok(t),
            Principal::Writer(_) => {
                Err(ApiError::new(ErrorKind::PermissionDenied, "reports need a tenant read token, not a write key"))
            }
            Principal::Admin => Err(ApiError::new(
                ErrorKind::PermissionDenied,
                "reports belong to one tenant: use that tenant's read token",
            )),
        }
    }

    /// The tenant of a read token or a write key.
    pub(crate) async fn tenant(&self, headers: &HeaderMap) -> Result<TenantId, ApiError> {
        match self.principal(headers).await? {
            Principal::Reader(t) | Principal::Writer(t) => Ok(t),
            Principal::Admin => Err(ApiError::new(
                ErrorKind::PermissionDenied,
                "this endpoint needs a tenant's read token or write key",
            )),
        }
    }

    /// A tenant's read token (its rows) or the admin token (the `system.*` tables).
    pub(crate) async fn query_scope(&self, headers: &HeaderMap) -> Result<Scope, ApiError> {
        match self.principal(headers).await? {
            Principal::Reader(t) => Ok(Scope::Tenant(t)),
            Principal::Admin => Ok(Scope::Admin),
            Principal::Writer(_) => {
                Err(ApiError::new(ErrorKind::PermissionDenied, "queries need a tenant read token, not a write key"))
            }
        }
    }
}
