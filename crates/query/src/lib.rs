//! Hourglass querier: SQL over one tenant's rows, from the catalog's Parquet files and the
//! ingesters' unpersisted buffers, with DataFusion.
//!
//! Isolation lives in the table providers ([`TenantTable`]), not in the SQL text: every scan
//! is restricted to the session's tenant, and that restriction is pushed into catalog pruning
//! (files whose tenant range excludes the tenant are never opened) and into Parquet row-group
//! and page pruning. Sessions refuse DDL, DML and statements, so a merchant's SQL can only
//! read its own two tables and the tables it imported ([`encode_schema`] describes how an
//! import's schema is kept in the catalog).
//!
//! Every query passes the same governance, whichever interface it came through: a fair
//! per-tenant admission queue, a memory budget of its own inside the shared pool, result and
//! time limits, and the registry behind `system.queries` and the admin's cancel.

mod admission;
mod buffer_source;
pub mod caches;
mod error;
mod functions;
mod imported_table;
pub mod metrics;
mod querier;
mod query_memory;
mod running;
mod sessions_table;
mod system_tables;
mod table;
mod tenant_scope;
mod time_bounds;

pub use admission::AdmissionConfig;
pub use buffer_source::{BufferSource, BufferedChunk};
pub use error::{Error, Result};
pub use imported_table::{decode_schema, encode_schema};
pub use querier::{
    Buffered, Described, Querier, QueryConfig, QueryResult, RunOptions, SESSIONS_TABLE, Scope, SessionSetup,
};
pub use running::{Interface, QueryInfo};
pub use table::{TenantTable, to_query_schema};
pub use time_bounds::TimeBounds;
