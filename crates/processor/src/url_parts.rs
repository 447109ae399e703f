//! What the processor derives from a page URL.

use percent_encoding::percent_decode_str;
use url::Url;

/// The UTM query parameters, in the order of the `events` columns.
pub const UTM_KEYS: [&str; 5] = ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"];

/// Host, path and UTM values of a page URL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// Lower-case host without a leading `www.`.
    pub hostname: Option<String>,
    /// Percent-decoded path, `/` when empty, without query or fragment.
    pub path: Option<String>,
    /// `utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, `utm_term`; the first
    /// non-empty occurrence of each.
    pub utm: [Option<String>; 5],
}

impl UrlParts {
    /// Splits `raw` into its parts. A URL without scheme and host that starts with `/` is read
    /// as a bare path; anything else that does not parse yields no parts.
    pub fn parse(raw: &str) -> Self {
        let (url, has_host) = match Url::parse(raw) {
            Ok(url) => (url, true),
            Err(_) if raw.starts_with('/') && !raw.starts_with("//") => {
                // A relative URL: resolve against a placeholder base to reuse the parser,
                // then forget the placeholder host.
                match Url::parse("http://placeholder.invalid").and_then(|b| b.join(raw)) {
                    Ok(url) => (url, false),
                    Err(_) => return Self::default(),
                }
            }
            Err(_) => return Self::default(),
        };

        let hostname = if has_host {
            url.host_str().map(|h| {
                let h = h.to_ascii_lowercase();
                match h.strip_prefix("www.") {
                    Some(rest) if !rest.is_empty() => rest.to_string(),
                    _ => h,
                }
            })
        } else {
            None
        };

        let path = if url.cannot_be_a_base() {
            None
        } else {
            let decoded = percent_decode_str(url.path()).decode_utf8_lossy();
            Some(if decoded.is_empty() { "/".to_string() } else { decoded.into_owned() })
        };

        let mut utm: [Option<String>; 5] = Default::default();
        for (key, value) in url.query_pairs() {
            if value.is_empty() {
                continue;
            }
            if let Some(slot) = UTM_KEYS.iter().position(|k| *k == key)
                && utm[slot].is_none()
            {
                utm[slot] = Some(value.into_owned());
            }
        }
        Self { hostname, path, utm }
    }
}
