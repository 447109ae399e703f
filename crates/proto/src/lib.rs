//! Hourglass's protobuf messages, generated from the `.proto` files in `proto/`.

/// Cluster-internal messages (`hourglass.internal.v1`): the ingester buffer service that
/// queriers read over Arrow Flight.
pub mod internal {
    /// Version 1.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/hourglass.internal.v1.rs"));
    }
}
