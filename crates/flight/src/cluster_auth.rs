//! The secret every node of a cluster shares, sent as a bearer token on internal calls.

use std::sync::Arc;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// A cluster's shared secret.
#[derive(Clone)]
pub struct ClusterSecret(Arc<str>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(***)")
    }
}

impl ClusterSecret {
    /// Wraps the secret.
    pub fn new(secret: &str) -> Self {
        Self(Arc::from(secret))
    }

    /// The `authorization` header value internal calls carry.
    pub(crate) fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Accepts a call only if it carries this secret.
    pub(crate) fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("cluster secret required"))?;
        if constant_time_eq(presented.as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("wrong cluster secret"))
        }
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_passes() {
        let secret = ClusterSecret::new("s3cret-value");
        let mut metadata = MetadataMap::new();
        assert!(secret.check(&metadata).is_err());
        metadata.insert("authorization", "Bearer s3cret-valuf".parse().expect("header"));
        assert!(secret.check(&metadata).is_err());
        metadata.insert("authorization", secret.header().parse().expect("header"));
        assert!(secret.check(&metadata).is_ok());
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
