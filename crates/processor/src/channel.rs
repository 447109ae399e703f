//! The source of a visit and its channel: GA4's default channel grouping, with Plausible's
//! AI Assistants channel, in the order ANALYTICS.md fixes.

use crate::sources::{self, Category};
use crate::url_parts::{ReferrerParts, UrlParts};

/// Where a visit came from, as the `events.source` column shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Display name (`Google`), or the lower-cased `utm_source` value, or the referrer host.
    pub name: String,
    /// The category of a known source.
    pub category: Option<Category>,
}

/// The source of an event: `utm_source` (else `source`, `ref`) named through the source
/// table of processor `version`; else the referrer host when it is not the page's own host;
/// else the search engine of a `gclid` or `msclkid`; else none (Direct).
pub fn source_of(page: &UrlParts, referrer: Option<&ReferrerParts>, version: i32) -> Option<Source> {
    let tagged = page.utm[0].as_deref().or(page.source_param.as_deref()).map(|v| v.trim().to_lowercase());
    if let Some(value) = tagged.filter(|v| !v.is_empty()) {
        return Some(match sources::by_utm(&value, version) {
            Some(known) => Source { name: known.name.to_string(), category: known.category },
            None => Source { name: value, category: None },
        });
    }
    if let Some(referrer) = referrer.filter(|r| !is_self_referral(r, page)) {
        return Some(match sources::by_host(&referrer.host, version) {
            Some(known) => Source { name: known.name.to_string(), category: known.category },
            None => Source { name: referrer.host.clone(), category: None },
        });
    }
    let engine = match page.click_id {
        Some("gclid") => "Google",
        Some("msclkid") => "Bing",
        _ => return None,
    };
    Some(Source { name: engine.to_string(), category: Some(Category::Search) })
}

/// A referrer from the page's own host is navigation within the site, not a source.
pub fn is_self_referral(referrer: &ReferrerParts, page: &UrlParts) -> bool {
    page.hostname.as_deref() == Some(referrer.host.as_str())
}

/// The channels, in the order their rules are tried.
pub const CHANNELS: [&str; 19] = [
    "Cross-network",
    "Paid Shopping",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Display",
    "Paid Other",
    "Organic Shopping",
    "Organic Social",
    "Organic Video",
    "AI Assistants",
    "Organic Search",
    "Email",
    "Affiliates",
    "Audio",
    "SMS",
    "Mobile Push Notifications",
    "Referral",
    "Direct",
];

/// GA4's "paid" mediums: `^(.*cp.*|ppc|retargeting|paid.*)$`.
fn is_paid_medium(medium: &str) -> bool {
    medium.contains("cp") || medium == "ppc" || medium == "retargeting" || medium.starts_with("paid")
}

/// GA4's shopping campaigns: `^(.*(([^a-df-z]|^)shop|shopping).*)$`, that is "shopping"
/// anywhere, or "shop" at the start or after a character that is not a letter a-d or f-z (so
/// `e-shop` and `eshop` count, `workshop` does not).
fn is_shopping_campaign(campaign: &str) -> bool {
    if campaign.contains("shopping") {
        return true;
    }
    campaign.match_indices("shop").any(|(at, _)| {
        at == 0 || campaign[..at].chars().next_back().is_none_or(|c| !(c.is_ascii_lowercase() && c != 'e'))
    })
}

fn is_email(value: &str) -> bool {
    matches!(value, "email" | "e-mail" | "e_mail" | "e mail")
}

/// What the channel rules read, all lower-cased.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChannelInput<'a> {
    /// The source's name, lower-cased; empty for none.
    pub source: &'a str,
    /// The source's category.
    pub category: Option<Category>,
    /// `utm_medium`, lower-cased; empty for none.
    pub medium: &'a str,
    /// `utm_campaign`, lower-cased; empty for none.
    pub campaign: &'a str,
    /// Whether the page URL carries a `gclid` or `msclkid`.
    pub paid_click: bool,
}

/// The first channel whose rule matches.
pub fn channel_of(input: &ChannelInput<'_>) -> &'static str {
    let ChannelInput { source, category, medium, campaign, paid_click } = *input;
    let paid = is_paid_medium(medium);
    let shopping = category == Some(Category::Shopping) || is_shopping_campaign(campaign);
    let is = |c: Category| category == Some(c);
    if campaign.contains("cross-network") {
        "Cross-network"
    } else if shopping && paid {
        "Paid Shopping"
    } else if (is(Category::Search) && paid) || paid_click {
        "Paid Search"
    } else if is(Category::Social) && paid {
        "Paid Social"
    } else if is(Category::Video) && paid {
        "Paid Video"
    } else if matches!(medium, "display" | "banner" | "expandable" | "interstitial" | "cpm") {
        "Display"
    } else if paid {
        "Paid Other"
    } else if shopping {
        "Organic Shopping"
    } else if is(Category::Social)
        || matches!(medium, "social" | "social-network" | "social-media" | "sm" | "social network" | "social media")
    {
        "Organic Social"
    } else if is(Category::Video) || medium.contains("video") {
        "Organic Video"
    } else if is(Category::Ai) {
        "AI Assistants"
    } else if is(Category::Search) || medium == "organic" {
        "Organic Search"
    } else if is(Category::Email) || is_email(source) || is_email(medium) {
        "Email"
    } else if medium == "affiliate" {
        "Affiliates"
    } else if medium == "audio" {
        "Audio"
    } else if source == "sms" || medium == "sms" {
        "SMS"
    } else if medium.ends_with("push")
        || medium.contains("mobile")
        || medium.contains("notification")
        || source == "firebase"
    {
        "Mobile Push Notifications"
    } else if !source.is_empty() || matches!(medium, "referral" | "app" | "link") {
        "Referral"
    } else {
        "Direct"
    }
}

#[cfg(test)]
mod tests;
