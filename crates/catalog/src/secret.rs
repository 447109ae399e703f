//! Credentials: generation and the one-way hash under which they are stored.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of admin tokens.
pub const ADMIN_PREFIX: &str = "hga_";
/// Prefix of tenant write keys.
pub const WRITE_PREFIX: &str = "hgw_";
/// Prefix of tenant read tokens.
pub const READ_PREFIX: &str = "hgr_";

/// Prefix of tenants' public site keys (not secret: they sit in web pages).
pub const SITE_KEY_PREFIX: &str = "hgp_";

/// A new public site key: [`SITE_KEY_PREFIX`] and 16 random bytes in hex. Random so that one
/// tenant's key does not reveal another's.
pub fn generate_site_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SITE_KEY_PREFIX}{}", hex::encode(bytes))
}

/// A new random secret: `prefix` and 32 random bytes in hex.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The stored form of a secret. Secrets are 256-bit random values, so a plain SHA-256 is
/// enough: there is nothing to brute-force.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_prefixed() {
        let a = generate(WRITE_PREFIX);
        let b = generate(WRITE_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("hgw_") && a.len() == 4 + 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }
}
