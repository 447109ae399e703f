//! End-to-end tests against the real `hourglass` binary: each test starts its own server on an
//! ephemeral port in a temporary directory, talks to it over HTTP, and kills it with SIGKILL
//! where durability is the point.

mod backfill;
mod bad_input;
mod bulk_ingest;
mod chaos;
mod cli;
mod cluster;
mod collection;
mod compaction;
mod dashboard;
mod durability;
mod flight_sql;
mod governance;
mod import;
mod isolation;
mod isolation_suite;
mod outage;
mod persist;
mod pgwire;
mod report;
mod report_oracle;
mod retention;
mod roundtrip;
mod sessions;
mod sqllogic;
mod support;
mod wal_damage;
