//! Country lookup in an optional MaxMind-format database (GeoLite2-Country, GeoIP2-Country,
//! GeoIP2-City or any database whose records carry `country.iso_code`).
//!
//! The lookup runs while the event's address is still in memory, before it is hashed; only
//! the country code is kept. An event that names its own country, or whose country a trusted
//! CDN header gave, keeps that country: the database is the last resort.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{PathElement, Reader};

/// Why a GeoIP database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    /// The file is missing, unreadable or not a MaxMind DB.
    #[error("opening GeoIP database {path}")]
    Open {
        /// The file given.
        path: PathBuf,
        /// The reader's error.
        source: maxminddb::MaxMindDbError,
    },
}

/// An opened MaxMind-format database, held in memory and shared by every request.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("path", &self.path)
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

/// The record fields tried in order: the country the address is in, then the country the
/// network is registered to (some networks, such as satellite providers, carry only that).
const COUNTRY_PATHS: [&[PathElement<'static>]; 2] = [
    &[PathElement::Key("country"), PathElement::Key("iso_code")],
    &[PathElement::Key("registered_country"), PathElement::Key("iso_code")],
];

impl GeoIp {
    /// Reads the whole file into memory and checks its metadata.
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let reader =
            Reader::open_readfile(path).map_err(|source| GeoIpError::Open { path: path.to_path_buf(), source })?;
        Ok(Self { reader, path: path.to_path_buf() })
    }

    /// Builds a database from bytes already in memory (`name` only labels it in logs).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Self, GeoIpError> {
        let path = PathBuf::from(name);
        let reader = Reader::from_source(bytes).map_err(|source| GeoIpError::Open { path: path.clone(), source })?;
        Ok(Self { reader, path })
    }

    /// The database's type as its metadata names it, such as `GeoLite2-Country`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built, epoch seconds.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The ISO 3166 alpha-2 country of `ip`, upper case; `None` when the database has no
    /// record for it (private ranges, an IPv6 address in an IPv4-only database) or the record
    /// names no valid code.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = match self.reader.lookup(ip) {
            Ok(found) => found,
            Err(error) => {
                tracing::debug!(%error, "GeoIP lookup failed");
                return None;
            }
        };
        COUNTRY_PATHS.iter().find_map(|path| match found.decode_path::<&str>(path) {
            Ok(Some(code)) if is_alpha2(code) => Some(code.to_ascii_uppercase()),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%error, "GeoIP record unreadable");
                None
            }
        })
    }
}

fn is_alpha2(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> GeoIp {
        let bytes = hourglass_testkit::mmdb::country_database(&[
            ("81.2.69.0/24", "GB"),
            ("2a02:2f0c::/32", "RO"),
            ("10.9.0.0/16", "zz"),
        ]);
        GeoIp::from_bytes(bytes, "test.mmdb").expect("a valid database")
    }

    #[test]
    fn finds_ipv4_and_ipv6_networks() {
        let db = database();
        assert_eq!(db.country("81.2.69.160".parse().expect("ip")), Some("GB".into()));
        assert_eq!(db.country("2a02:2f0c:1:2::9".parse().expect("ip")), Some("RO".into()));
        assert_eq!(db.database_type(), "Hourglass-Test-Country");
    }

    #[test]
    fn addresses_outside_every_network_have_no_country() {
        let db = database();
        assert_eq!(db.country("81.2.70.1".parse().expect("ip")), None);
        assert_eq!(db.country("127.0.0.1".parse().expect("ip")), None);
        assert_eq!(db.country("::1".parse().expect("ip")), None);
    }

    #[test]
    fn codes_are_upper_cased() {
        assert_eq!(database().country("10.9.1.1".parse().expect("ip")), Some("ZZ".into()));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not.mmdb");
        std::fs::write(&path, b"hello").expect("write");
        let error = GeoIp::open(&path).expect_err("not a database");
        assert!(error.to_string().contains("not.mmdb"), "{error}");
        let missing = GeoIp::open(&dir.path().join("missing.mmdb")).expect_err("missing");
        assert!(matches!(missing, GeoIpError::Open { .. }));
    }
}
