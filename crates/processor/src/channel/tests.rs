//! One case per channel rule, plus the boundaries of each rule's patterns, through the same
//! path events take: page URL and referrer to source, then source and UTM values to channel.

use super::*;

/// The channel of a page URL and referrer, as the processor derives it.
fn channel(url: &str, referrer: Option<&str>) -> &'static str {
    let page = UrlParts::parse(url);
    let referrer = referrer.and_then(ReferrerParts::parse);
    let source = source_of(&page, referrer.as_ref(), crate::PROCESSOR_VERSION);
    let name = source.as_ref().map(|s| s.name.to_lowercase()).unwrap_or_default();
    let medium = page.utm[1].as_deref().unwrap_or("").to_lowercase();
    let campaign = page.utm[2].as_deref().unwrap_or("").to_lowercase();
    channel_of(&ChannelInput {
        source: &name,
        category: source.and_then(|s| s.category),
        medium: &medium,
        campaign: &campaign,
        paid_click: matches!(page.click_id, Some("gclid" | "msclkid")),
    })
}

fn source(url: &str, referrer: Option<&str>) -> Option<String> {
    let page = UrlParts::parse(url);
    source_of(&page, referrer.and_then(ReferrerParts::parse).as_ref(), crate::PROCESSOR_VERSION).map(|s| s.name)
}

#[test]
fn every_rule_in_order() {
    let shop = "https://shop.example/p";
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("?utm_source=google&utm_medium=cpc&utm_campaign=Cross-Network+Q4", None, "Cross-network"),
        ("?utm_source=amazon&utm_medium=cpc", None, "Paid Shopping"),
        ("?utm_source=newsletter&utm_medium=ppc&utm_campaign=spring_shopping", None, "Paid Shopping"),
        ("?utm_source=google&utm_medium=cpc", None, "Paid Search"),
        ("?gclid=abc", Some("https://www.google.com/"), "Paid Search"),
        ("?msclkid=abc", None, "Paid Search"),
        ("?utm_source=facebook&utm_medium=paid_social", None, "Paid Social"),
        ("?utm_source=youtube&utm_medium=cpv", None, "Paid Video"),
        ("?utm_source=partner&utm_medium=banner", None, "Display"),
        ("?utm_source=partner&utm_medium=display", None, "Display"),
        ("?utm_source=partner&utm_medium=retargeting", None, "Paid Other"),
        ("?utm_source=ebay", None, "Organic Shopping"),
        ("?utm_source=partner&utm_campaign=eshop-week", None, "Organic Shopping"),
        ("", Some("https://l.facebook.com/"), "Organic Social"),
        ("?utm_source=partner&utm_medium=social-media", None, "Organic Social"),
        ("", Some("https://www.youtube.com/watch?v=1"), "Organic Video"),
        ("?utm_source=partner&utm_medium=video_embed", None, "Organic Video"),
        ("", Some("https://chatgpt.com/"), "AI Assistants"),
        ("?utm_source=perplexity", None, "AI Assistants"),
        ("", Some("https://www.google.co.uk/"), "Organic Search"),
        ("", Some("https://duckduckgo.com/"), "Organic Search"),
        ("?utm_source=partner&utm_medium=organic", None, "Organic Search"),
        ("?utm_source=newsletter&utm_medium=email", None, "Email"),
        ("?utm_source=e-mail", None, "Email"),
        ("", Some("https://mail.google.com/"), "Email"),
        ("?utm_source=blog&utm_medium=affiliate", None, "Affiliates"),
        ("?utm_source=spotify&utm_medium=audio", None, "Audio"),
        ("?utm_source=sms", None, "SMS"),
        ("?utm_source=app&utm_medium=web_push", None, "Mobile Push Notifications"),
        ("?utm_source=firebase", None, "Mobile Push Notifications"),
        ("?utm_medium=mobile_notification", None, "Mobile Push Notifications"),
        ("", Some("https://news.ycombinator.com/item?id=1"), "Organic Social"),
        ("", Some("https://blog.example.org/post"), "Referral"),
        ("?utm_source=partner", None, "Referral"),
        ("?utm_medium=referral", None, "Referral"),
        ("", None, "Direct"),
        ("", Some("https://shop.example/cart"), "Direct"),
        ("?utm_medium=unknown", None, "Direct"),
    ];
    for (query, referrer, expected) in cases {
        let url = format!("{shop}{query}");
        assert_eq!(channel(&url, *referrer), *expected, "url {url} referrer {referrer:?}");
    }
    // The cases reach every channel of the published list, so the list and the rules agree.
    let mut reached: Vec<&str> = cases.iter().map(|(_, _, c)| *c).collect();
    reached.sort();
    reached.dedup();
    let mut listed = CHANNELS.to_vec();
    listed.sort();
    assert_eq!(reached, listed);
}

#[test]
fn the_rule_list_names_every_channel_once() {
    let mut names = CHANNELS.to_vec();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CHANNELS.len());
}

#[test]
fn paid_and_shopping_patterns_have_their_ga4_boundaries() {
    for paid in ["cpc", "cpm", "ppc", "retargeting", "paid", "paidsearch", "xcpx"] {
        assert!(is_paid_medium(paid), "{paid}");
    }
    for unpaid in ["organic", "email", "pp", "repaid"] {
        assert!(!is_paid_medium(unpaid), "{unpaid}");
    }
    for shop in ["shop", "shopping", "eshop", "e-shop", "summer_shop", "shop2"] {
        assert!(is_shopping_campaign(shop), "{shop}");
    }
    for other in ["workshop", "bishop", "spring"] {
        assert!(!is_shopping_campaign(other), "{other}");
    }
}

#[test]
fn sources_are_named_by_utm_then_referrer_then_click_id() {
    let page = "https://shop.example/";
    assert_eq!(source(&format!("{page}?utm_source=FB"), None).as_deref(), Some("Facebook"));
    assert_eq!(source(&format!("{page}?utm_source=Spring%20Mail"), None).as_deref(), Some("spring mail"));
    assert_eq!(source(&format!("{page}?ref=producthunt"), None).as_deref(), Some("Product Hunt"));
    assert_eq!(source(&format!("{page}?source=Twitter&ref=ignored"), None).as_deref(), Some("Twitter"));
    assert_eq!(
        source(&format!("{page}?utm_source=google"), Some("https://www.bing.com/")).as_deref(),
        Some("Google"),
        "utm_source wins over the referrer"
    );
    assert_eq!(source(page, Some("https://www.Blog.Example.org/a?b=c")).as_deref(), Some("blog.example.org"));
    assert_eq!(source(page, Some("https://www.shop.example/cart")), None, "self-referral");
    assert_eq!(source(&format!("{page}?gclid=x"), None).as_deref(), Some("Google"));
    assert_eq!(source(&format!("{page}?msclkid=x"), None).as_deref(), Some("Bing"));
    assert_eq!(source(&format!("{page}?fbclid=x"), None), None);
    assert_eq!(source(page, Some("android-app://com.google.android.gm")), None);
    assert_eq!(source(page, None), None);
}

#[test]
fn referrer_pages_drop_query_fragment_and_credentials() {
    let r = ReferrerParts::parse("https://user:pw@WWW.News.Example/a/b?x=1#frag").expect("parses");
    assert_eq!(r.host, "news.example");
    assert_eq!(r.page, "https://www.news.example/a/b");
    assert_eq!(ReferrerParts::parse("about:blank"), None);
    assert_eq!(ReferrerParts::parse(""), None);
}
