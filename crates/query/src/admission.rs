//! Fair admission of queries. At most `max_running` queries run at once on a querier, and at
//! most `max_running_per_tenant` of them belong to one tenant. The rest wait in one queue per
//! tenant, and a freed slot goes to the next tenant in turn, not to whoever asked first, so one
//! tenant's burst of dashboard queries cannot starve the others.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::metrics;

/// Limits of the querier's admission queue: how many queries run, per tenant and in all, and how
/// long and how many more may wait.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Queries running at once, all tenants together.
    pub max_running: usize,
    /// Queries of one tenant running at once.
    pub max_running_per_tenant: usize,
    /// Queries of one tenant waiting for a slot; more are refused at once.
    pub max_queued_per_tenant: usize,
    /// Longest a query waits for a slot before it is refused.
    pub queue_timeout: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_running: 16,
            max_running_per_tenant: 4,
            max_queued_per_tenant: 32,
            queue_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a query was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The tenant's queue is full.
    QueueFull {
        /// The tenant's running queries.
        running: usize,
        /// The tenant's waiting queries.
        queued: usize,
    },
    /// The query waited `queue_timeout` without getting a slot.
    Waited(Duration),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::QueueFull { running, queued } => write!(
                f,
                "too many concurrent queries for this tenant ({running} running, {queued} waiting); retry shortly"
            ),
            Self::Waited(waited) => write!(
                f,
                "too many concurrent queries for this tenant: waited {} s for a slot; retry shortly",
                waited.as_secs_f64()
            ),
        }
    }
}

/// The admission queue of one querier. Shared as `Arc<Admission>`.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    running_total: usize,
    running: HashMap<String, usize>,
    queues: HashMap<String, VecDeque<Waiter>>,
    /// Tenants with waiting queries, in the order they get the next free slot. A tenant is in
    /// here exactly when it has a queue.
    turn: VecDeque<String>,
    next_waiter: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    granted: oneshot::Sender<()>,
}

impl State {
    fn running_of(&self, key: &str) -> usize {
        self.running.get(key).copied().unwrap_or(0)
    }

    fn start(&mut self, key: &str) {
        metrics::QUERIES_RUNNING.add(1);
        self.running_total += 1;
        *self.running.entry(key.to_string()).or_insert(0) += 1;
    }

    fn finish(&mut self, key: &str, config: &AdmissionConfig) {
        metrics::QUERIES_RUNNING.add(-1);
        self.running_total = self.running_total.saturating_sub(1);
        if let Some(count) = self.running.get_mut(key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.running.remove(key);
            }
        }
        self.dispatch(config);
    }

    /// Hands free slots to waiting queries, one tenant at a time in turn.
    fn dispatch(&mut self, config: &AdmissionConfig) {
        // Tenants passed over in a row because they are at their own limit; once every waiting
        // tenant has been passed over, no free slot can be used.
        let mut passed_over = 0;
        while self.running_total < config.max_running && passed_over < self.turn.len() {
            let Some(key) = self.turn.pop_front() else { break };
            if self.running_of(&key) >= config.max_running_per_tenant {
                self.turn.push_back(key);
                passed_over += 1;
                continue;
            }
            let Some(queue) = self.queues.get_mut(&key) else { continue };
            let mut granted = false;
            while let Some(waiter) = queue.pop_front() {
                metrics::QUERIES_QUEUED.add(-1);
                // A waiter that gave up has dropped its receiver; try the next one.
                if waiter.granted.send(()).is_ok() {
                    granted = true;
                    break;
                }
            }
            let empty = queue.is_empty();
            if empty {
                self.queues.remove(&key);
            }
            if granted {
                self.start(&key);
                passed_over = 0;
            }
            if !empty {
                self.turn.push_back(key);
            }
        }
    }

    fn forget_waiter(&mut self, key: &str, id: u64) -> bool {
        let Some(queue) = self.queues.get_mut(key) else { return false };
        let before = queue.len();
        queue.retain(|waiter| waiter.id != id);
        let removed = queue.len() != before;
        if removed {
            metrics::QUERIES_QUEUED.add(-1);
        }
        if queue.is_empty() {
            self.queues.remove(key);
            self.turn.retain(|k| k != key);
        }
        removed
    }
}

