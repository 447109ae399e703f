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
    /// a tenant created a moment ago is found).
    pub async fn get(&self, tenant: &TenantId) -> Result<Option<Arc<TenantConfig>>> {
        if let Some((at, config)) = self.entries.read().unwrap_or_else(|e| e.into_inner()).get(tenant)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(Arc::clone(config)));
        }
        let Some(config) = self.catalog.tenant_config(tenant).await? else {
            return Ok(None);
        };
        let config = Arc::new(config);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone(), (Instant::now(), Arc::clone(&config)));
        Ok(Some(config))
    }

    /// Forgets the cached answer for `tenant`, so this node sees a change it made at once.
    pub fn invalidate(&self, tenant: &TenantId) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(tenant);
    }
}
