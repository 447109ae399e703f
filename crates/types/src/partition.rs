//! Partition math: which (table, hour, shard) an event belongs to, and where its files live.
//!
//! Tenants share files. A partition is one table's events for one UTC hour and one shard, with
//! `shard = hash(tenant) mod N`, so that millions of small merchants do not turn into tens of
//! millions of tiny files a day.

use std::fmt;

use chrono::{DateTime, Utc};

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// The tables Hourglass stores as Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableName {
    /// What was received, immutable.
    RawEvents,
    /// Raw events passed through the versioned processor.
    Events,
    /// Hourly rollups of `events`, materialized by the rollup job (one file per UTC hour).
    Rollups,
}

impl TableName {
    /// Every stored table, in a fixed order.
    pub const ALL: [TableName; 3] = [TableName::RawEvents, TableName::Events, TableName::Rollups];

    /// The tables ingesters write (and buffer, and compactors merge).
    pub const INGESTED: [TableName; 2] = [TableName::RawEvents, TableName::Events];

    /// The SQL and object-key name of the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RawEvents => "raw_events",
            Self::Events => "events",
            Self::Rollups => "rollups",
        }
    }

    /// Parses a table name as written by [`TableName::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The UTC hour an epoch-millisecond timestamp falls in, as hours since the epoch.
pub fn hour_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(HOUR_MS)
}

/// The shard of a tenant among `shards` shards (`shards` of 0 is treated as 1).
///
/// FNV-1a is used because it is stable across releases and platforms: a tenant's shard must
/// never change for the same shard count, or pruning by shard would miss files.
pub fn shard_of(tenant: &str, shards: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tenant.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(shards.max(1))) as u32
}

/// What the catalog records about a Parquet file's rows (computed when the file is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStats {
    /// Smallest tenant id in the file.
    pub min_tenant: String,
    /// Largest tenant id in the file.
    pub max_tenant: String,
    /// Earliest event timestamp (epoch ms).
    pub min_time_ms: i64,
    /// Latest event timestamp (epoch ms).
    pub max_time_ms: i64,
    /// Number of rows.
    pub rows: u64,
}

/// One partition: a table's rows for one UTC hour and one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The table.
    pub table: TableName,
    /// Hours since the Unix epoch (UTC).
    pub hour: i64,
    /// The shard, `hash(tenant) mod N`.
    pub shard: u32,
}

impl PartitionKey {
    /// The first millisecond of the partition's hour.
    pub fn start_ms(&self) -> i64 {
        self.hour * HOUR_MS
    }

    /// The object-key prefix of the partition: `{table}/date=YYYY-MM-DD/hour=HH/shard=S`.
    pub fn prefix(&self) -> String {
        let (date, hour) = match DateTime::<Utc>::from_timestamp_millis(self.start_ms()) {
            Some(t) => (t.format("%Y-%m-%d").to_string(), t.format("%H").to_string()),
            // Timestamps are validated at ingest, so this only guards against corrupt input.
            None => ("invalid".to_string(), self.hour.to_string()),
        };
        format!("{}/date={date}/hour={hour}/shard={}", self.table, self.shard)
    }

    /// The object key of one Parquet file of this partition:
    /// `{table}/date=YYYY-MM-DD/hour=HH/shard=S/{generation}-{uuid}.parquet`.
    pub fn file_key(&self, generation: u64, unique: &str) -> String {
        format!("{}/{generation}-{unique}.parquet", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_floor_towards_negative_infinity() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), 1);
        assert_eq!(hour_of(-1), -1);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        // Fixed expectations: a change here would move tenants between shards.
        assert_eq!(shard_of("shop-1", 1), 0);
        assert_eq!(shard_of("shop-1", 0), 0);
        let a = shard_of("shop-1", 4);
        assert_eq!(a, shard_of("shop-1", 4));
        for t in ["a", "b", "c", "shop-2", "merchant_42"] {
            assert!(shard_of(t, 4) < 4);
        }
        let spread: std::collections::HashSet<u32> = (0..100).map(|i| shard_of(&format!("t{i}"), 4)).collect();
        assert_eq!(spread.len(), 4);
    }

    #[test]
    fn keys_are_readable() {
        let key = PartitionKey {
            table: TableName::Events,
            hour: hour_of(1_763_730_000_000), // 2025-11-21T13:00:00Z
            shard: 2,
        };
        assert_eq!(key.prefix(), "events/date=2025-11-21/hour=13/shard=2");
        assert_eq!(key.file_key(7, "abc"), "events/date=2025-11-21/hour=13/shard=2/7-abc.parquet");
    }
}
