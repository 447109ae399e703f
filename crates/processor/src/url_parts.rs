//! What the processor derives from a page URL.

use percent_encoding::percent_decode_str;
use url::Url;

/// The UTM query parameters, in the order of the `events` columns.
pub const UTM_KEYS: [&str; 5] = ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"];

/// Click-id query parameters that ad platforms append, in the order they are looked for. The
/// first present one is kept in `events.click_id`; `gclid` and `msclkid` make a visit Paid
/// Search (see [`crate::channel`]).
pub const CLICK_ID_KEYS: [&str; 9] =
    ["gclid", "msclkid", "gbraid", "wbraid", "dclid", "fbclid", "ttclid", "twclid", "li_fat_id"];

/// Host, path, UTM values and click id of a page URL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// Lower-case host without a leading `www.`.
    pub hostname: Option<String>,
    /// Percent-decoded path, `/` when empty, without query or fragment.
    pub path: Option<String>,
    /// `utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, `utm_term`; the first
    /// non-empty occurrence of each.
    pub utm: [Option<String>; 5],
    /// The `source` or `ref` query parameter, which names a source when `utm_source` is absent.
    pub source_param: Option<String>,
    /// The first click-id parameter present (its name, not its value).
    pub click_id: Option<&'static str>,
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
        let (mut source_param, mut ref_param) = (None, None);
        let mut click_id: Option<(usize, &'static str)> = None;
        for (key, value) in url.query_pairs() {
            if value.is_empty() {
                continue;
            }
            if let Some(slot) = UTM_KEYS.iter().position(|k| *k == key) {
                if utm[slot].is_none() {
                    utm[slot] = Some(value.into_owned());
                }
            } else if key == "source" {
                source_param.get_or_insert_with(|| value.into_owned());
            } else if key == "ref" {
                ref_param.get_or_insert_with(|| value.into_owned());
            } else if let Some(rank) = CLICK_ID_KEYS.iter().position(|k| *k == key)
                && click_id.is_none_or(|(r, _)| rank < r)
            {
                click_id = Some((rank, CLICK_ID_KEYS[rank]));
            }
        }
        Self { hostname, path, utm, source_param: source_param.or(ref_param), click_id: click_id.map(|(_, k)| k) }
    }
}

/// Host and page of a referrer URL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReferrerParts {
    /// Lower-case host without a leading `www.`.
    pub host: String,
    /// The referrer URL without query and fragment, such as `https://news.example/item`.
    pub page: String,
}

impl ReferrerParts {
    /// Splits a referrer URL; `None` unless it is an absolute http(s) URL with a host (an
    /// `android-app:` or `about:blank` referrer names no page).
    pub fn parse(raw: &str) -> Option<Self> {
        let mut url = Url::parse(raw.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let host = url.host_str()?.to_ascii_lowercase();
        let host = match host.strip_prefix("www.") {
            Some(rest) if !rest.is_empty() => rest.to_string(),
            _ => host,
        };
        url.set_query(None);
        url.set_fragment(None);
        // Credentials in a referrer are never meant to be shown.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some(Self { host, page: url.to_string() })
    }
}
