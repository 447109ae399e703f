//! Which rollup answers a query, and turning its rows into the same partial aggregates the raw
//! path produces.
//!
//! A rollup covers a query when every dimension the query groups or filters by is one of the
//! rollup's. Visit dimensions split sessions into disjoint groups, so rows add up whatever
//! the filter. An event dimension (pages, hostnames, event names) puts a session in the row of
//! every value its events had: its rows add up only when the query groups by that dimension
//! and does not filter on it, or does not group by it and filters it to exactly one value
//! (`is` with one value, as a condition all others must meet too). Anything else is answered
//! from events.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMillisecondType, UInt64Type};

use crate::aggregate::{Acc, KeyPart, Partial, Spec};
use crate::dimension::Dimension;
use crate::error::{Error, Result};
use crate::filter::{Filter, Leaf, Op};
use crate::rollups::{self, Rollup};
use crate::sketch::{Hll, extend_from_set};
use crate::time::bucket_start;

const HOUR_MS: i64 = 3_600_000;

/// Whether `leaf` is the filter's only condition on `dimension` and one every row must meet:
/// the whole filter, or a direct child of the top-level `and`.
fn single_conjunct<'a>(filter: &'a Filter, dimension: &Dimension) -> Option<&'a Leaf> {
    let on_dimension: Vec<&Leaf> = filter.leaves().into_iter().filter(|l| l.dimension == *dimension).collect();
    let [leaf] = on_dimension.as_slice() else { return None };
    let top = match filter {
        Filter::Leaf(l) => std::ptr::eq(l, *leaf),
        Filter::And(children) => children.iter().any(|c| matches!(c, Filter::Leaf(l) if std::ptr::eq(l, *leaf))),
        _ => false,
    };
    top.then_some(*leaf)
}

/// Whether `rollup` can answer `spec` (see the module docs).
pub fn covers(rollup: &Rollup, spec: &Spec) -> bool {
    if !rollup.plannable || spec.current_since.is_some() {
        return false;
    }
    let has = |d: &Dimension| matches!(d, Dimension::Time(_)) || rollup.dimensions.iter().any(|(x, _)| x == d);
    if !spec.dimensions.iter().all(has) {
        return false;
    }
    let leaves = spec.filter.as_ref().map(|f| f.leaves()).unwrap_or_default();
    if !leaves.iter().all(|l| has(&l.dimension)) {
        return false;
    }
    let Some(event) = &rollup.event_dimension else { return true };
    let grouped = spec.dimensions.contains(event);
    let filtered = leaves.iter().any(|l| l.dimension == *event);
    match (grouped, filtered) {
        (true, false) => true,
        (false, true) => spec
            .filter
            .as_ref()
            .and_then(|f| single_conjunct(f, event))
            .is_some_and(|l| l.op == Op::Is && l.values.len() == 1 && l.case_sensitive),
        // Summing the rows of several values counts a session once per value.
        _ => false,
    }
}

/// The smallest rollup that covers `spec`.
pub fn choose(spec: &Spec) -> Option<&'static Rollup> {
    rollups::all().iter().filter(|r| covers(r, spec)).min_by_key(|r| r.rank)
}

/// The `rollups` columns reading `rollup`'s rows needs.
pub fn columns(rollup: &Rollup, fast: bool) -> Vec<&'static str> {
    let mut out = vec!["timestamp", "rules"];
    out.extend(rollup.dimensions.iter().map(|(_, c)| *c));
    out.extend(hourglass_types::schema::ROLLUP_COUNTS);
    out.push("revenue");
    out.push(if fast { "visitors_hll" } else { "visitors" });
    out
}

/// A rollup batch's columns, typed.
struct Columns {
    hours: Vec<i64>,
    dims: Vec<(Dimension, StringArray)>,
    counts: Vec<Int64Array>,
    revenue: Float64Array,
    visitors: BinaryArray,
}

fn column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a Arc<dyn Array>> {
    batch.column_by_name(name).ok_or(Error::MissingColumn(name))
}

impl Columns {
    fn new(batch: &RecordBatch, rollup: &Rollup, fast: bool) -> Result<Self> {
        let bad = Error::MissingColumn;
        let hours = column(batch, "timestamp")?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or(bad("timestamp"))?
            .values()
            .iter()
            .map(|t| t.div_euclid(HOUR_MS))
            .collect();
        let mut dims = Vec::new();
        for (d, name) in &rollup.dimensions {
            let plain = cast(column(batch, name)?, &DataType::Utf8)?;
            dims.push((d.clone(), plain.as_string_opt::<i32>().ok_or(bad(name))?.clone()));
        }
        let mut counts = Vec::new();
        for name in hourglass_types::schema::ROLLUP_COUNTS {
            counts.push(column(batch, name)?.as_primitive_opt::<Int64Type>().ok_or(bad(name))?.clone());
        }
        let revenue = column(batch, "revenue")?.as_primitive_opt::<Float64Type>().ok_or(bad("revenue"))?.clone();
        let name = if fast { "visitors_hll" } else { "visitors" };
        let visitors = cast(column(batch, name)?, &DataType::Binary)?.as_binary_opt::<i32>().ok_or(bad(name))?.clone();
        Ok(Self { hours, dims, counts, revenue, visitors })
    }

    fn label(&self, dimension: &Dimension, row: usize) -> Option<&str> {
        let (_, array) = self.dims.iter().find(|(d, _)| d == dimension)?;
        Some(if array.is_valid(row) { array.value(row) } else { dimension.empty_label() })
    }
}

