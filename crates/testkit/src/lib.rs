//! Test fixtures shared by Hourglass's test suites: the real servers the tests talk to.
//!
//! - [`S3Server`]: an S3-protocol server on loopback (moto's standalone server), either the one
//!   named by `HOURGLASS_TEST_S3_ENDPOINT` or one spawned for the test.
//! - [`PgDatabase`]: a fresh PostgreSQL database on the server named by
//!   `HOURGLASS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped
//!   when the fixture is.
//! - [`PgCluster`]: a PostgreSQL server of the test's own, to stop and restart.
//! - [`TcpProxy`]: a loopback proxy a test cuts to make a server unreachable for a while.
//! - [`mmdb`]: small MaxMind DB files for GeoIP tests.
//!
//! Both fail loudly when their server is missing: a suite that silently skips its S3 or
//! PostgreSQL half would prove nothing. `scripts/test-deps` installs and starts them.

pub mod mmdb;
mod pg;
mod pg_cluster;
mod proxy;
mod s3;

pub use pg::PgDatabase;
pub use pg_cluster::PgCluster;
pub use proxy::TcpProxy;
pub use s3::S3Server;

/// A port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port on loopback")
}

/// A short random name usable as a bucket or database name.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}
