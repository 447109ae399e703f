//! The object-store contract Hourglass relies on, checked on every backend it runs on: the
//! durable local directory, memory, and a real S3-protocol server on loopback.

mod contract;
mod parquet_roundtrip;
