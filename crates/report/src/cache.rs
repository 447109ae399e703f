//! The report caches, on moka.
//!
//! - Responses, keyed by the tenant, the normalized request (with its ranges resolved to
//!   instants, the tenant's settings and the rollup definitions). An entry carries the catalog
//!   state it was computed from: the rollup hours and their files, the newest events file
//!   when its events were read together with the windows they were read from, and the
//!   tenant's buffered rows. A lookup checks that state again and uses the entry only if none
//!   of it moved, so a cached answer is never stale.
//! - Rollup partials, keyed by the rollup, the query, and the exact hours and files they were
//!   aggregated from: a dashboard whose open hour keeps changing still reads its closed hours
//!   from memory.

use std::collections::BTreeSet;
use std::sync::Arc;

use hourglass_types::metrics::Counter;
use serde_json::Value;

use crate::aggregate::Partial;

/// Response cache hits.
pub static RESPONSE_HITS: Counter =
    Counter::new("hourglass_report_cache_hits_total", "Report responses served from the cache.");
/// Response cache misses.
pub static RESPONSE_MISSES: Counter =
    Counter::new("hourglass_report_cache_misses_total", "Report responses computed (not cached, or stale).");
/// Rollup partial hits.
pub static PARTIAL_HITS: Counter =
    Counter::new("hourglass_report_rollup_cache_hits_total", "Rollup aggregates of a report found cached.");
/// Rollup partial misses.
pub static PARTIAL_MISSES: Counter =
    Counter::new("hourglass_report_rollup_cache_misses_total", "Rollup aggregates of a report read and computed.");

/// Appends the cache metrics in Prometheus text format.
pub fn render(out: &mut String) {
    for c in [&RESPONSE_HITS, &RESPONSE_MISSES, &PARTIAL_HITS, &PARTIAL_MISSES] {
        c.render(out);
    }
    hourglass_query::caches::render_ratio(
        out,
        "hourglass_report_cache_hit_ratio",
        "Share of report requests answered from the response cache.",
        &RESPONSE_HITS,
        &RESPONSE_MISSES,
    );
    hourglass_query::caches::render_ratio(
        out,
        "hourglass_report_rollup_cache_hit_ratio",
        "Share of rollup aggregates found cached.",
        &PARTIAL_HITS,
        &PARTIAL_MISSES,
    );
}

/// What a response was computed from, to check before reusing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Per range: the hours answered from rollups, with their files.
    pub rollup_hours: Vec<BTreeSet<(i64, i64)>>,
    /// The newest events file id before any events were read.
    pub high_water: i64,
    /// The catalog's retention epoch before any events were read: expired files leave
    /// without a newer file to show for it.
    pub retention_epoch: i64,
    /// The hours (first, last) of each window events were read from.
    pub windows: Vec<(i64, i64)>,
    /// The tenant's buffered rows and their hours before any events were read.
    pub buffered: hourglass_query::Buffered,
}

/// A cached response.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The response body.
    pub body: Arc<Value>,
    /// What it was computed from.
    pub validators: Arc<Validators>,
}

/// Both caches.
#[derive(Debug, Clone)]
pub struct Caches {
    responses: moka::sync::Cache<String, Entry>,
    partials: moka::sync::Cache<String, Arc<Partial>>,
    mismatches: moka::sync::Cache<String, Arc<BTreeSet<i64>>>,
}

/// Rough bytes of a partial: its rows and visitor ids.
fn partial_weight(p: &Partial) -> u32 {
    let bytes: usize = p.values().map(|acc| 160 + acc.visitors.len() * 16).sum();
    u32::try_from(bytes).unwrap_or(u32::MAX).max(1)
}

impl Caches {
    /// Caches of at most `response_bytes` and `partial_bytes` (roughly).
    pub fn new(response_bytes: u64, partial_bytes: u64) -> Self {
        let responses = moka::sync::Cache::builder()
            .max_capacity(response_bytes)
            .weigher(|k: &String, e: &Entry| {
                let size = k.len() + e.body.to_string().len() + 256;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .build();
        let partials = moka::sync::Cache::builder()
            .max_capacity(partial_bytes)
            .weigher(|k: &String, p: &Arc<Partial>| partial_weight(p).saturating_add(k.len() as u32))
            .build();
        let mismatches = moka::sync::Cache::new(10_000);
        Self { responses, partials, mismatches }
    }

    /// The hours of a rollup read computed under other settings, if known.
    pub fn mismatches(&self, key: &str) -> Option<Arc<BTreeSet<i64>>> {
        self.mismatches.get(key)
    }

    /// Keeps the hours of a rollup read computed under other settings.
    pub fn keep_mismatches(&self, key: String, hours: Arc<BTreeSet<i64>>) {
        self.mismatches.insert(key, hours);
    }

    /// The cached response under `key`, if any (not yet validated).
    pub fn response(&self, key: &str) -> Option<Entry> {
        self.responses.get(key)
    }

    /// Keeps a response.
    pub fn keep_response(&self, key: String, entry: Entry) {
        self.responses.insert(key, entry);
    }

    /// The cached rollup partial under `key`, counting the lookup.
    pub fn partial(&self, key: &str) -> Option<Arc<Partial>> {
        let found = self.partials.get(key);
        if found.is_some() {
            PARTIAL_HITS.inc()
        } else {
            PARTIAL_MISSES.inc()
        }
        found
    }

    /// Keeps a rollup partial.
    pub fn keep_partial(&self, key: String, partial: Arc<Partial>) {
        self.partials.insert(key, partial);
    }
}
