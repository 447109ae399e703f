//! Hourglass over the PostgreSQL wire protocol, for the clients analysts already have: `psql`,
//! psycopg, JDBC (DBeaver, Metabase) and Grafana's PostgreSQL data source.
//!
//! - Authentication: the password is a Hourglass token (`auth.rs`); the scope it grants is
//!   the same as over HTTP and Flight SQL, enforced by the querier's table providers.
//! - Simple and extended query protocols (`handler.rs`): statements, prepared statements with
//!   typed parameters, results in text or binary format for every Arrow type (`types.rs`).
//! - The session statements drivers send (`BEGIN`, `SET`, `SHOW`...) are answered here
//!   (`command.rs`); everything else goes to the querier, which refuses what is not read-only.
//! - The slice of `pg_catalog` clients read for schema browsing is emulated per session
//!   (`pg_catalog.rs`, `compat.rs`).
//! - Errors carry SQLSTATE codes (`errors.rs`).

mod auth;
mod command;
mod compat;
mod errors;
mod handler;
mod pg_catalog;
mod server;
mod types;

pub use server::PgServer;
