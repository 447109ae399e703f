//! Filter trees: `and` / `or` / `not` over leaves `[op, dimension, [values], {case_sensitive}]`,
//! parsed with the JSON path of every part and compiled once into matchers.

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::dimension::Dimension;
use crate::error::{RequestError, code};

/// Most leaves one request's filters may hold.
const MAX_LEAVES: usize = 100;
/// Deepest nesting of `and` / `or` / `not`.
const MAX_DEPTH: usize = 10;
/// Most values one leaf may list.
const MAX_VALUES: usize = 1000;
/// Largest compiled regular expression, in bytes of the automaton.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// A leaf's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// The value is one of the values.
    Is,
    /// The value is none of the values.
    IsNot,
    /// The value contains one of the values.
    Contains,
    /// The value contains none of the values.
    ContainsNot,
    /// The value starts with one of the values.
    StartsWith,
    /// The value ends with one of the values.
    EndsWith,
    /// The value matches one of the regular expressions (Rust `regex` syntax, unanchored).
    Matches,
    /// The value matches none of the regular expressions.
    MatchesNot,
}

/// Every operator with its name.
pub const OPS: [(Op, &str); 8] = [
    (Op::Is, "is"),
    (Op::IsNot, "is_not"),
    (Op::Contains, "contains"),
    (Op::ContainsNot, "contains_not"),
    (Op::StartsWith, "starts_with"),
    (Op::EndsWith, "ends_with"),
    (Op::Matches, "matches"),
    (Op::MatchesNot, "matches_not"),
];

impl Op {
    /// Whether the operator is the negation of a positive one (`is_not`, `contains_not`,
    /// `matches_not`): on sessions it is true when no event matches the positive form.
    pub fn is_negative(self) -> bool {
        matches!(self, Self::IsNot | Self::ContainsNot | Self::MatchesNot)
    }

    /// The operator's name.
    pub fn name(self) -> &'static str {
        OPS.iter().find(|(o, _)| *o == self).map_or("?", |(_, n)| n)
    }
}

/// A compiled test of one value against a leaf's values (its positive form).
#[derive(Debug, Clone)]
enum Matcher {
    Equal(Vec<String>),
    Contains(Vec<String>),
    StartsWith(Vec<String>),
    EndsWith(Vec<String>),
    Regex(Vec<Regex>),
}

/// One condition on one dimension.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The operator.
    pub op: Op,
    /// The dimension tested (never a time dimension).
    pub dimension: Dimension,
    /// The values as given.
    pub values: Vec<String>,
    /// Whether case matters (default true).
    pub case_sensitive: bool,
    matcher: Matcher,
}

impl Leaf {
    /// Builds a leaf (values already validated); `Err` carries a bad regex's message and index.
    pub fn new(
        op: Op,
        dimension: Dimension,
        values: Vec<String>,
        case_sensitive: bool,
    ) -> Result<Self, (usize, String)> {
        let folded = |values: &[String]| -> Vec<String> {
            if case_sensitive { values.to_vec() } else { values.iter().map(|v| v.to_lowercase()).collect() }
        };
        let matcher = match op {
            Op::Is | Op::IsNot => Matcher::Equal(folded(&values)),
            Op::Contains | Op::ContainsNot => Matcher::Contains(folded(&values)),
            Op::StartsWith => Matcher::StartsWith(folded(&values)),
            Op::EndsWith => Matcher::EndsWith(folded(&values)),
            Op::Matches | Op::MatchesNot => {
                let mut compiled = Vec::with_capacity(values.len());
                for (i, pattern) in values.iter().enumerate() {
                    let regex = RegexBuilder::new(pattern)
                        .case_insensitive(!case_sensitive)
                        .size_limit(MAX_REGEX_BYTES)
                        .build()
                        .map_err(|e| (i, e.to_string()))?;
                    compiled.push(regex);
                }
                Matcher::Regex(compiled)
            }
        };
        Ok(Self { op, dimension, values, case_sensitive, matcher })
    }

