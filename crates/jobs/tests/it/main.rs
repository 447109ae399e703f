//! The compactor and retention over an in-memory store and catalog, and over a real S3-protocol server and
//! PostgreSQL.

mod compaction;
mod orphans;
mod retention;
mod rollup_days;
