//! Cluster membership over the catalog: each process announces itself in `nodes`, renews its
//! lease, and keeps a recent copy of the node list for routing (gateways) and fan-out
//! (queriers reading ingester buffers).
//!
//! A node id is fenced by its lease: a second process claiming the id of a node whose heartbeat
//! is younger than the lease waits (a restarted ingester after `kill -9`) until the lease runs
//! out. An ingester's id names its WAL, so two live ingesters must never share one. Liveness is
//! judged by wall clocks, so nodes' clocks must agree to within a small part of the lease.
//!
//! A querier also reports its read horizon with each heartbeat: when its oldest running query
//! started, or the time of the report when none runs. Garbage collection deletes no object
//! removed from the catalog at or after a live querier's horizon, since a query that listed
//! it may still be reading it.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use crate::migrate::now_ms;
use crate::{Catalog, Error, NodeInfo, NodeRecord, Result};

/// Role names as stored in the catalog.
pub mod role {
    /// Validates, buffers and persists events; serves its buffer to queriers.
    pub const INGESTER: &str = "ingester";
    /// Answers SQL.
    pub const QUERIER: &str = "querier";
    /// Merges small files and collects garbage.
    pub const COMPACTOR: &str = "compactor";
    /// Authenticates and routes client requests.
    pub const GATEWAY: &str = "gateway";
}

/// This process's membership: its announced identity and the last node list it read.
#[derive(Debug)]
pub struct Membership {
    catalog: Arc<dyn Catalog>,
    me: NodeInfo,
    lease: Duration,
    nodes: RwLock<Vec<NodeRecord>>,
    oldest_read: OnceLock<ReadSource>,
}

/// When this process's oldest running query started (epoch ms), if any runs.
pub type OldestRead = Arc<dyn Fn() -> Option<i64> + Send + Sync>;

/// The querier's [`OldestRead`], which has no `Debug` of its own.
struct ReadSource(OldestRead);

impl std::fmt::Debug for ReadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadSource")
    }
}

impl Membership {
    /// Claims `me.id`, reads the node list, and starts renewing both every quarter `lease`.
    ///
    /// While another incarnation renewed the id within `claim_lease`, waits for it to lapse (up
    /// to `claim_lease` and a margin). A process that is alone on its catalog by construction
    /// (`hourglass serve`) passes zero and takes its id back at once after a crash.
    pub async fn join(
        catalog: Arc<dyn Catalog>,
        me: NodeInfo,
        lease: Duration,
        claim_lease: Duration,
    ) -> Result<Arc<Self>> {
        let deadline = tokio::time::Instant::now() + claim_lease + claim_lease / 2 + Duration::from_secs(1);
        loop {
            match catalog.heartbeat(&me, claim_lease).await {
                Ok(()) => break,
                Err(Error::NodeIdTaken { id, age_ms }) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(node = %id, heartbeat_age_ms = age_ms, "node id held by a live process; waiting for its lease to lapse");
                    tokio::time::sleep(claim_lease / 8 + Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let membership =
            Arc::new(Self { catalog, me, lease, nodes: RwLock::new(Vec::new()), oldest_read: OnceLock::new() });
        // No query runs before the node has joined, so its horizon starts now.
        membership.report_read_horizon().await?;
        membership.refresh().await?;
        let renewing = Arc::downgrade(&membership);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 4);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(membership) = renewing.upgrade() else { return };
                if let Err(e) = membership.renew().await {
                    tracing::warn!(error = %crate::display(&e), "renewing the node lease failed");
                }
            }
        });
        Ok(membership)
    }

    async fn renew(&self) -> Result<()> {
        self.catalog.heartbeat(&self.me, self.lease).await?;
        self.report_read_horizon().await?;
        self.refresh().await
    }

    /// Tells the renewals where this process's oldest running query started; set once, by
    /// the querier, before it answers any query.
    pub fn set_oldest_read(&self, oldest: OldestRead) {
        if self.oldest_read.set(ReadSource(oldest)).is_err() {
            tracing::warn!("the read horizon source was set twice; keeping the first");
        }
    }

    /// Reports the read horizon of a querier node; other roles read no files for clients.
    async fn report_read_horizon(&self) -> Result<()> {
        if !self.me.roles.iter().any(|r| r == role::QUERIER) {
            return Ok(());
        }
        // Read the clock before the queries: a query that registers after the look started
        // after this time, so the horizon never passes a running query's start.
        let now = now_ms();
        let oldest = self.oldest_read.get().and_then(|source| (source.0)());
        let horizon = oldest.map_or(now, |o| o.min(now));
        self.catalog.report_read_horizon(&self.me.id, &self.me.incarnation, horizon).await
    }

    /// Re-reads the node list now.
    async fn refresh(&self) -> Result<()> {
        let nodes = self.catalog.list_nodes().await?;
        if let Ok(mut held) = self.nodes.write() {
            *held = nodes;
        }
        Ok(())
    }

    /// This process's identity.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// Every node in the last list read, alive or not.
    fn all(&self) -> Vec<NodeRecord> {
        self.nodes.read().map(|n| n.clone()).unwrap_or_default()
    }

    /// Nodes running `role` whose lease has not run out, ordered by id.
    pub fn live(&self, role: &str) -> Vec<NodeRecord> {
        let oldest = now_ms() - self.lease.as_millis() as i64;
        self.all()
            .into_iter()
            .filter(|n| n.heartbeat_at_ms >= oldest && n.info.roles.iter().any(|r| r == role))
            .collect()
    }

    /// Removes this process from the node list (clean shutdown).
    pub async fn leave(&self) -> Result<()> {
        self.catalog.leave(&self.me.id, &self.me.incarnation).await
    }
}
