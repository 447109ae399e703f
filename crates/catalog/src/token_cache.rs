//! Resolving bearer tokens to principals, with a cache: every interface (HTTP, Flight SQL,
//! PostgreSQL wire) authenticates through one of these.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{Catalog, Principal, Result, secret};

/// Resolves tokens (given in clear) to their principals. Known tokens are cached (credentials
/// are never revoked in this version); unknown ones always go to the catalog.
#[derive(Debug)]
pub struct TokenCache {
    catalog: Arc<dyn Catalog>,
    known: RwLock<HashMap<String, Principal>>,
}

impl TokenCache {
    /// A cache over `catalog`.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog, known: RwLock::new(HashMap::new()) }
    }

    /// The principal of `token`, or `None` if no such credential exists.
    pub async fn resolve(&self, token: &str) -> Result<Option<Principal>> {
        let hash = secret::hash(token);
        if let Some(p) = self.known.read().unwrap_or_else(|e| e.into_inner()).get(&hash) {
            return Ok(Some(p.clone()));
        }
        let Some(principal) = self.catalog.lookup_token(&hash).await? else {
            return Ok(None);
        };
        self.known.write().unwrap_or_else(|e| e.into_inner()).insert(hash, principal.clone());
        Ok(Some(principal))
    }
}
