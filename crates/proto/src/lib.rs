//! Hourglass's protobuf messages and gRPC services, generated from the `.proto` files in
//! `proto/`.

/// Cluster-internal messages (`hourglass.internal.v1`): the ingester buffer service that
/// queriers read over Arrow Flight.
pub mod internal {
    /// Version 1.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/hourglass.internal.v1.rs"));
    }
}

/// Public bulk ingest over gRPC (`hourglass.ingest.v1`): the client-streaming
/// `IngestService.Ingest` call, its client and its server.
pub mod ingest {
    /// Version 1.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/hourglass.ingest.v1.rs"));
    }
}
