//! The queries a querier is running or has queued, for `system.queries` and for the admin's
//! cancel.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::Notify;

use crate::query_memory::QueryPool;

/// The front end a query came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    /// `POST /api/v1/query`.
    #[default]
    Http,
    /// Arrow Flight SQL.
    FlightSql,
    /// The PostgreSQL wire protocol.
    Postgres,
    /// The report API (`POST /api/v1/report`) reading events.
    Report,
}

impl Interface {
    /// The name shown in `system.queries`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::FlightSql => "flight_sql",
            Self::Postgres => "postgres",
            Self::Report => "report",
        }
    }
}

/// One query as `system.queries` shows it.
#[derive(Debug, Clone)]
pub struct QueryInfo {
    /// The id the admin cancels it by.
    pub id: u64,
    /// The tenant, or `None` for the admin's own queries.
    pub tenant: Option<String>,
    /// Where it came from.
    pub interface: Interface,
    /// Its SQL text.
    pub sql: String,
    /// When it arrived.
    pub started_at: SystemTime,
    /// `queued` until it gets a slot, then `running`.
    pub state: &'static str,
    /// Memory its operators hold now.
    pub memory_bytes: usize,
}

/// A cancellation that can be signalled once and awaited by the query it stops.
#[derive(Debug, Default)]
pub struct CancelSignal {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelSignal {
    /// Stops the query.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once [`CancelSignal::cancel`] has been called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.cancelled.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
struct Entry {
    tenant: Option<String>,
    interface: Interface,
    sql: String,
    started_at: SystemTime,
    pool: Option<Arc<QueryPool>>,
    cancel: Arc<CancelSignal>,
}

/// The registry of a querier's queries.
#[derive(Debug, Default)]
pub struct RunningQueries {
    next_id: AtomicU64,
    entries: Mutex<BTreeMap<u64, Entry>>,
}

impl RunningQueries {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        // Entries are inserted and removed whole, so a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a query, queued; it leaves the registry when the returned guard drops.
    pub fn register(self: &Arc<Self>, tenant: Option<String>, interface: Interface, sql: &str) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let cancel = Arc::new(CancelSignal::default());
        let entry = Entry {
            tenant,
            interface,
            sql: sql.to_string(),
            started_at: SystemTime::now(),
            pool: None,
            cancel: Arc::clone(&cancel),
        };
        self.lock().insert(id, entry);
        Registered { registry: Arc::clone(self), id, cancel }
    }

    /// Every registered query, oldest first.
    pub fn list(&self) -> Vec<QueryInfo> {
        self.lock()
            .iter()
            .map(|(id, entry)| QueryInfo {
                id: *id,
                tenant: entry.tenant.clone(),
                interface: entry.interface,
                sql: entry.sql.clone(),
                started_at: entry.started_at,
                state: if entry.pool.is_some() { "running" } else { "queued" },
                memory_bytes: entry.pool.as_ref().map_or(0, |pool| pool.used()),
            })
            .collect()
    }

    /// When the oldest registered query arrived, in epoch milliseconds; `None` when none is
    /// registered. Every file a registered query reads was listed after it arrived.
    pub fn oldest_start_ms(&self) -> Option<i64> {
        let oldest = self.lock().values().map(|entry| entry.started_at).min()?;
        let since_epoch = oldest.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Some(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// Cancels query `id`; false when there is no such query (it may just have finished).
    pub fn cancel(&self, id: u64) -> bool {
        match self.lock().get(&id) {
            Some(entry) => {
                entry.cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// A query's place in the registry.
#[derive(Debug)]
pub struct Registered {
    registry: Arc<RunningQueries>,
    id: u64,
    cancel: Arc<CancelSignal>,
}

impl Registered {
    /// The query's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its cancellation.
    pub fn cancel_signal(&self) -> Arc<CancelSignal> {
        Arc::clone(&self.cancel)
    }

    /// Marks the query running with its memory pool.
    pub fn running(&self, pool: Arc<QueryPool>) {
        if let Some(entry) = self.registry.lock().get_mut(&self.id) {
            entry.pool = Some(pool);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_reaches_the_query_and_the_registry_forgets_finished_ones() {
        let registry = Arc::new(RunningQueries::default());
        let query = registry.register(Some("t".into()), Interface::Http, "SELECT 1");
        let signal = query.cancel_signal();
        let waiter = tokio::spawn(async move { signal.cancelled().await });
        let listed = registry.list();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].state), (query.id(), "queued"));
        assert!(registry.cancel(query.id()));
        waiter.await.expect("the cancel is seen");
        let id = query.id();
        drop(query);
        assert!(registry.list().is_empty());
        assert!(!registry.cancel(id));
    }
}