    /// Whether `label` (a dimension value as reports show it) satisfies the positive form
    /// of the operator (`is` for `is_not`, and so on).
    pub fn matches_positive(&self, label: &str) -> bool {
        let lowered;
        let value = if self.case_sensitive || matches!(self.matcher, Matcher::Regex(_)) {
            label
        } else {
            lowered = label.to_lowercase();
            &lowered
        };
        match &self.matcher {
            Matcher::Equal(values) => values.iter().any(|v| v == value),
            Matcher::Contains(values) => values.iter().any(|v| value.contains(v.as_str())),
            Matcher::StartsWith(values) => values.iter().any(|v| value.starts_with(v.as_str())),
            Matcher::EndsWith(values) => values.iter().any(|v| value.ends_with(v.as_str())),
            Matcher::Regex(patterns) => patterns.iter().any(|r| r.is_match(value)),
        }
    }

    /// Whether `label` satisfies the leaf itself.
    pub fn matches(&self, label: &str) -> bool {
        self.matches_positive(label) != self.op.is_negative()
    }

    /// The leaf as JSON, for cache keys and echoing.
    pub fn to_json(&self) -> Value {
        let mut leaf = vec![
            Value::from(self.op.name()),
            Value::from(self.dimension.to_string()),
            Value::from(self.values.clone()),
        ];
        if !self.case_sensitive {
            leaf.push(serde_json::json!({"case_sensitive": false}));
        }
        Value::Array(leaf)
    }
}

/// A filter tree.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Every child holds.
    And(Vec<Filter>),
    /// Some child holds.
    Or(Vec<Filter>),
    /// The child does not hold.
    Not(Box<Filter>),
    /// A condition on one dimension.
    Leaf(Leaf),
}

impl Filter {
    /// Every leaf, depth first.
    pub fn leaves(&self) -> Vec<&Leaf> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, out: &mut Vec<&'a Leaf>) {
        match self {
            Self::And(children) | Self::Or(children) => children.iter().for_each(|c| c.collect_leaves(out)),
            Self::Not(child) => child.collect_leaves(out),
            Self::Leaf(leaf) => out.push(leaf),
        }
    }

    /// Evaluates the tree, `leaf` deciding each leaf.
    pub fn eval(&self, leaf: &mut impl FnMut(&Leaf) -> bool) -> bool {
        match self {
            Self::And(children) => children.iter().all(|c| c.eval(leaf)),
            Self::Or(children) => children.iter().any(|c| c.eval(leaf)),
            Self::Not(child) => !child.eval(leaf),
            Self::Leaf(l) => leaf(l),
        }
    }

    /// The tree with every leaf `replace` maps to `Some(tree)` replaced by that tree.
    pub fn map_leaves(&self, replace: &impl Fn(&Leaf) -> Option<Filter>) -> Filter {
        match self {
            Self::And(children) => Self::And(children.iter().map(|c| c.map_leaves(replace)).collect()),
            Self::Or(children) => Self::Or(children.iter().map(|c| c.map_leaves(replace)).collect()),
            Self::Not(child) => Self::Not(Box::new(child.map_leaves(replace))),
            Self::Leaf(leaf) => replace(leaf).unwrap_or_else(|| Self::Leaf(leaf.clone())),
        }
    }

    /// The tree as JSON, for cache keys.
    pub fn to_json(&self) -> Value {
        match self {
            Self::And(children) => serde_json::json!(["and", children.iter().map(Filter::to_json).collect::<Vec<_>>()]),
            Self::Or(children) => serde_json::json!(["or", children.iter().map(Filter::to_json).collect::<Vec<_>>()]),
            Self::Not(child) => serde_json::json!(["not", child.to_json()]),
            Self::Leaf(leaf) => leaf.to_json(),
        }
    }

    /// A filter that always holds.
    pub fn always() -> Filter {
        Self::And(Vec::new())
    }
}

