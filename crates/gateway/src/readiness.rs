//! What `/ready` reports: whether this process can serve, and if not, why.
//!
//! A load balancer takes a node out of rotation while it is not ready: while it replays its WAL
//! at start, while its catalog or object store does not answer, and while it drains on shutdown.

use std::sync::atomic::{AtomicBool, Ordering};

/// One reason a process may not be ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Still starting (replaying the WAL, connecting).
    Starting,
    /// The catalog did not answer the last probe.
    CatalogUnreachable,
    /// The object store did not answer the last probe.
    ObjectStoreUnreachable,
    /// Shutting down: finishing requests in flight.
    Draining,
}

impl Condition {
    const ALL: [Condition; 4] =
        [Condition::Starting, Condition::CatalogUnreachable, Condition::ObjectStoreUnreachable, Condition::Draining];

    /// How `/ready` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Starting => "starting (replaying the WAL)",
            Self::CatalogUnreachable => "catalog unreachable",
            Self::ObjectStoreUnreachable => "object store unreachable",
            Self::Draining => "shutting down",
        }
    }
}

/// The conditions currently holding; ready when none does. Starts as [`Condition::Starting`].
#[derive(Debug)]
pub struct Readiness {
    held: [AtomicBool; 4],
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// A process that is starting.
    pub fn new() -> Self {
        let readiness = Self { held: Default::default() };
        readiness.held[Condition::Starting as usize].store(true, Ordering::SeqCst);
        readiness
    }

    /// Records whether `condition` holds.
    pub fn set(&self, condition: Condition, holds: bool) {
        let was = self.held[condition as usize].swap(holds, Ordering::SeqCst);
        if was != holds {
            if holds {
                tracing::warn!(condition = condition.describe(), "not ready");
            } else {
                tracing::info!(condition = condition.describe(), "condition cleared");
            }
        }
    }

    /// The conditions holding now, in a fixed order.
    pub fn problems(&self) -> Vec<Condition> {
        Condition::ALL.into_iter().filter(|c| self.held[*c as usize].load(Ordering::SeqCst)).collect()
    }
}
