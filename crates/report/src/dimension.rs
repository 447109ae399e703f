//! Report dimensions (`event:page`, `visit:source`, `time:day`...): their names, scopes and
//! the labels of empty values.

use std::fmt;

/// A dimension of the event itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventDim {
    /// `event:name`.
    Name,
    /// `event:page`: the event's URL path.
    Page,
    /// `event:hostname`.
    Hostname,
    /// `event:props:<key>`.
    Prop(String),
}

/// A dimension of the session, read from its first event (or its pageviews, for entry and
/// exit pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VisitDim {
    /// `visit:source`.
    Source,
    /// `visit:channel`.
    Channel,
    /// `visit:referrer`.
    Referrer,
    /// `visit:utm_source`.
    UtmSource,
    /// `visit:utm_medium`.
    UtmMedium,
    /// `visit:utm_campaign`.
    UtmCampaign,
    /// `visit:utm_content`.
    UtmContent,
    /// `visit:utm_term`.
    UtmTerm,
    /// `visit:entry_page`.
    EntryPage,
    /// `visit:exit_page`.
    ExitPage,
    /// `visit:device`.
    Device,
    /// `visit:browser`.
    Browser,
    /// `visit:browser_version`.
    BrowserVersion,
    /// `visit:os`.
    Os,
    /// `visit:os_version`.
    OsVersion,
    /// `visit:country`.
    Country,
    /// `visit:screen`: a size class of the screen width.
    Screen,
    /// `visit:language`: the primary language subtag.
    Language,
}

/// The time bucket of a `time:*` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// `time:minute` (realtime only).
    Minute,
    /// `time:hour`.
    Hour,
    /// `time:day`.
    Day,
    /// `time:week`: ISO weeks, starting on Monday.
    Week,
    /// `time:month`.
    Month,
}

/// One report dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// Of each event.
    Event(EventDim),
    /// Of each session.
    Visit(VisitDim),
    /// A time bucket in the request's time zone.
    Time(Grain),
}

/// Every visit dimension with its name, in the order `GET /api/v1/metadata` lists them.
pub const VISIT_DIMS: [(VisitDim, &str); 18] = [
    (VisitDim::Source, "source"),
    (VisitDim::Channel, "channel"),
    (VisitDim::Referrer, "referrer"),
    (VisitDim::UtmSource, "utm_source"),
    (VisitDim::UtmMedium, "utm_medium"),
    (VisitDim::UtmCampaign, "utm_campaign"),
    (VisitDim::UtmContent, "utm_content"),
    (VisitDim::UtmTerm, "utm_term"),
    (VisitDim::EntryPage, "entry_page"),
    (VisitDim::ExitPage, "exit_page"),
    (VisitDim::Device, "device"),
    (VisitDim::Browser, "browser"),
    (VisitDim::BrowserVersion, "browser_version"),
    (VisitDim::Os, "os"),
    (VisitDim::OsVersion, "os_version"),
    (VisitDim::Country, "country"),
    (VisitDim::Screen, "screen"),
    (VisitDim::Language, "language"),
];

/// Every time grain with its name.
pub const GRAINS: [(Grain, &str); 5] = [
    (Grain::Minute, "minute"),
    (Grain::Hour, "hour"),
    (Grain::Day, "day"),
    (Grain::Week, "week"),
    (Grain::Month, "month"),
];

/// Label of a missing value of most dimensions (ANALYTICS.md).
pub const NOT_SET: &str = "(not set)";
/// Label of a missing hostname, prop, page or entry/exit page.
pub const NONE: &str = "(none)";
/// Label of no source or no referrer.
pub const DIRECT: &str = "Direct / None";

/// Longest prop key a dimension may name.
const MAX_PROP_KEY: usize = 300;

impl Dimension {
    /// Parses a dimension name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix("event:") {
            return match rest {
                "name" => Some(Self::Event(EventDim::Name)),
                "page" => Some(Self::Event(EventDim::Page)),
                "hostname" => Some(Self::Event(EventDim::Hostname)),
                _ => rest
                    .strip_prefix("props:")
                    .filter(|key| !key.is_empty() && key.len() <= MAX_PROP_KEY)
                    .map(|key| Self::Event(EventDim::Prop(key.to_string()))),
            };
        }
        if let Some(rest) = name.strip_prefix("visit:") {
            return VISIT_DIMS.iter().find(|(_, n)| *n == rest).map(|(d, _)| Self::Visit(*d));
        }
        let rest = name.strip_prefix("time:")?;
        GRAINS.iter().find(|(_, n)| *n == rest).map(|(g, _)| Self::Time(*g))
    }

    /// The time grain, for a time dimension.
    pub fn grain(&self) -> Option<Grain> {
        match self {
            Self::Time(g) => Some(*g),
            _ => None,
        }
    }

    /// The label of an empty value of this dimension.
    pub fn empty_label(&self) -> &'static str {
        match self {
            Self::Event(EventDim::Name) => NOT_SET,
            Self::Event(_) => NONE,
            Self::Visit(VisitDim::Source | VisitDim::Referrer) => DIRECT,
            Self::Visit(VisitDim::EntryPage | VisitDim::ExitPage) => NONE,
            Self::Visit(_) => NOT_SET,
            Self::Time(_) => NOT_SET,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Event(EventDim::Name) => f.write_str("event:name"),
            Self::Event(EventDim::Page) => f.write_str("event:page"),
            Self::Event(EventDim::Hostname) => f.write_str("event:hostname"),
            Self::Event(EventDim::Prop(key)) => write!(f, "event:props:{key}"),
            Self::Visit(d) => {
                let name = VISIT_DIMS.iter().find(|(v, _)| v == d).map_or("?", |(_, n)| n);
                write!(f, "visit:{name}")
            }
            Self::Time(g) => {
                let name = GRAINS.iter().find(|(v, _)| v == g).map_or("?", |(_, n)| n);
                write!(f, "time:{name}")
            }
        }
    }
}

/// `visit:screen`'s class of a screen width in pixels (ANALYTICS.md).
pub fn screen_class(width: i32) -> &'static str {
    match width {
        w if w < 576 => "Mobile",
        w if w < 992 => "Tablet",
        w if w < 1440 => "Laptop",
        _ => "Desktop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "event:name",
            "event:page",
            "event:hostname",
            "event:props:plan",
            "visit:source",
            "visit:utm_campaign",
            "visit:entry_page",
            "visit:screen",
            "time:minute",
            "time:week",
        ] {
            let parsed = Dimension::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(parsed.to_string(), name);
        }
        for bad in ["visit:nope", "event:props:", "time:year", "source", "event:", "page"] {
            assert_eq!(Dimension::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_labels_follow_analytics_md() {
        let label = |n: &str| Dimension::parse(n).map(|d| d.empty_label());
        assert_eq!(label("visit:source"), Some(DIRECT));
        assert_eq!(label("visit:referrer"), Some(DIRECT));
        assert_eq!(label("visit:country"), Some(NOT_SET));
        assert_eq!(label("visit:utm_medium"), Some(NOT_SET));
        assert_eq!(label("event:props:plan"), Some(NONE));
        assert_eq!(label("event:hostname"), Some(NONE));
        assert_eq!(label("visit:exit_page"), Some(NONE));
    }

    #[test]
    fn screen_classes() {
        assert_eq!(screen_class(375), "Mobile");
        assert_eq!(screen_class(576), "Tablet");
        assert_eq!(screen_class(991), "Tablet");
        assert_eq!(screen_class(992), "Laptop");
        assert_eq!(screen_class(1439), "Laptop");
        assert_eq!(screen_class(1440), "Desktop");
    }
}
