//! Hourglass core types: the event schemas, partition math, tenant ids and settings, error kinds and the clock.
//!
//! This crate does no IO and runs no async code, so every other crate can depend on it.

pub mod clock;
pub mod error;
pub mod metrics;
pub mod partition;
pub mod schema;
pub mod settings;
pub mod tenant;

pub use clock::{Clock, MockClock, SystemClock};
pub use error::ErrorKind;
pub use partition::{FileStats, PartitionKey, TableName};
pub use settings::TenantSettings;
pub use tenant::{TenantId, TenantIdError};
