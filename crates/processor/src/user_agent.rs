//! Browser, operating system, device class and bot flag from a user-agent string.
//!
//! Parsing uses the `ua-parser` crate with the uap-core rule set shipped in
//! `data/uap-regexes.json` (refreshed by `scripts/update-user-agent-rules`). A full parse
//! runs a prefilter and then some of about 1200 regular expressions, while a site's traffic
//! comes from a few thousand distinct user agents, so results are kept in a bounded cache
//! shared by all ingest tasks.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

const UAP_RULES: &str = include_str!("../data/uap-regexes.json");

/// How many distinct user agents the cache keeps before it starts over.
const CACHE_CAPACITY: usize = 50_000;

/// The class of device, as `events.device` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Desktop or laptop computers.
    Desktop,
    /// Phones.
    Mobile,
    /// Tablets.
    Tablet,
}

impl Device {
    /// The label stored in `events.device`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Desktop => "Desktop",
            Self::Mobile => "Mobile",
            Self::Tablet => "Tablet",
        }
    }
}

/// What a user agent says about the visitor's software and hardware.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// Browser family (`Chrome`, `Safari`, `Firefox`, ...).
    pub browser: Option<String>,
    /// Browser version, major and minor (`120.0`).
    pub browser_version: Option<String>,
    /// Operating system (`Windows`, `macOS`, `iOS`, `Android`, ...).
    pub os: Option<String>,
    /// Operating system version, major and minor (`17.1`).
    pub os_version: Option<String>,
    /// Device class.
    pub device: Option<Device>,
    /// A crawler, monitor, script or headless browser: stored in `raw_events`, left out of
    /// `events`.
    pub is_bot: bool,
}

/// The compiled rule set; `None` only if the shipped rules do not compile, which the unit
/// tests rule out.
static EXTRACTOR: LazyLock<Option<ua_parser::Extractor<'static>>> = LazyLock::new(|| {
    let rules: ua_parser::Regexes<'static> = serde_json::from_str(UAP_RULES).ok()?;
    ua_parser::Extractor::try_from(rules).ok()
});

static CACHE: LazyLock<Mutex<HashMap<Box<str>, Arc<Agent>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Parses `ua`, from the shared cache when it was seen before.
pub fn parse_cached(ua: &str) -> Arc<Agent> {
    if let Some(agent) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(ua) {
        return Arc::clone(agent);
    }
    let agent = Arc::new(parse(ua));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    // Starting over keeps the bound without bookkeeping per hit; the working set of user
    // agents refills it within a few batches.
    if cache.len() >= CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(ua.into(), Arc::clone(&agent));
    agent
}

/// Lower-cased fragments that mark automation the uap rules do not call a spider.
const AUTOMATION_MARKERS: [&str; 12] = [
    "headless",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "lighthouse",
    "pagespeed",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "apache-httpclient",
    "okhttp",
];

/// Tools that announce themselves at the start of the string.
const TOOL_PREFIXES: [&str; 5] = ["curl/", "wget/", "httpie/", "axios/", "node-fetch/"];

fn is_automation(lower: &str) -> bool {
    AUTOMATION_MARKERS.iter().any(|m| lower.contains(m)) || TOOL_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// The display names merchants expect: one name per browser whatever the platform, since the
/// device column already tells mobile from desktop.
fn browser_name(family: &str) -> &str {
    match family {
        "Mobile Safari" | "Mobile Safari UI/WKWebView" | "Safari" => "Safari",
        "Chrome Mobile" | "Chrome Mobile iOS" | "Chrome" => "Chrome",
        "Chrome Mobile WebView" => "Chrome WebView",
        "Firefox Mobile" | "Firefox iOS" | "Firefox" => "Firefox",
        "Edge Mobile" | "Edge" => "Microsoft Edge",
        "Opera Mobile" | "Opera Mini" | "Opera" => "Opera",
        "Samsung Internet" => "Samsung Internet",
        "Other" => "",
        other => other,
    }
}

fn os_name(family: &str) -> &str {
    match family {
        "Mac OS X" => "macOS",
        "Other" => "",
        other => other,
    }
}

fn version(major: Option<&str>, minor: Option<&str>) -> Option<String> {
    let major = major.filter(|m| !m.is_empty())?;
    Some(match minor.filter(|m| !m.is_empty()) {
        Some(minor) => format!("{major}.{minor}"),
        None => major.to_string(),
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The device class: tablets by their own markers (an Android without `Mobile` is a tablet by
/// Google's convention), phones by `Mobi` and phone platforms, computers by a desktop OS.
fn device_of(ua: &str, os: &str, device_family: &str) -> Option<Device> {
    let tablet_markers = ["iPad", "Tablet", "Kindle", "Silk/", "PlayBook", "Nexus 7", "Nexus 10"];
    if device_family == "iPad" || tablet_markers.iter().any(|m| ua.contains(m)) {
        return Some(Device::Tablet);
    }
    if ua.contains("Android") && !ua.contains("Mobile") {
        return Some(Device::Tablet);
    }
    if ua.contains("Mobi") || ua.contains("iPhone") || ua.contains("iPod") || matches!(os, "iOS" | "Android") {
        return Some(Device::Mobile);
    }
    match os {
        "Windows" | "macOS" | "Linux" | "Ubuntu" | "Fedora" | "Debian" | "Chrome OS" | "ChromeOS" | "FreeBSD"
        | "OpenBSD" | "NetBSD" | "Solaris" => Some(Device::Desktop),
        _ => None,
    }
}

/// Parses `ua` without the cache.
pub fn parse(ua: &str) -> Agent {
    let ua = ua.trim();
    if ua.is_empty() {
        return Agent::default();
    }
    let Some(extractor) = &*EXTRACTOR else {
        return Agent::default();
    };
    let (browser, os, device) = extractor.extract(ua);
    let device_family = device.as_ref().map(|d| d.device.as_ref()).unwrap_or("");
    let browser_family = browser.as_ref().map(|b| b.family.as_ref()).unwrap_or("");
    let lower = ua.to_ascii_lowercase();
    let is_bot = device_family == "Spider" || browser_family.starts_with("Headless") || is_automation(&lower);
    let os_family = os.as_ref().map(|o| os_name(o.os.as_ref())).unwrap_or("");
    Agent {
        browser: non_empty(browser_name(browser_family)),
        browser_version: browser.as_ref().and_then(|b| version(b.major, b.minor)),
        os: non_empty(os_family),
        os_version: os.as_ref().and_then(|o| version(o.major.as_deref(), o.minor.as_deref())),
        device: if is_bot { None } else { device_of(ua, os_family, device_family) },
        is_bot,
    }
}

#[cfg(test)]
mod tests;
