//! Tenant settings with a short-lived cache: every ingest request and every query needs its
//! tenant's settings, and a catalog round trip each time would cost more than the work.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hourglass_types::TenantId;

use crate::{Catalog, Result, TenantConfig};

/// How long a cached answer is used before the catalog is asked again: how long a settings
/// change may take to reach every node.
pub const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// Resolves tenants to their settings, each answer kept for [`SETTINGS_TTL`].
#[derive(Debug)]
pub struct SettingsCache {
    catalog: Arc<dyn Catalog>,
    ttl: Duration,
    entries: RwLock<HashMap<TenantId, (Instant, Arc<TenantConfig>)>>,
}

impl SettingsCache {
    /// A cache over `catalog` with the default time to live.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self::with_ttl(catalog, SETTINGS_TTL)
    }

    /// A cache whose answers live for `ttl`.
    pub fn with_ttl(catalog: Arc<dyn Catalog>, ttl: Duration) -> Self {
        Self { catalog, ttl, entries: RwLock::new(HashMap::new()) }
    }

    /// The tenant's settings and site key; `None` if there is no such tenant (not cached, so
    /// a tenant created a moment ago is found). When the catalog cannot be reached, an expired
    /// answer is still used: settings change rarely, and ingest should not stop for them.
    pub async fn get(&self, tenant: &TenantId) -> Result<Option<Arc<TenantConfig>>> {
        let cached = self.entries.read().unwrap_or_else(|e| e.into_inner()).get(tenant).cloned();
        if let Some((at, config)) = &cached
            && at.elapsed() < self.ttl
        {
            return Ok(Some(Arc::clone(config)));
        }
        let found = match self.catalog.tenant_config(tenant).await {
            Ok(found) => found,
            Err(e) => match cached {
                Some((_, config)) => {
                    tracing::warn!(tenant = %tenant, error = %crate::display(&e), "using expired tenant settings");
                    return Ok(Some(config));
                }
                None => return Err(e),
            },
        };
        let Some(config) = found else {
            return Ok(None);
        };
        let config = Arc::new(config);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone(), (Instant::now(), Arc::clone(&config)));
        Ok(Some(config))
    }

    /// Forgets this cache's answer for `tenant`, so that a change made through it is seen at
    /// once by its own users (other caches catch up within [`SETTINGS_TTL`]).
    pub fn invalidate(&self, tenant: &TenantId) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(tenant);
    }
}
