//! Naming traffic sources: the referrer database shipped in `data/sources.tsv` and the
//! `utm_source` aliases, with the source category each belongs to.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The group of sites a source belongs to, as GA4's channel grouping uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Search engines.
    Search,
    /// Social networks and communities.
    Social,
    /// Shops and marketplaces.
    Shopping,
    /// Video sites.
    Video,
    /// Web mail.
    Email,
    /// AI assistants.
    Ai,
}

/// A known source: its display name and category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Display name, such as `Google`.
    pub name: &'static str,
    /// Its category, when it has one.
    pub category: Option<Category>,
}

/// The parsed table of one processor version: exact hosts, `label.*` wildcards and utm
/// aliases.
struct Table {
    hosts: HashMap<&'static str, Known>,
    wildcards: HashMap<&'static str, Known>,
    aliases: HashMap<&'static str, Known>,
    by_name: HashMap<String, Known>,
}

const SOURCE_TABLE: &str = include_str!("../data/sources.tsv");

/// One table per version the processor can run, oldest first: a row's `versions` column
/// decides which tables hold it, so an older version keeps deriving what it always did.
static TABLES: LazyLock<Vec<Table>> =
    LazyLock::new(|| crate::SUPPORTED_VERSIONS.map(|version| parse_table(SOURCE_TABLE, version)).collect());

fn table(version: i32) -> &'static Table {
    let tables = &*TABLES;
    let first = *crate::SUPPORTED_VERSIONS.start();
    // Versions are checked where Options are made; anything else reads the newest table.
    let index = usize::try_from(version - first).ok().filter(|i| *i < tables.len()).unwrap_or(tables.len() - 1);
    &tables[index]
}

fn parse_category(text: &str) -> Option<Category> {
    match text {
        "search" => Some(Category::Search),
        "social" => Some(Category::Social),
        "shopping" => Some(Category::Shopping),
        "video" => Some(Category::Video),
        "email" => Some(Category::Email),
        "ai" => Some(Category::Ai),
        _ => None,
    }
}

/// The processor versions a row's `versions` field names: `4-`, `2-3`, or empty for every
/// version; `None` when it is malformed (the table's unit test refuses that).
fn versions_of(field: &str) -> Option<std::ops::RangeInclusive<i32>> {
    let field = field.trim();
    if field.is_empty() {
        return Some(i32::MIN..=i32::MAX);
    }
    let (since, until) = field.split_once('-')?;
    let since = since.trim().parse::<i32>().ok()?;
    let until = match until.trim() {
        "" => i32::MAX,
        text => text.parse::<i32>().ok()?,
    };
    Some(since..=until)
}

fn row_applies(field: &str, version: i32) -> bool {
    versions_of(field).is_some_and(|range| range.contains(&version))
}

fn parse_table(text: &'static str, version: i32) -> Table {
    let mut table =
        Table { hosts: HashMap::new(), wildcards: HashMap::new(), aliases: HashMap::new(), by_name: HashMap::new() };
    // The header line and comments are skipped; the table's shape is checked by a unit test,
    // so a malformed line can only come from an edit that the test suite refuses.
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("name\t")) {
        let mut fields = line.split('\t');
        let (Some(name), Some(category), Some(hosts), Some(aliases)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !row_applies(fields.next().unwrap_or(""), version) {
            continue;
        }
        let known = Known { name, category: parse_category(category) };
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            match host.strip_suffix(".*") {
                Some(label) => table.wildcards.insert(label, known),
                None => table.hosts.insert(host, known),
            };
        }
        for alias in aliases.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            table.aliases.insert(alias, known);
        }
        table.by_name.insert(name.to_lowercase(), known);
    }
    table
}

/// Whether `tail` looks like a public suffix: one or two short labels (`de`, `co.uk`,
/// `com.br`). Wildcard entries only match under such a tail, so `google.example.org` is not
/// Google.
fn is_public_suffix_like(tail: &str) -> bool {
    let labels: Vec<&str> = tail.split('.').collect();
    (1..=2).contains(&labels.len()) && labels.iter().all(|l| (2..=3).contains(&l.len()))
}

