//! The catalog conformance suite: every test runs against SQLite and against a real PostgreSQL.

mod contract;
mod fixture;
mod migrations;
mod races;
