//! The rollups: their SQL (`sql/rollups/*.sql`), the report dimensions each can group by, and
//! the version of the whole set that materialized hours are tagged with.

use std::sync::LazyLock;

use crate::dimension::{Dimension, EventDim, VisitDim};

/// Changes whenever what a rollup row means, or how rollup files are laid out, changes in
/// code rather than in the SQL files (the facts the SQL reads, the sketch encodings, page
/// sizes): bumping it recomputes every hour.
const SEMANTICS_VERSION: &str = "2";

/// One rollup.
#[derive(Debug, Clone)]
pub struct Rollup {
    /// Its name, in the `rollup` column of `rollups`.
    pub name: &'static str,
    /// Its SQL over the hour's facts.
    pub sql: &'static str,
    /// The report dimensions it groups by, with the `rollups` column holding each.
    pub dimensions: Vec<(Dimension, &'static str)>,
    /// Its event dimension, if any: a session counts in the row of every value its events
    /// had, so sums over several of these rows count a session more than once.
    pub event_dimension: Option<Dimension>,
    /// Relative size, for picking the smallest rollup that covers a request.
    pub rank: u32,
    /// Whether the report planner reads it (`event_props` is for SQL users only: a props
    /// dimension also reports `(none)` for events without the key, which it does not hold).
    pub plannable: bool,
}

fn visit(d: VisitDim, column: &'static str) -> (Dimension, &'static str) {
    (Dimension::Visit(d), column)
}

fn event(d: EventDim, column: &'static str) -> (Dimension, &'static str) {
    (Dimension::Event(d), column)
}

static ROLLUPS: LazyLock<Vec<Rollup>> = LazyLock::new(|| {
    let r = |name, sql, dimensions: Vec<(Dimension, &'static str)>, rank| {
        let event_dimension = dimensions.iter().find(|(d, _)| matches!(d, Dimension::Event(_))).map(|(d, _)| d.clone());
        Rollup { name, sql, dimensions, event_dimension, rank, plannable: true }
    };
    let mut props =
        r("event_props", include_str!("../../../sql/rollups/event_props.sql"), vec![event(EventDim::Name, "name")], 90);
    props.plannable = false;
    vec![
        r("totals", include_str!("../../../sql/rollups/totals.sql"), vec![], 0),
        r(
            "geography",
            include_str!("../../../sql/rollups/geography.sql"),
            vec![visit(VisitDim::Country, "country"), visit(VisitDim::Language, "language")],
            10,
        ),
        r(
            "hostnames",
            include_str!("../../../sql/rollups/hostnames.sql"),
            vec![event(EventDim::Hostname, "hostname")],
            11,
        ),
        r("event_names", include_str!("../../../sql/rollups/event_names.sql"), vec![event(EventDim::Name, "name")], 12),
        r(
            "technology",
            include_str!("../../../sql/rollups/technology.sql"),
            vec![
                visit(VisitDim::Device, "device"),
                visit(VisitDim::Browser, "browser"),
                visit(VisitDim::BrowserVersion, "browser_version"),
                visit(VisitDim::Os, "os"),
                visit(VisitDim::OsVersion, "os_version"),
                visit(VisitDim::Screen, "screen"),
            ],
            20,
        ),
        r(
            "entry_pages",
            include_str!("../../../sql/rollups/entry_pages.sql"),
            vec![visit(VisitDim::EntryPage, "entry_page")],
            30,
        ),
        r(
            "exit_pages",
            include_str!("../../../sql/rollups/exit_pages.sql"),
            vec![visit(VisitDim::ExitPage, "exit_page")],
            31,
        ),
        r("pages", include_str!("../../../sql/rollups/pages.sql"), vec![event(EventDim::Page, "page")], 32),
        r(
            "sources",
            include_str!("../../../sql/rollups/sources.sql"),
            vec![
                visit(VisitDim::Source, "source"),
                visit(VisitDim::Channel, "channel"),
                visit(VisitDim::UtmSource, "utm_source"),
                visit(VisitDim::UtmMedium, "utm_medium"),
                visit(VisitDim::UtmCampaign, "utm_campaign"),
                visit(VisitDim::UtmContent, "utm_content"),
                visit(VisitDim::UtmTerm, "utm_term"),
            ],
            40,
        ),
        r(
            "referrers",
            include_str!("../../../sql/rollups/referrers.sql"),
            vec![visit(VisitDim::Source, "source"), visit(VisitDim::Referrer, "referrer")],
            50,
        ),
        props,
    ]
});

/// Every rollup, smallest first.
pub fn all() -> &'static [Rollup] {
    &ROLLUPS
}

/// The rollup called `name`.
pub fn by_name(name: &str) -> Option<&'static Rollup> {
    all().iter().find(|r| r.name == name)
}

/// The version of the rollup set: a hash of every definition and of the code semantics.
/// Materialized hours of another version are computed again.
pub fn definitions_version() -> String {
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(SEMANTICS_VERSION.as_bytes());
    for r in all() {
        feed(r.name.as_bytes());
        feed(r.sql.as_bytes());
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rollup_has_sql_grouping_by_its_columns() {
        for r in all() {
            for (_, column) in &r.dimensions {
                assert!(r.sql.contains(column), "{}: {column}", r.name);
            }
            assert!(r.sql.contains("visitor_set(visitor_id)"), "{}", r.name);
        }
        assert_eq!(definitions_version(), definitions_version());
        assert_eq!(definitions_version().len(), 16);
        assert!(by_name("pages").is_some_and(|p| p.event_dimension == Some(Dimension::Event(EventDim::Page))));
    }
}
