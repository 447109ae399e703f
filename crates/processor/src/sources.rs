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

/// The parsed table: exact hosts, `label.*` wildcards and utm aliases.
struct Table {
    hosts: HashMap<&'static str, Known>,
    wildcards: HashMap<&'static str, Known>,
    aliases: HashMap<&'static str, Known>,
    by_name: HashMap<String, Known>,
}

const SOURCE_TABLE: &str = include_str!("../data/sources.tsv");

static TABLE: LazyLock<Table> = LazyLock::new(|| parse_table(SOURCE_TABLE));

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

fn parse_table(text: &'static str) -> Table {
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

/// The known source of a referrer host (lower-case, with or without `www.`): the most specific
/// exact host first, then subdomains of a listed host, then `label.*` wildcards.
pub fn by_host(host: &str) -> Option<Known> {
    let table = &*TABLE;
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
/// own name (`facebook`), or a referrer host written as the value (`news.ycombinator.com`).
pub fn by_utm(value: &str) -> Option<Known> {
    let table = &*TABLE;
    table
        .aliases
        .get(value)
        .or_else(|| table.by_name.get(value))
        .copied()
        .or_else(|| if value.contains('.') { by_host(value.strip_prefix("www.").unwrap_or(value)) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_line_has_four_fields_and_a_known_category() {
        for line in SOURCE_TABLE.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "line {line:?}");
            if fields[0] != "name" {
                assert!(fields[1] == "-" || parse_category(fields[1]).is_some(), "category in {line:?}");
            }
        }
    }

    #[test]
    fn hosts_match_exactly_by_subdomain_and_by_wildcard() {
        let name = |h: &str| by_host(h).map(|k| k.name);
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
        let name = |v: &str| by_utm(v).map(|k| k.name);
        assert_eq!(name("fb"), Some("Facebook"));
        assert_eq!(name("facebook"), Some("Facebook"));
        assert_eq!(name("google"), Some("Google"));
        assert_eq!(name("ig"), Some("Instagram"));
        assert_eq!(name("hacker news"), Some("Hacker News"));
        assert_eq!(name("www.reddit.com"), Some("Reddit"));
        assert_eq!(name("chatgpt.com"), Some("ChatGPT"));
        assert_eq!(name("spring_sale"), None);
        let category = |v: &str| by_utm(v).and_then(|k| k.category);
        assert_eq!(category("google"), Some(Category::Search));
        assert_eq!(category("youtube"), Some(Category::Video));
        assert_eq!(category("wikipedia"), None);
    }
}
