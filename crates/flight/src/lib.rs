//! Hourglass over Arrow Flight.
//!
//! - [`BufferService`]: the Flight service an ingester runs so that queriers can read the rows
//!   it has acknowledged but not yet persisted (ticket and metadata messages in
//!   `proto/hourglass/internal/v1/buffer.proto`).
//! - [`RemoteBuffers`]: the querier's side, a [`hourglass_query::BufferSource`] that asks every
//!   live ingester in the cluster at once.
//!
//! Both sides authenticate with the cluster secret shared by every node.
//!
//! - [`FlightSqlServer`]: Arrow Flight SQL for SQL clients, on nodes that answer queries.
//! - [`BulkIngest`] and [`IngestRpc`]: bulk ingest for server-side senders, as Flight `DoPut`
//!   (taken by whichever Flight service a node with an ingester runs) and as the
//!   client-streaming `hourglass.ingest.v1.IngestService` of `proto/`.

mod buffer_service;
mod bulk_ingest;
mod cluster_auth;
mod remote_buffers;
mod sql_service;
mod token_auth;

pub use buffer_service::BufferService;
pub use bulk_ingest::{BatchAck, BulkIngest, IngestRpc, MAX_LISTED_ERRORS};
pub use cluster_auth::ClusterSecret;
pub use remote_buffers::RemoteBuffers;
pub use sql_service::FlightSqlServer;

/// Prefix of the Flight ticket bytes of a buffer request; the rest is a `BufferTicket`.
pub const BUFFER_TICKET_PREFIX: &[u8] = b"hourglass.buffer.v1:";

/// Errors reading a remote ingester's buffer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ingester's Flight URL is not a valid endpoint.
    #[error("invalid flight url {url} of ingester {ingester}")]
    BadUrl {
        /// The ingester.
        ingester: String,
        /// The URL.
        url: String,
    },
    /// The ingester could not be reached or failed the call.
    #[error("reading the buffer of ingester {ingester}")]
    Call {
        /// The ingester.
        ingester: String,
        /// The gRPC status.
        source: tonic::Status,
    },
    /// The ingester's answer was not a valid buffer stream.
    #[error("decoding the buffer of ingester {ingester}")]
    Decode {
        /// The ingester.
        ingester: String,
        /// What went wrong.
        source: arrow_flight::error::FlightError,
    },
    /// The answer broke the buffer protocol.
    #[error("ingester {ingester} sent {what}")]
    Protocol {
        /// The ingester.
        ingester: String,
        /// What was wrong.
        what: &'static str,
    },
}
