//! User agents of each kind Hourglass must tell apart: desktop, mobile and tablet browsers,
//! crawlers, headless browsers and scripts.

use super::*;

struct Case {
    ua: &'static str,
    browser: Option<&'static str>,
    browser_version: Option<&'static str>,
    os: Option<&'static str>,
    os_version: Option<&'static str>,
    device: Option<Device>,
    is_bot: bool,
}

const fn human(
    ua: &'static str,
    browser: &'static str,
    browser_version: &'static str,
    os: &'static str,
    os_version: &'static str,
    device: Device,
) -> Case {
    Case {
        ua,
        browser: Some(browser),
        browser_version: Some(browser_version),
        os: Some(os),
        os_version: Some(os_version),
        device: Some(device),
        is_bot: false,
    }
}

const fn bot(ua: &'static str) -> Case {
    Case { ua, browser: None, browser_version: None, os: None, os_version: None, device: None, is_bot: true }
}

const CASES: &[Case] = &[
    human(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "131.0",
        "Windows",
        "10",
        Device::Desktop,
    ),
    human(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        "Safari",
        "17.1",
        "macOS",
        "10.15",
        Device::Desktop,
    ),
    human(
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Firefox",
        "133.0",
        "Ubuntu",
        "",
        Device::Desktop,
    ),
    human(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
        "Microsoft Edge",
        "131.0",
        "Windows",
        "10",
        Device::Desktop,
    ),
    human(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
        "Safari",
        "17.1",
        "iOS",
        "17.1",
        Device::Mobile,
    ),
    human(
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
        "Chrome",
        "131.0",
        "Android",
        "14",
        Device::Mobile,
    ),
    human(
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        "Samsung Internet",
        "23.0",
        "Android",
        "13",
        Device::Mobile,
    ),
    human(
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "Safari",
        "16.6",
        "iOS",
        "16.6",
        Device::Tablet,
    ),
    human(
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "131.0",
        "Android",
        "13",
        Device::Tablet,
    ),
    bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    bot("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
    bot(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    ),
    bot("curl/8.5.0"),
    bot("python-requests/2.32.3"),
    bot("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"),
];

#[test]
fn the_shipped_rules_compile() {
    assert!(EXTRACTOR.is_some(), "data/uap-regexes.json must deserialize and compile");
}

#[test]
fn browsers_systems_devices_and_bots() {
    for case in CASES {
        let agent = parse(case.ua);
        let label = case.ua;
        assert_eq!(agent.is_bot, case.is_bot, "bot flag of {label}");
        assert_eq!(agent.device, case.device, "device of {label}");
        if !case.is_bot {
            assert_eq!(agent.browser.as_deref(), case.browser, "browser of {label}");
            assert_eq!(agent.browser_version.as_deref(), case.browser_version, "browser version of {label}");
            assert_eq!(agent.os.as_deref(), case.os, "os of {label}");
            let os_version = case.os_version.filter(|v| !v.is_empty());
            assert_eq!(agent.os_version.as_deref(), os_version, "os version of {label}");
        }
    }
}

#[test]
fn empty_and_unknown_agents_are_humans_with_nothing_known() {
    assert_eq!(parse(""), Agent::default());
    assert_eq!(parse("   "), Agent::default());
    let unknown = parse("MerchantBackend/1.0");
    assert!(!unknown.is_bot);
    assert_eq!(unknown.device, None);
    assert_eq!(unknown.os, None);
}

#[test]
fn the_cache_answers_like_a_fresh_parse() {
    for case in CASES {
        assert_eq!(*parse_cached(case.ua), parse(case.ua));
        assert_eq!(*parse_cached(case.ua), parse(case.ua), "second, cached, lookup of {}", case.ua);
    }
}
