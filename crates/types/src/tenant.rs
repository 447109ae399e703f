//! Tenant identifiers: one merchant property, the unit of isolation.

use std::fmt;
use std::sync::Arc;

/// Longest tenant id accepted, in bytes.
pub const MAX_TENANT_ID_LEN: usize = 64;

/// A validated tenant id: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit. The restricted alphabet keeps ids safe in object keys, SQL literals and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// Why a string is not a valid tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    /// The id is empty.
    #[error("tenant id is empty")]
    Empty,
    /// The id is longer than [`MAX_TENANT_ID_LEN`].
    #[error("tenant id is {len} bytes long; the limit is {MAX_TENANT_ID_LEN}")]
    TooLong {
        /// Length of the rejected id.
        len: usize,
    },
    /// The id contains a character outside the allowed alphabet.
    #[error(
        "tenant id may only contain a-z, 0-9, '-' and '_' and must start with a letter or digit; found {found:?} at byte {at}"
    )]
    BadCharacter {
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
}

impl TenantId {
    /// Validates `id` and wraps it.
    pub fn new(id: &str) -> Result<Self, TenantIdError> {
        if id.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if id.len() > MAX_TENANT_ID_LEN {
            return Err(TenantIdError::TooLong { len: id.len() });
        }
        for (at, c) in id.char_indices() {
            let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || (at > 0 && (c == '-' || c == '_'));
            if !ok {
                return Err(TenantIdError::BadCharacter { found: c, at });
            }
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_simple_ids() {
        for id in ["shop-1", "a", "merchant_42", "0abc"] {
            assert_eq!(TenantId::new(id).map(|t| t.to_string()), Ok(id.to_string()));
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert!(matches!(TenantId::new("-x"), Err(TenantIdError::BadCharacter { at: 0, .. })));
        assert!(matches!(TenantId::new("Shop"), Err(TenantIdError::BadCharacter { found: 'S', .. })));
        assert!(matches!(TenantId::new("a/b"), Err(TenantIdError::BadCharacter { found: '/', .. })));
        assert!(matches!(TenantId::new("a'b"), Err(TenantIdError::BadCharacter { .. })));
        assert!(matches!(TenantId::new(&"x".repeat(65)), Err(TenantIdError::TooLong { len: 65 })));
    }
}
