//! Hourglass write-ahead log: checksummed segments stored as objects, and their replay.
//!
//! # Durability contract
//!
//! [`WalStore::write_segment`] returns only once the object store has the whole segment
//! durably (the local backend syncs file and directory; S3 acknowledges a completed PUT). An
//! ingester acknowledges events only after the segment holding them is written, so a crash at
//! any moment loses no acknowledged event: replay at start reads every segment newer than the
//! catalog's persisted position. A segment is deleted only after the catalog records that the
//! events in it are in Parquet files ([`WalStore::delete_through`]).
//!
//! Object stores cannot append, so each group commit writes one new segment object, named by
//! a sequence number that grows by one per segment: `wal/{ingester}/{seq:020}.wal`.
//!
//! # Format
//!
//! A segment is a header, entries, and a footer ([`segment`]). Each entry carries its length
//! and a CRC-32; the footer carries the entry count, so a segment cut short, even at an entry
//! boundary, is detected. Decoding keeps every complete, checksummed entry before the first
//! damage and reports the damage instead of failing the whole segment.

pub mod segment;
mod store;

pub use segment::{Corruption, DecodedSegment, decode_segment, encode_segment};
pub use store::{SegmentId, WalStore};

/// Errors from reading and writing WAL segments.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store failed to write a segment.
    #[error("writing WAL segment {path}")]
    Write {
        /// The segment's object key.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The object store failed to read, list or delete segments.
    #[error("accessing WAL segments under {path}")]
    Access {
        /// The key or prefix involved.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
}

impl Error {
    /// How the failure should be reported to clients.
    pub fn kind(&self) -> hourglass_types::ErrorKind {
        hourglass_types::ErrorKind::Unavailable
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