/// Parses the request's `filters` (a list, all of which must hold) into one tree.
pub fn parse_filters(value: &Value) -> Result<Option<Filter>, RequestError> {
    let list = value.as_array().ok_or_else(|| {
        RequestError::new(code::INVALID_FILTER, "filters", "filters must be a list of filter expressions")
    })?;
    if list.is_empty() {
        return Ok(None);
    }
    let mut state = ParseState { leaves: 0 };
    let children = list
        .iter()
        .enumerate()
        .map(|(i, f)| parse_expr(f, &format!("filters[{i}]"), 1, &mut state))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(if children.len() == 1 {
        children.into_iter().next().unwrap_or_else(Filter::always)
    } else {
        Filter::And(children)
    }))
}

struct ParseState {
    leaves: usize,
}

fn bad(path: &str, message: impl Into<String>) -> RequestError {
    RequestError::new(code::INVALID_FILTER, path, message)
}

fn parse_expr(value: &Value, path: &str, depth: usize, state: &mut ParseState) -> Result<Filter, RequestError> {
    if depth > MAX_DEPTH {
        return Err(bad(path, format!("filters nest at most {MAX_DEPTH} deep")));
    }
    let items = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
        bad(path, "a filter is [op, dimension, [values]] or [\"and\"|\"or\", [filters]] or [\"not\", filter]")
    })?;
    let op = items[0].as_str().ok_or_else(|| bad(&format!("{path}[0]"), "the operator must be a string"))?;
    match op {
        "and" | "or" => {
            if items.len() != 2 {
                return Err(bad(path, format!("{op} takes one list of filters: [\"{op}\", [...]]")));
            }
            let children = items[1]
                .as_array()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| bad(&format!("{path}[1]"), format!("{op} takes a non-empty list of filters")))?;
            let parsed = children
                .iter()
                .enumerate()
                .map(|(i, c)| parse_expr(c, &format!("{path}[1][{i}]"), depth + 1, state))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" { Filter::And(parsed) } else { Filter::Or(parsed) })
        }
        "not" => {
            if items.len() != 2 {
                return Err(bad(path, "not takes one filter: [\"not\", filter]"));
            }
            Ok(Filter::Not(Box::new(parse_expr(&items[1], &format!("{path}[1]"), depth + 1, state)?)))
        }
        _ => parse_leaf(items, path, state).map(Filter::Leaf),
    }
}

