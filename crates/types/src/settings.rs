//! Per-tenant settings that change how events are processed, sessionized and reported.
//!
//! The catalog stores them as JSON, so a setting added later reads its default from older
//! rows. Every value goes through [`TenantSettings::apply`], which checks it, so what the
//! catalog holds is always valid.

use serde::{Deserialize, Serialize};

/// Shortest session timeout a tenant may set (ANALYTICS.md: 60 s).
pub const MIN_SESSION_TIMEOUT_MS: i64 = 60_000;
/// Longest session timeout a tenant may set (ANALYTICS.md: 7 h 55 min).
pub const MAX_SESSION_TIMEOUT_MS: i64 = (7 * 60 + 55) * 60_000;
/// The session timeout of a tenant that set none: 30 minutes.
pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 30 * 60_000;
/// Most hostnames a tenant may allow for browser collection.
pub const MAX_ALLOWED_HOSTNAMES: usize = 100;
/// Most key events a tenant may name.
pub const MAX_KEY_EVENTS: usize = 50;
/// Longest retention a tenant may set, in days (100 years: in effect, forever).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// One tenant's settings. The public site key is not a setting: the catalog keeps it apart.
// Unknown fields are ignored, not refused: during a rolling upgrade an older node must still
// read settings a newer one wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// A visitor's next event starts a new session when it comes more than this many
    /// milliseconds after the previous one.
    pub session_timeout_ms: i64,
    /// Whether a `user_id` identifies the visitor (rule 1 of `visitor_id`).
    pub identified_mode: bool,
    /// Hostnames the browser endpoint accepts events for (a leading `*.` allows subdomains).
    /// Empty allows every hostname.
    pub allowed_hostnames: Vec<String>,
    /// Event names that count as conversions for engagement (ANALYTICS.md "Key events").
    pub key_events: Vec<String>,
    /// ISO 4217 code of the currency `revenue` is reported in.
    pub reporting_currency: String,
    /// IANA time zone reports use when a request names none.
    pub timezone: String,
    /// How long this tenant's data is kept, per table, where it differs from the
    /// deployment's default.
    pub retention: RetentionDays,
}

/// Days of data kept per stored table; `None` keeps the deployment's default. `rollups`
/// follow `events`: they are derived from events and recomputed from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionDays {
    /// Days of `raw_events` kept (what backfills rebuild from).
    pub raw_events: Option<u32>,
    /// Days of `events`, and of the sessions and rollups derived from them.
    pub events: Option<u32>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            identified_mode: false,
            allowed_hostnames: Vec::new(),
            key_events: vec!["signup".into(), "purchase".into()],
            reporting_currency: "USD".into(),
            timezone: "UTC".into(),
            retention: RetentionDays::default(),
        }
    }
}

/// A partial update: the fields given replace the current values, the others stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// New session timeout, ms.
    pub session_timeout_ms: Option<i64>,
    /// New identified mode.
    pub identified_mode: Option<bool>,
    /// New allowed hostnames (replaces the list).
    pub allowed_hostnames: Option<Vec<String>>,
    /// New key events (replaces the list).
    pub key_events: Option<Vec<String>>,
    /// New reporting currency.
    pub reporting_currency: Option<String>,
    /// New default report time zone (IANA name).
    pub timezone: Option<String>,
    /// New retention: each table given replaces that table's days; a table given as `null`
    /// goes back to the deployment's default.
    pub retention: Option<RetentionPatch>,
}

/// A change of retention: a table absent stays as it is, `null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPatch {
    /// Days of `raw_events`.
    #[serde(default, deserialize_with = "present")]
    pub raw_events: Option<Option<u32>>,
    /// Days of `events` (and sessions and rollups).
    #[serde(default, deserialize_with = "present")]
    pub events: Option<Option<u32>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// A setting value that is out of range or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSetting {
    /// The setting's name.
    pub field: &'static str,
    /// What is wrong with the value.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidSetting {
    InvalidSetting { field, reason: reason.into() }
}

