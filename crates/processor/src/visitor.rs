//! `visitor_id`: who an event belongs to, by the first rule of ANALYTICS.md that applies.
//!
//! 1. `user_id` given and the tenant enabled identified mode: hash(tenant, "u:" + user_id);
//! 2. `client_id` given: hash(tenant, "c:" + client_id);
//! 3. cookieless: hash(tenant, ip_hash, user_agent, hostname). `ip_hash` is already keyed by
//!    the salt of the event's UTC day (the ingester computes it and drops the address), so the
//!    same browser on two UTC days gets two visitor ids, and nobody without the salt can link
//!    an id back to an address.
//!
//! An event with none of these (a server-side event sent without `ip`, `client_id` or
//! `user_id`) is its own visitor: merging such events would invent one visitor out of many.

use sha2::{Digest, Sha256};

/// The identity fields of one event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    /// The event's tenant.
    pub tenant: &'a str,
    /// The merchant's own user id.
    pub user_id: Option<&'a str>,
    /// The anonymous cookie or app instance id.
    pub client_id: Option<&'a str>,
    /// The daily-salted hash of the client address.
    pub ip_hash: Option<&'a str>,
    /// The user-agent string.
    pub user_agent: Option<&'a str>,
    /// The page's host.
    pub hostname: Option<&'a str>,
    /// The event id, the identity of last resort.
    pub event_id: &'a str,
}

/// Hashes length-prefixed parts, so that no two different part lists hash alike.
fn hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// The visitor id of an event; `identified_mode` is the tenant's setting.
pub fn visitor_id(who: &Identity<'_>, identified_mode: bool) -> u64 {
    let tenant = who.tenant.as_bytes();
    if identified_mode && let Some(user) = present(who.user_id) {
        return hash_parts(&[tenant, b"u:", user.as_bytes()]);
    }
    if let Some(client) = present(who.client_id) {
        return hash_parts(&[tenant, b"c:", client.as_bytes()]);
    }
    if let Some(ip) = present(who.ip_hash) {
        let ua = who.user_agent.unwrap_or("");
        let host = who.hostname.unwrap_or("");
        return hash_parts(&[tenant, b"a:", ip.as_bytes(), ua.as_bytes(), host.as_bytes()]);
    }
    hash_parts(&[tenant, b"e:", who.event_id.as_bytes()])
}

/// The visitor id the event would have under the previous UTC day's salt, given the address
/// hashed with that salt: `Some` only when the cookieless rule is the one that applies. The
/// sessionizer uses it to continue a cookieless session across midnight.
pub fn previous_day_visitor_id(who: &Identity<'_>, identified_mode: bool, ip_hash_prev: Option<&str>) -> Option<u64> {
    if identified_mode && present(who.user_id).is_some() {
        return None;
    }
    if present(who.client_id).is_some() || present(who.ip_hash).is_none() {
        return None;
    }
    let previous = present(ip_hash_prev)?;
    Some(visitor_id(&Identity { ip_hash: Some(previous), ..*who }, identified_mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>() -> Identity<'a> {
        Identity {
            tenant: "acme",
            user_id: Some("u1"),
            client_id: Some("c1"),
            ip_hash: Some("0011aabb"),
            user_agent: Some("UA"),
            hostname: Some("shop.example"),
            event_id: "e1",
        }
    }

    #[test]
    fn rules_apply_in_order() {
        let all = who();
        let no_user = Identity { user_id: None, ..who() };
        let cookieless = Identity { user_id: None, client_id: None, ..who() };
        let nothing = Identity { user_id: None, client_id: None, ip_hash: None, ..who() };
        assert_eq!(visitor_id(&all, true), hash_parts(&[b"acme", b"u:", b"u1"]));
        assert_eq!(visitor_id(&all, false), visitor_id(&no_user, true), "user_id only counts in identified mode");
        assert_eq!(visitor_id(&no_user, false), hash_parts(&[b"acme", b"c:", b"c1"]));
        assert_eq!(visitor_id(&cookieless, false), hash_parts(&[b"acme", b"a:", b"0011aabb", b"UA", b"shop.example"]));
        assert_eq!(visitor_id(&nothing, false), hash_parts(&[b"acme", b"e:", b"e1"]));
    }

    #[test]
    fn ids_are_scoped_to_the_tenant_and_empty_values_do_not_count() {
        let other = Identity { tenant: "globex", ..who() };
        assert_ne!(visitor_id(&who(), false), visitor_id(&other, false));
        let empty_client = Identity { user_id: None, client_id: Some(""), ..who() };
        let cookieless = Identity { user_id: None, client_id: None, ..who() };
        assert_eq!(visitor_id(&empty_client, false), visitor_id(&cookieless, false));
    }

    #[test]
    fn cookieless_ids_change_with_any_part() {
        let base = Identity { user_id: None, client_id: None, ..who() };
        let id = visitor_id(&base, false);
        assert_ne!(id, visitor_id(&Identity { ip_hash: Some("0011aabc"), ..base }, false));
        assert_ne!(id, visitor_id(&Identity { user_agent: Some("UA2"), ..base }, false));
        assert_ne!(id, visitor_id(&Identity { hostname: Some("other.example"), ..base }, false));
        // Length prefixes keep part boundaries: moving a byte between parts changes the id.
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]), "parts are length-prefixed");
    }
}
