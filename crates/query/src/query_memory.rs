//! One query's memory budget inside the querier's shared pool.
//!
//! Every reservation of a query goes through its [`QueryPool`], which refuses growth past the
//! per-query limit before asking the shared pool. DataFusion's operators that can spill (sorts,
//! grouped aggregations, sort-merge joins) react to a refusal by writing to disk and going on;
//! the others fail the query, and the querier then tells from [`QueryPool::last_refusal`]
//! whether the query hit its own limit (it needs too much) or the shared pool was full (other
//! queries hold the memory; retrying later may succeed).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

/// Which limit refused a query's memory last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Nothing refused it.
    Never,
    /// Its own per-query limit.
    QueryLimit,
    /// The querier's shared pool.
    SharedPool,
}

/// The memory pool of one query.
#[derive(Debug)]
pub struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
    last_refusal: AtomicU8,
}

impl QueryPool {
    /// A budget of `limit` bytes drawn from `shared`.
    pub fn new(shared: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self { shared, limit, used: AtomicUsize::new(0), last_refusal: AtomicU8::new(0) }
    }

    /// Bytes the query's operators hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The per-query limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Which limit refused growth most recently.
    pub fn last_refusal(&self) -> Refused {
        match self.last_refusal.load(Ordering::Relaxed) {
            1 => Refused::QueryLimit,
            2 => Refused::SharedPool,
            _ => Refused::Never,
        }
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query(used: {} B, limit: {} B, shared: {})", self.used(), self.limit, self.shared)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.shared.grow(reservation, additional);
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.shared.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let limit = self.limit;
        if self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|grown| *grown <= limit)
            })
            .is_err()
        {
            self.last_refusal.store(1, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} needs {additional} more bytes past the query memory limit of {limit} bytes",
                reservation.consumer().name()
            )));
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            self.last_refusal.store(2, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    use super::*;

    #[test]
    fn the_query_limit_and_the_shared_pool_refuse_separately() {
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let small: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(Arc::clone(&shared), 300));
        let big = Arc::new(QueryPool::new(Arc::clone(&shared), 10_000));
        let big_pool: Arc<dyn MemoryPool> = Arc::clone(&big) as Arc<dyn MemoryPool>;

        let small_reservation = MemoryConsumer::new("sort").register(&small);
        small_reservation.try_grow(200).expect("within the query limit");
        assert!(small_reservation.try_grow(200).is_err());
        assert_eq!((small.reserved(), shared.reserved()), (200, 200));

        let big_reservation = MemoryConsumer::new("join").register(&big_pool);
        big_reservation.try_grow(700).expect("within both");
        assert!(big_reservation.try_grow(200).is_err());
        assert_eq!(big.last_refusal(), Refused::SharedPool);
        assert_eq!(big.used(), 700);

        drop(small_reservation);
        big_reservation.try_grow(200).expect("the other query freed its share");
        drop(big_reservation);
        assert_eq!((big.used(), shared.reserved()), (0, 0));
    }
}