impl TenantSettings {
    /// These settings with `patch` applied, after checking every value the patch gives.
    /// Hostnames are lower-cased with any `www.` dropped, the currency upper-cased, and
    /// duplicate list entries removed, so equal settings compare equal.
    pub fn apply(&self, patch: &SettingsPatch) -> Result<Self, InvalidSetting> {
        let mut next = self.clone();
        if let Some(ms) = patch.session_timeout_ms {
            if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&ms) {
                return Err(invalid(
                    "session_timeout_ms",
                    format!(
                        "{ms} is outside {MIN_SESSION_TIMEOUT_MS}..={MAX_SESSION_TIMEOUT_MS} (1 min to 7 h 55 min)"
                    ),
                ));
            }
            next.session_timeout_ms = ms;
        }
        if let Some(mode) = patch.identified_mode {
            next.identified_mode = mode;
        }
        if let Some(hosts) = &patch.allowed_hostnames {
            if hosts.len() > MAX_ALLOWED_HOSTNAMES {
                return Err(invalid("allowed_hostnames", format!("at most {MAX_ALLOWED_HOSTNAMES} hostnames")));
            }
            let mut clean = Vec::with_capacity(hosts.len());
            for host in hosts {
                let host = normalize_hostname_pattern(host)?;
                if !clean.contains(&host) {
                    clean.push(host);
                }
            }
            next.allowed_hostnames = clean;
        }
        if let Some(names) = &patch.key_events {
            if names.len() > MAX_KEY_EVENTS {
                return Err(invalid("key_events", format!("at most {MAX_KEY_EVENTS} event names")));
            }
            let mut clean: Vec<String> = Vec::with_capacity(names.len());
            for name in names {
                let name = name.trim();
                if name.is_empty() || name.len() > 200 {
                    return Err(invalid("key_events", "event names are 1 to 200 bytes"));
                }
                if !clean.iter().any(|n| n == name) {
                    clean.push(name.to_string());
                }
            }
            next.key_events = clean;
        }
        if let Some(code) = &patch.reporting_currency {
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(invalid("reporting_currency", format!("{code:?} is not a three-letter ISO 4217 code")));
            }
            next.reporting_currency = code.to_ascii_uppercase();
        }
        if let Some(zone) = &patch.timezone {
            let parsed = parse_timezone(zone).ok_or_else(|| {
                invalid("timezone", format!("{zone:?} is not an IANA time zone such as Europe/Berlin"))
            })?;
            next.timezone = parsed.name().to_string();
        }
        if let Some(retention) = &patch.retention {
            for (field, change, slot) in [
                ("retention.raw_events", retention.raw_events, &mut next.retention.raw_events),
                ("retention.events", retention.events, &mut next.retention.events),
            ] {
                let Some(days) = change else { continue };
                if let Some(d) = days.filter(|d| !(1..=MAX_RETENTION_DAYS).contains(d)) {
                    return Err(invalid(field, format!("{d} days is outside 1..={MAX_RETENTION_DAYS}")));
                }
                *slot = days;
            }
        }
        Ok(next)
    }

    /// Whether a page on `hostname` (lower-case, as the processor derives it) may send
    /// events through the browser endpoint.
    pub fn allows_hostname(&self, hostname: &str) -> bool {
        if self.allowed_hostnames.is_empty() {
            return true;
        }
        let host = hostname.strip_prefix("www.").unwrap_or(hostname);
        self.allowed_hostnames.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(parent) => host == parent || host.strip_suffix(parent).is_some_and(|sub| sub.ends_with('.')),
            None => host == pattern,
        })
    }
}

/// The IANA time zone `name` names (`Europe/Berlin`, `UTC`), matched without regard to case.
pub fn parse_timezone(name: &str) -> Option<chrono_tz::Tz> {
    let name = name.trim();
    name.parse::<chrono_tz::Tz>()
        .ok()
        .or_else(|| chrono_tz::TZ_VARIANTS.iter().copied().find(|tz| tz.name().eq_ignore_ascii_case(name)))
}