/// The hours of `batches` (rows of `rollup`) whose rows were computed under other settings
/// than `rules`.
pub fn mismatched_hours(batches: &[RecordBatch], rules: u64) -> Result<BTreeSet<i64>> {
    let mut out = BTreeSet::new();
    for batch in batches {
        let times = column(batch, "timestamp")?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or(Error::MissingColumn("timestamp"))?;
        let found = column(batch, "rules")?.as_primitive_opt::<UInt64Type>().ok_or(Error::MissingColumn("rules"))?;
        for row in 0..batch.num_rows() {
            if found.value(row) != rules {
                out.insert(times.value(row).div_euclid(HOUR_MS));
            }
        }
    }
    Ok(out)
}

/// Aggregates `spec` over the rows of `rollup` in `batches` whose hour is in `hours`. With
/// `fast`, visitors come as sketches rather than exact sets.
pub fn aggregate(
    batches: &[RecordBatch],
    rollup: &Rollup,
    spec: &Spec,
    hours: &BTreeSet<i64>,
    fast: bool,
) -> Result<Partial> {
    let mut rows: Partial = Partial::new();
    let mut key = Vec::with_capacity(spec.dimensions.len());
    for batch in batches {
        let c = Columns::new(batch, rollup, fast)?;
        for row in 0..batch.num_rows() {
            let hour = c.hours[row];
            if !hours.contains(&hour) {
                continue;
            }
            if let Some(filter) = &spec.filter
                && !filter.eval(&mut |leaf| c.label(&leaf.dimension, row).is_some_and(|label| leaf.matches(label)))
            {
                continue;
            }
            key.clear();
            for d in &spec.dimensions {
                key.push(match d {
                    Dimension::Time(g) => KeyPart::Time(bucket_start(*g, spec.tz, hour * HOUR_MS)),
                    other => KeyPart::Text(Arc::from(c.label(other, row).unwrap_or(other.empty_label()))),
                });
            }
            let acc: &mut Acc = match rows.get_mut(&key) {
                Some(acc) => acc,
                None => rows.entry(key.clone()).or_default(),
            };
            let n = |i: usize| c.counts[i].value(row).max(0) as u64;
            acc.events += n(0);
            acc.pageviews += n(1);
            acc.visits += n(2);
            acc.bounces += n(3);
            acc.duration += n(4);
            acc.session_pageviews += n(5);
            acc.engaged += n(6);
            acc.revenue += c.revenue.value(row);
            if c.visitors.is_valid(row) {
                let bytes = c.visitors.value(row);
                if fast {
                    acc.sketch.get_or_insert_with(Default::default).merge_bytes(bytes);
                } else {
                    extend_from_set(&mut acc.visitors, bytes);
                }
            }
        }
    }
    Ok(rows)
}

/// A sketch holding everything `sketch` and `exact` count.
pub fn union_estimate(sketch: &Hll, exact: &std::collections::HashSet<u64>) -> f64 {
    let mut all = sketch.clone();
    for id in exact {
        all.insert(*id);
    }
    all.estimate()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_filters;
    use serde_json::json;

    fn spec(dims: &[&str], filters: serde_json::Value) -> Spec {
        Spec {
            dimensions: dims.iter().map(|d| Dimension::parse(d).expect("dim")).collect(),
            filter: parse_filters(&filters).expect("filters"),
            tz: chrono_tz::Tz::UTC,
            events: true,
            sessions: true,
            current_since: None,
        }
    }

    fn chosen(dims: &[&str], filters: serde_json::Value) -> Option<&'static str> {
        choose(&spec(dims, filters)).map(|r| r.name)
    }

    #[test]
    fn the_smallest_covering_rollup_is_chosen() {
        assert_eq!(chosen(&[], json!([])), Some("totals"));
        assert_eq!(chosen(&["time:day"], json!([])), Some("totals"));
        assert_eq!(chosen(&["visit:source"], json!([])), Some("sources"));
        assert_eq!(chosen(&["visit:referrer"], json!([])), Some("referrers"));
        assert_eq!(chosen(&["visit:device"], json!([["is", "visit:browser", ["Chrome"]]])), Some("technology"));
        assert_eq!(chosen(&["visit:country", "time:hour"], json!([])), Some("geography"));
        assert_eq!(chosen(&["event:page"], json!([])), Some("pages"));
        assert_eq!(chosen(&["visit:entry_page"], json!([])), Some("entry_pages"));
    }

    #[test]
    fn event_dimensions_cover_only_what_adds_up() {
        assert_eq!(chosen(&[], json!([["is", "event:page", ["/a"]]])), Some("pages"));
        assert_eq!(chosen(&["time:day"], json!([["is", "event:name", ["signup"]]])), Some("event_names"));
        assert_eq!(chosen(&[], json!([["is", "event:page", ["/a", "/b"]]])), None, "a session may visit both");
        assert_eq!(chosen(&[], json!([["contains", "event:page", ["/blog"]]])), None);
        assert_eq!(chosen(&[], json!([["is_not", "event:page", ["/a"]]])), None);
        assert_eq!(chosen(&["event:page"], json!([["is", "event:page", ["/a"]]])), None);
        assert_eq!(chosen(&[], json!([["or", [["is", "event:page", ["/a"]], ["is", "visit:source", ["x"]]]]])), None);
        assert_eq!(chosen(&["visit:source"], json!([["is", "event:name", ["signup"]]])), None, "no rollup has both");
        assert_eq!(chosen(&["event:props:plan"], json!([])), None);
    }
}