/// The known source of a referrer host (lower-case, with or without `www.`) in the table of
/// processor `version`: the most specific exact host first, then subdomains of a listed host,
/// then `label.*` wildcards.
pub fn by_host(host: &str, version: i32) -> Option<Known> {
    let table = table(version);
    let mut suffix = host;
    loop {
        if let Some(known) = table.hosts.get(suffix) {
            return Some(*known);
        }
        if let Some((label, tail)) = suffix.split_once('.')
            && is_public_suffix_like(tail)
            && let Some(known) = table.wildcards.get(label)
        {
            return Some(*known);
        }
        match suffix.split_once('.') {
            Some((_, rest)) if rest.contains('.') => suffix = rest,
            _ => return None,
        }
    }
}

/// The known source named by a lower-cased `utm_source` value: an alias (`fb`), a source's
/// own name (`facebook`), or a referrer host written as the value (`news.ycombinator.com`), in
/// the table of processor `version`.
pub fn by_utm(value: &str, version: i32) -> Option<Known> {
    let table = table(version);
    table.aliases.get(value).or_else(|| table.by_name.get(value)).copied().or_else(|| {
        if value.contains('.') { by_host(value.strip_prefix("www.").unwrap_or(value), version) } else { None }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_line_has_four_or_five_fields_a_known_category_and_valid_versions() {
        for line in SOURCE_TABLE.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let fields: Vec<&str> = line.split('\t').collect();
            assert!((4..=5).contains(&fields.len()), "line {line:?}");
            if fields[0] != "name" {
                assert!(fields[1] == "-" || parse_category(fields[1]).is_some(), "category in {line:?}");
                if let Some(versions) = fields.get(4) {
                    assert!(versions_of(versions).is_some(), "versions in {line:?}");
                }
            }
        }
    }

    #[test]
    fn rows_apply_to_their_versions_only() {
        assert!(row_applies("", 3));
        assert!(row_applies("4-", 4) && !row_applies("4-", 3));
        assert!(row_applies("2-3", 3) && !row_applies("2-3", 4));
        assert!(!row_applies("four", 4));
        // Version 4 named the AI assistants that version 3 took for plain referrers.
        assert_eq!(by_host("meta.ai", 3), None);
        assert_eq!(by_host("meta.ai", 4).and_then(|k| k.category), Some(Category::Ai));
        assert_eq!(by_utm("kimi", 3), None);
        assert_eq!(by_utm("kimi", 4).map(|k| k.name), Some("Kimi"));
        assert_eq!(by_host("chatgpt.com", 3).map(|k| k.name), Some("ChatGPT"));
    }

    #[test]
    fn hosts_match_exactly_by_subdomain_and_by_wildcard() {
        let name = |h: &str| by_host(h, crate::PROCESSOR_VERSION).map(|k| k.name);
        assert_eq!(name("google.com"), Some("Google"));
        assert_eq!(name("google.co.uk"), Some("Google"));
        assert_eq!(name("www.google.com.br"), Some("Google"));
        assert_eq!(name("news.google.de"), Some("Google"));
        assert_eq!(name("mail.google.com"), Some("Gmail"));
        assert_eq!(name("gemini.google.com"), Some("Gemini"));
        assert_eq!(name("m.facebook.com"), Some("Facebook"));
        assert_eq!(name("l.instagram.com"), Some("Instagram"));
        assert_eq!(name("t.co"), Some("Twitter"));
        assert_eq!(name("news.ycombinator.com"), Some("Hacker News"));
        assert_eq!(name("google.example.org"), None);
        assert_eq!(name("notgoogle.com"), None);
        assert_eq!(name("example.com"), None);
        assert_eq!(name("localhost"), None);
    }

    #[test]
    fn utm_values_resolve_through_aliases_names_and_hosts() {
        let name = |v: &str| by_utm(v, crate::PROCESSOR_VERSION).map(|k| k.name);
        assert_eq!(name("fb"), Some("Facebook"));
        assert_eq!(name("facebook"), Some("Facebook"));
        assert_eq!(name("google"), Some("Google"));
        assert_eq!(name("ig"), Some("Instagram"));
        assert_eq!(name("hacker news"), Some("Hacker News"));
        assert_eq!(name("www.reddit.com"), Some("Reddit"));
        assert_eq!(name("chatgpt.com"), Some("ChatGPT"));
        assert_eq!(name("spring_sale"), None);
        let category = |v: &str| by_utm(v, crate::PROCESSOR_VERSION).and_then(|k| k.category);
        assert_eq!(category("google"), Some(Category::Search));
        assert_eq!(category("youtube"), Some(Category::Video));
        assert_eq!(category("wikipedia"), None);
    }
}