impl Admission {
    /// An admission queue with `config`'s limits (zero limits are read as one).
    pub fn new(mut config: AdmissionConfig) -> Self {
        config.max_running = config.max_running.max(1);
        config.max_running_per_tenant = config.max_running_per_tenant.max(1);
        Self { config, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is a few integer
        // and queue operations that cannot panic halfway.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a slot for a query of `key` (a tenant, or the admin). The slot is held until
    /// the returned permit is dropped.
    pub async fn admit(self: &Arc<Self>, key: &str) -> Result<Permit, Refusal> {
        let (id, receiver) = {
            let mut state = self.lock();
            let queued = state.queues.get(key).map_or(0, VecDeque::len);
            let running = state.running_of(key);
            if queued == 0
                && running < self.config.max_running_per_tenant
                && state.running_total < self.config.max_running
            {
                state.start(key);
                return Ok(Permit { admission: Arc::clone(self), key: key.to_string() });
            }
            if queued >= self.config.max_queued_per_tenant {
                return Err(Refusal::QueueFull { running, queued });
            }
            let id = state.next_waiter;
            state.next_waiter += 1;
            let (granted, receiver) = oneshot::channel();
            metrics::QUERIES_QUEUED.add(1);
            match state.queues.get_mut(key) {
                Some(queue) => queue.push_back(Waiter { id, granted }),
                None => {
                    state.queues.insert(key.to_string(), VecDeque::from([Waiter { id, granted }]));
                    state.turn.push_back(key.to_string());
                }
            }
            (id, receiver)
        };
        let mut waiting = Waiting { admission: Arc::clone(self), key: key.to_string(), id, receiver, admitted: false };
        match tokio::time::timeout(self.config.queue_timeout, &mut waiting.receiver).await {
            Ok(Ok(())) => {
                waiting.admitted = true;
                Ok(Permit { admission: Arc::clone(self), key: key.to_string() })
            }
            // The sender is only dropped without sending when the waiter was forgotten, which
            // happens on this path alone; treat it like a timeout.
            Ok(Err(_)) | Err(_) => Err(Refusal::Waited(self.config.queue_timeout)),
        }
    }

    /// Queries running and waiting now, all tenants together.
    #[cfg(test)]
    fn load(&self) -> (usize, usize) {
        let state = self.lock();
        (state.running_total, state.queues.values().map(VecDeque::len).sum())
    }
}

/// A running query's slot; dropping it hands the slot on.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    key: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let config = &self.admission.config;
        self.admission.lock().finish(&self.key, config);
    }
}

/// A query waiting in a queue. If it stops waiting (timeout, cancellation, client gone), it
/// leaves the queue; if a slot was granted in the meantime, the slot is handed on.
struct Waiting {
    admission: Arc<Admission>,
    key: String,
    id: u64,
    receiver: oneshot::Receiver<()>,
    /// The grant was received and became a [`Permit`], which hands the slot on itself.
    admitted: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        let config = &self.admission.config;
        let mut state = self.admission.lock();
        if !state.forget_waiter(&self.key, self.id) && self.receiver.try_recv().is_ok() {
            state.finish(&self.key, config);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_running: usize, per_tenant: usize, queued: usize, timeout_ms: u64) -> Arc<Admission> {
        Arc::new(Admission::new(AdmissionConfig {
            max_running,
            max_running_per_tenant: per_tenant,
            max_queued_per_tenant: queued,
            queue_timeout: Duration::from_millis(timeout_ms),
        }))
    }

    #[tokio::test]
    async fn a_tenant_past_its_limit_waits_then_is_refused() {
        let admission = admission(8, 2, 1, 50);
        let _a = admission.admit("t").await.expect("first");
        let _b = admission.admit("t").await.expect("second");
        let waiting = {
            let admission = Arc::clone(&admission);
            tokio::spawn(async move { admission.admit("t").await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        // The queue holds one; the next is refused at once.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(admission.admit("t").await.err(), Some(Refusal::QueueFull { running: 2, queued: 1 }));
        assert_eq!(waiting.await.expect("join"), Err(Refusal::Waited(Duration::from_millis(50))));
        // Another tenant is not held up by this one.
        assert!(admission.admit("u").await.is_ok());
        assert_eq!(admission.load(), (2, 0));
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_waiter_and_is_returned_after() {
        let admission = admission(1, 1, 4, 5_000);
        let first = admission.admit("t").await.expect("first");
        let waiter = {
            let admission = Arc::clone(&admission);
            tokio::spawn(async move { admission.admit("t").await.map(|_permit| ()) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(admission.load(), (1, 1));
        drop(first);
        assert_eq!(waiter.await.expect("join"), Ok(()));
        assert_eq!(admission.load(), (0, 0));
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin_across_tenants() {
        let admission = admission(1, 1, 16, 5_000);
        let held = admission.admit("busy").await.expect("held");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // The busy tenant queues three queries before two quieter tenants queue one each.
        for key in ["busy", "busy", "busy", "a", "b"] {
            let admission = Arc::clone(&admission);
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let _permit = admission.admit(key).await.expect("admitted");
                order.lock().expect("order").push(key);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(held);
        for task in tasks {
            task.await.expect("join");
        }
        let order = order.lock().expect("order").clone();
        assert_eq!(order, vec!["busy", "a", "b", "busy", "busy"]);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_leaves_the_queue() {
        let admission = admission(1, 1, 4, 5_000);
        let first = admission.admit("t").await.expect("first");
        let gone = {
            let admission = Arc::clone(&admission);
            tokio::spawn(async move { admission.admit("t").await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        gone.abort();
        let _ = gone.await;
        assert_eq!(admission.load(), (1, 0));
        drop(first);
        assert_eq!(admission.load(), (0, 0));
        assert!(admission.admit("t").await.is_ok());
    }
}