fn parse_leaf(items: &[Value], path: &str, state: &mut ParseState) -> Result<Leaf, RequestError> {
    let name = items[0].as_str().unwrap_or_default();
    let op = OPS.iter().find(|(_, n)| *n == name).map(|(o, _)| *o).ok_or_else(|| {
        let known: Vec<&str> = OPS.iter().map(|(_, n)| *n).collect();
        bad(&format!("{path}[0]"), format!("unknown filter operator {name:?}; use and, or, not, {}", known.join(", ")))
    })?;
    if !(3..=4).contains(&items.len()) {
        return Err(bad(
            path,
            format!("a filter is [\"{name}\", dimension, [values]] with optional {{\"case_sensitive\": false}}"),
        ));
    }
    let dim_path = format!("{path}[1]");
    let dim_name = items[1].as_str().ok_or_else(|| bad(&dim_path, "the dimension must be a string"))?;
    let dimension = Dimension::parse(dim_name).ok_or_else(|| {
        RequestError::new(code::UNKNOWN_DIMENSION, &dim_path, format!("unknown dimension {dim_name:?}"))
    })?;
    if dimension.grain().is_some() {
        return Err(bad(&dim_path, "time dimensions cannot be filtered; narrow the date_range instead"));
    }
    let values_path = format!("{path}[2]");
    let raw = items[2]
        .as_array()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(&values_path, "the values must be a non-empty list of strings"))?;
    if raw.len() > MAX_VALUES {
        return Err(bad(&values_path, format!("at most {MAX_VALUES} values")));
    }
    let values = raw
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str().map(str::to_string).ok_or_else(|| bad(&format!("{values_path}[{i}]"), "values are strings"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut case_sensitive = true;
    if let Some(modifiers) = items.get(3) {
        let modifiers_path = format!("{path}[3]");
        let object = modifiers.as_object().ok_or_else(|| bad(&modifiers_path, "modifiers are an object"))?;
        for (key, value) in object {
            match (key.as_str(), value) {
                ("case_sensitive", Value::Bool(b)) => case_sensitive = *b,
                ("case_sensitive", _) => {
                    return Err(bad(&format!("{modifiers_path}.case_sensitive"), "must be true or false"));
                }
                (other, _) => {
                    return Err(bad(&modifiers_path, format!("unknown modifier {other:?}; only case_sensitive")));
                }
            }
        }
    }
    state.leaves += 1;
    if state.leaves > MAX_LEAVES {
        return Err(bad(path, format!("at most {MAX_LEAVES} filter conditions")));
    }
    Leaf::new(op, dimension, values, case_sensitive).map_err(|(i, message)| {
        RequestError::new(
            code::INVALID_REGEX,
            format!("{values_path}[{i}]"),
            format!("invalid regular expression: {message}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Option<Filter>, RequestError> {
        parse_filters(&v)
    }

    #[test]
    fn leaves_match_labels_by_their_operators() {
        let leaf = |op, values: &[&str], cs| {
            Leaf::new(
                op,
                Dimension::parse("event:page").expect("dim"),
                values.iter().map(|v| v.to_string()).collect(),
                cs,
            )
            .expect("leaf")
        };
        assert!(leaf(Op::Is, &["/a", "/b"], true).matches("/b"));
        assert!(!leaf(Op::Is, &["/a"], true).matches("/A"));
        assert!(leaf(Op::Is, &["/a"], false).matches("/A"));
        assert!(leaf(Op::IsNot, &["/a"], true).matches("/b"));
        assert!(leaf(Op::Contains, &["blog"], true).matches("/blog/x"));
        assert!(leaf(Op::ContainsNot, &["blog"], true).matches("/docs"));
        assert!(leaf(Op::StartsWith, &["/do"], true).matches("/docs"));
        assert!(leaf(Op::EndsWith, &["cs"], true).matches("/docs"));
        assert!(leaf(Op::Matches, &["^/b.*g/\\d+$"], true).matches("/blog/12"));
        assert!(leaf(Op::Matches, &["BLOG"], false).matches("/blog"));
        assert!(leaf(Op::MatchesNot, &["^/x"], true).matches("/blog"));
        assert!(leaf(Op::Contains, &["BLOG"], false).matches("/Blog"));
    }

    #[test]
    fn trees_parse_and_evaluate() {
        let f = parse(json!([
            ["is", "visit:country", ["DE"]],
            ["or", [["contains", "event:page", ["/a"]], ["not", ["is", "event:name", ["signup"]]]]]
        ]))
        .expect("valid")
        .expect("some");
        assert_eq!(f.leaves().len(), 3);
        let mut truth = |l: &Leaf| l.values[0] == "DE" || l.values[0] == "signup";
        assert!(!f.eval(&mut truth), "the or needs its page leaf or its negated name leaf");
        let mut truth = |l: &Leaf| l.values[0] == "DE" || l.values[0] == "signup" || l.values[0] == "/a";
        assert!(f.eval(&mut truth));
        assert!(parse(json!([])).expect("valid").is_none());
    }

    #[test]
    fn errors_name_the_json_path() {
        let path = |v: Value| parse(v).expect_err("invalid").path;
        assert_eq!(path(json!([["is", "visit:country", ["DE"]], ["is", "visit:nope", ["x"]]])), "filters[1][1]");
        assert_eq!(path(json!([["matches", "event:page", ["ok", "(unclosed"]]])), "filters[0][2][1]");
        assert_eq!(path(json!([["and", [["is", "event:page", []]]]])), "filters[0][1][0][2]");
        assert_eq!(path(json!([["like", "event:page", ["x"]]])), "filters[0][0]");
        assert_eq!(path(json!([["is", "time:day", ["x"]]])), "filters[0][1]");
        assert_eq!(path(json!({"is": 1})), "filters");
        let regex = parse(json!([["matches", "event:page", ["(unclosed"]]])).expect_err("bad regex");
        assert_eq!(regex.code, code::INVALID_REGEX);
    }
}
