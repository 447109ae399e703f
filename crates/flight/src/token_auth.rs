//! The token a public gRPC call carries, read the same way by Flight SQL and bulk ingest.

use base64::Engine;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The token of a call: `authorization: Bearer <token>`, or the password of basic auth (the
/// user name is ignored). Unpadded base64 is accepted: the ADBC driver sends it.
pub(crate) fn token(metadata: &MetadataMap) -> Result<String, Status> {
    let value = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token> or basic auth"))?;
    if let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
        return Ok(token.trim().to_string());
    }
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(|| Status::unauthenticated("authorization must be Bearer or Basic"))?
        .trim();
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = engine.decode(encoded).map_err(|_| Status::unauthenticated("basic auth is not valid base64"))?;
    let text = String::from_utf8(decoded).map_err(|_| Status::unauthenticated("basic auth is not UTF-8"))?;
    let (user, password) = text.split_once(':').unwrap_or(("", text.as_str()));
    // Some tools put the token in the user field and leave the password empty.
    Ok(if password.is_empty() { user } else { password }.to_string())
}