/// `host` as stored in `allowed_hostnames`: trimmed, lower-case, without `www.`; only the
/// characters of a DNS name (or an IP address), with an optional leading `*.`.
fn normalize_hostname_pattern(host: &str) -> Result<String, InvalidSetting> {
    let lower = host.trim().to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let name = name.strip_prefix("www.").unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
        // Page hostnames never carry a port, so an entry with one could never match; a colon
        // belongs only in a bracketed IPv6 address.
        && (!name.contains(':') || (name.starts_with('[') && name.ends_with(']')))
        && !name.starts_with('.')
        && !name.ends_with('.');
    if !valid {
        return Err(invalid(
            "allowed_hostnames",
            format!("{host:?} is not a hostname (use example.com or *.example.com)"),
        ));
    }
    Ok(if wildcard { format!("*.{name}") } else { name.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_analytics_md() {
        let s = TenantSettings::default();
        assert_eq!(s.session_timeout_ms, 1_800_000);
        assert_eq!(s.key_events, ["signup", "purchase"]);
        assert_eq!(s.reporting_currency, "USD");
        assert!(!s.identified_mode);
        assert!(s.allows_hostname("anything.example"));
    }

    #[test]
    fn older_rows_read_defaults_for_missing_fields() {
        let s: TenantSettings = serde_json::from_str(r#"{"identified_mode": true}"#).expect("parse");
        assert!(s.identified_mode);
        assert_eq!(s.session_timeout_ms, DEFAULT_SESSION_TIMEOUT_MS);
    }

    #[test]
    fn retention_patches_set_clear_and_check_days() {
        let patch: SettingsPatch = serde_json::from_str(r#"{"retention": {"events": 30}}"#).expect("parse");
        let s = TenantSettings::default().apply(&patch).expect("valid");
        assert_eq!(s.retention, RetentionDays { raw_events: None, events: Some(30) });
        let patch: SettingsPatch = serde_json::from_str(r#"{"retention": {"raw_events": 400}}"#).expect("parse");
        let s = s.apply(&patch).expect("valid");
        assert_eq!(s.retention, RetentionDays { raw_events: Some(400), events: Some(30) }, "absent stays");
        let patch: SettingsPatch = serde_json::from_str(r#"{"retention": {"events": null}}"#).expect("parse");
        let s = s.apply(&patch).expect("valid");
        assert_eq!(s.retention, RetentionDays { raw_events: Some(400), events: None }, "null clears");
        for bad in [r#"{"retention": {"events": 0}}"#, r#"{"retention": {"raw_events": 36501}}"#] {
            let patch: SettingsPatch = serde_json::from_str(bad).expect("parse");
            let err = s.apply(&patch).expect_err(bad);
            assert!(err.field.starts_with("retention."), "{err}");
        }
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"retention": {"rollups": 3}}"#).is_err());
    }

    #[test]
    fn timeout_bounds_are_inclusive() {
        let base = TenantSettings::default();
        for (ms, ok) in [(59_999, false), (60_000, true), (MAX_SESSION_TIMEOUT_MS, true), (28_500_001, false)] {
            let patch = SettingsPatch { session_timeout_ms: Some(ms), ..Default::default() };
            assert_eq!(base.apply(&patch).is_ok(), ok, "{ms}");
        }
        assert_eq!(MAX_SESSION_TIMEOUT_MS, 28_500_000);
    }

    #[test]
    fn hostnames_are_normalized_and_matched() {
        let patch = SettingsPatch {
            allowed_hostnames: Some(vec!["WWW.Shop.example".into(), "*.blog.example".into(), "shop.example".into()]),
            ..Default::default()
        };
        let s = TenantSettings::default().apply(&patch).expect("valid");
        assert_eq!(s.allowed_hostnames, ["shop.example", "*.blog.example"]);
        assert!(s.allows_hostname("shop.example"));
        assert!(s.allows_hostname("www.shop.example"));
        assert!(s.allows_hostname("blog.example"));
        assert!(s.allows_hostname("en.blog.example"));
        assert!(!s.allows_hostname("evilblog.example"));
        assert!(!s.allows_hostname("shop.example.evil"));
        for bad in ["", "exa mple.com", "*.", "http://x.com/", ".x.com", "shop.example:8080"] {
            let patch = SettingsPatch { allowed_hostnames: Some(vec![bad.into()]), ..Default::default() };
            assert!(TenantSettings::default().apply(&patch).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn currency_and_key_events_are_checked() {
        let base = TenantSettings::default();
        let eur = base.apply(&SettingsPatch { reporting_currency: Some("eur".into()), ..Default::default() });
        assert_eq!(eur.expect("valid").reporting_currency, "EUR");
        assert!(base.apply(&SettingsPatch { reporting_currency: Some("EURO".into()), ..Default::default() }).is_err());
        assert!(base.apply(&SettingsPatch { key_events: Some(vec![" ".into()]), ..Default::default() }).is_err());
        let keys = base.apply(&SettingsPatch { key_events: Some(vec!["a".into(), "a".into()]), ..Default::default() });
        assert_eq!(keys.expect("valid").key_events, ["a"]);
    }

    #[test]
    fn time_zones_are_iana_names_in_their_canonical_case() {
        let base = TenantSettings::default();
        assert_eq!(base.timezone, "UTC");
        let zone = |z: &str| base.apply(&SettingsPatch { timezone: Some(z.into()), ..Default::default() });
        assert_eq!(zone("europe/berlin").expect("valid").timezone, "Europe/Berlin");
        assert_eq!(zone("America/New_York").expect("valid").timezone, "America/New_York");
        assert!(zone("Mars/Olympus").is_err());
        assert!(zone("+02:00").is_err());
    }
}
