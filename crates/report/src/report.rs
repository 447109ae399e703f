//! Answering a report: ranges in the request's zone, the queries a request decomposes into,
//! their partial aggregates, and the response with metrics, totals, comparison and labels.
//!
//! A request becomes up to three queries over the same data. The main one gives every
//! metric but two. `bounce_rate`, when an `event:page` filter or dimension is present, is
//! the bounce rate of the sessions *entering* on the pages (ANALYTICS.md), so it comes from
//! the same query with `event:page` read as `visit:entry_page`. `conversion_rate` divides a
//! row's visitors by the visitors of the same row without the goal, so its denominator comes
//! from the query with every `event:name` condition removed. Totals are the same queries
//! with no dimensions: computed, never summed from rows.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono_tz::Tz;
use hourglass_processor::sessions::SessionRules;
use serde_json::{Value, json};

use crate::aggregate::{Acc, KeyPart, Partial, RowKey, Spec, retarget, without};
use crate::dimension::{Dimension, EventDim, Grain, VisitDim};
use crate::filter::Filter;
use crate::metric::{Exact, Metric, change};
use crate::request::{Compare, OrderKey, ReportKind, ReportRequest};
use crate::time::{self, Resolved, TimeRange};

/// Length of the realtime report's range.
pub const REALTIME_MS: i64 = 30 * 60_000;
/// How far back `current_visitors` looks.
pub const CURRENT_MS: i64 = 5 * 60_000;
/// Most time buckets one range may have.
pub const MAX_BUCKETS: usize = 20_000;

/// The queries one request decomposes into, for rows or for totals.
#[derive(Debug, Clone)]
pub struct Specs {
    /// Every metric except the two below.
    pub main: Spec,
    /// `bounce_rate` with `event:page` read as the entry page.
    pub bounce: Option<Spec>,
    /// `conversion_rate`'s denominator: without the goal.
    pub conversion: Option<Spec>,
}

/// Partial aggregates of each query of [`Specs`] for one range.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Of `Specs::main`.
    pub main: Partial,
    /// Of `Specs::bounce`.
    pub bounce: Option<Partial>,
    /// Of `Specs::conversion`.
    pub conversion: Option<Partial>,
}

fn page() -> Dimension {
    Dimension::Event(EventDim::Page)
}

fn goal() -> Dimension {
    Dimension::Event(EventDim::Name)
}

/// The queries for `dimensions` (the request's, or none for totals).
pub fn specs(request: &ReportRequest, dimensions: &[Dimension], tz: Tz, now_ms: i64) -> Specs {
    let wants = |m: Metric| request.metrics.contains(&m);
    let current_since = wants(Metric::CurrentVisitors).then_some(now_ms - CURRENT_MS);
    let main = Spec {
        dimensions: dimensions.to_vec(),
        filter: request.filter.clone(),
        tz,
        events: true,
        sessions: true,
        current_since,
    };
    let page_involved = dimensions.contains(&page())
        || request.filter.as_ref().is_some_and(|f| f.leaves().iter().any(|l| l.dimension == page()));
    let entry = Dimension::Visit(VisitDim::EntryPage);
    let bounce = (wants(Metric::BounceRate) && page_involved).then(|| Spec {
        dimensions: dimensions.iter().map(|d| if *d == page() { entry.clone() } else { d.clone() }).collect(),
        filter: request.filter.as_ref().map(|f| retarget(f, &page(), &entry)),
        tz,
        events: false,
        sessions: true,
        current_since: None,
    });
    let conversion = wants(Metric::ConversionRate).then(|| Spec {
        dimensions: dimensions.iter().filter(|d| **d != goal()).cloned().collect(),
        filter: request.filter.as_ref().map(|f| without(f, &goal())),
        tz,
        events: false,
        sessions: true,
        current_since: None,
    });
    Specs { main, bounce, conversion }
}

/// Whether the request needs events' props.
pub fn needs_props(request: &ReportRequest) -> bool {
    let is_prop = |d: &Dimension| matches!(d, Dimension::Event(EventDim::Prop(_)));
    request.dimensions.iter().any(is_prop)
        || request.filter.as_ref().is_some_and(|f| f.leaves().iter().any(|l| is_prop(&l.dimension)))
}

/// The ranges a request reads.
#[derive(Debug, Clone, Copy)]
pub struct Ranges {
    /// The zone.
    pub tz: Tz,
    /// The report's range.
    pub main: Resolved,
    /// The comparison's, if asked for.
    pub compare: Option<Resolved>,
}

/// Resolves the request's ranges; `first_event_ms` serves the `all` preset.
pub fn ranges(
    request: &ReportRequest,
    tz: Tz,
    now_ms: i64,
    first_event_ms: Option<i64>,
) -> Result<Ranges, crate::error::RequestError> {
    use crate::error::{RequestError, code};
    let main = match (&request.kind, &request.range) {
        (ReportKind::Realtime, _) | (_, None) => {
            Resolved { range: TimeRange { start_ms: now_ms - REALTIME_MS, end_ms: now_ms + 1 }, days: None }
        }
        (ReportKind::Standard, Some(spec)) => time::resolve(spec, tz, now_ms, first_event_ms),
    };
    if main.range.end_ms <= main.range.start_ms {
        return Err(RequestError::new(
            code::INVALID_DATE_RANGE,
            "date_range",
            "the range is empty: it must end after it starts",
        ));
    }
    let compare = match &request.compare {
        None => None,
        Some(Compare::PreviousPeriod) => Some(time::previous_period(tz, &main)),
        Some(Compare::YearOverYear) => Some(time::year_over_year(tz, &main)),
        Some(Compare::Custom(spec)) => {
            let r = time::resolve(spec, tz, now_ms, first_event_ms);
            if r.range.end_ms <= r.range.start_ms {
                return Err(RequestError::new(code::INVALID_COMPARE, "compare.date_range", "the range is empty"));
            }
            Some(r)
        }
    };
    if let Some((_, grain)) = request.time_dimension() {
        for r in std::iter::once(&main).chain(compare.iter()) {
            if time::buckets(grain, tz, &r.range, MAX_BUCKETS + 1).len() > MAX_BUCKETS {
                return Err(RequestError::new(
                    code::INVALID_DATE_RANGE,
                    "date_range",
                    format!("more than {MAX_BUCKETS} time buckets; use a coarser time dimension"),
                ));
            }
        }
    }
    Ok(Ranges { tz, main, compare })
}

/// The exact value of `metric` for a row.
fn value(metric: Metric, main: Option<&Acc>, bounce: Option<&Acc>, conversion: Option<&Acc>) -> Option<Exact> {
    let empty = Acc::default();
    let m = main.unwrap_or(&empty);
    let visits = i128::from(m.visits);
    match metric {
        Metric::Visitors => Some(Exact::count(m.visitor_count())),
        Metric::Visits => Some(Exact::count(m.visits)),
        Metric::Pageviews => Some(Exact::count(m.pageviews)),
        Metric::Events => Some(Exact::count(m.events)),
        Metric::ViewsPerVisit => Exact::ratio(i128::from(m.session_pageviews), visits),
        Metric::BounceRate => {
            let b = bounce?;
            Exact::ratio(100 * i128::from(b.bounces), i128::from(b.visits))
        }
        Metric::VisitDuration => Exact::ratio(i128::from(m.duration), visits),
        Metric::EngagementRate => Exact::ratio(100 * i128::from(m.engaged), visits),
        Metric::ConversionRate => {
            let d = conversion?;
            Exact::ratio(100 * i128::from(m.visitor_count()), i128::from(d.visitor_count()))
        }
        Metric::Revenue => Some(Exact::Float(m.revenue)),
        Metric::CurrentVisitors => Some(Exact::count(m.current.len() as u64)),
    }
}

/// The metric values of the row `key` of `answer` (the bounce and conversion rows are found
/// by the key's mapping onto their queries).
fn row_values(
    request: &ReportRequest,
    specs: &Specs,
    answer: &Answer,
    key: &RowKey,
    dims: &[Dimension],
) -> Vec<Option<Exact>> {
    let main = answer.main.get(key);
    // The bounce query's key has the same labels (the entry page stands where the page was).
    let bounce = match (&specs.bounce, &answer.bounce) {
        (Some(_), Some(partial)) => partial.get(key),
        _ => main,
    };
    let conversion_key: RowKey = dims.iter().zip(key).filter(|(d, _)| **d != goal()).map(|(_, k)| k.clone()).collect();
    let conversion = answer.conversion.as_ref().and_then(|p| p.get(&conversion_key));
    request.metrics.iter().map(|m| value(*m, main, bounce, conversion)).collect()
}

/// The shown value of an exact one.
fn shown(metric: Metric, v: Option<Exact>) -> Option<f64> {
    v.map(|x| x.rounded(metric.decimals()))
}

fn json_number(metric: Metric, v: Option<f64>) -> Value {
    match v {
        None => Value::Null,
        Some(x) if metric.decimals() == 0 && x.fract() == 0.0 && x.abs() < 9e15 => json!(x as i64),
        Some(x) => json!(x),
    }
}

/// One computed row.
struct Row {
    key: RowKey,
    exact: Vec<Option<Exact>>,
    shown: Vec<Option<f64>>,
}

fn compare_keys(a: &KeyPart, b: &KeyPart) -> Ordering {
    a.cmp(b)
}

fn compare_metric(a: Option<Exact>, b: Option<Exact>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        // Nulls last, whichever the direction.
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => exact_cmp(x, y),
    }
}

fn exact_cmp(x: Exact, y: Exact) -> Ordering {
    match (x, y) {
        (Exact::Ratio(a, b), Exact::Ratio(c, d)) => (a * d).cmp(&(c * b)),
        _ => x.to_f64().total_cmp(&y.to_f64()),
    }
}

/// Where the answer came from and how fresh it is, for `meta`.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// `raw`, `rollup:<name>` or a mix.
    pub path: String,
    /// Instant up to which the data is complete.
    pub fresh_through_ms: i64,
    /// Whether sketches were used.
    pub approximate: Option<f64>,
    /// Notes for the caller.
    pub warnings: Vec<String>,
    /// Whole UTC hours answered from rollups.
    pub rollup_hours: usize,
    /// Spans answered from events.
    pub raw_spans: usize,
}

/// Everything the response is built from.
pub struct Computed<'a> {
    /// The request.
    pub request: &'a ReportRequest,
    /// Its ranges.
    pub ranges: Ranges,
    /// Row queries.
    pub row_specs: Specs,
    /// Total queries.
    pub total_specs: Specs,
    /// Rows of the main range.
    pub rows: Answer,
    /// Totals of the main range.
    pub totals: Answer,
    /// Rows and totals of the comparison range.
    pub compare: Option<(Answer, Answer)>,
    /// The rules used.
    pub rules: &'a SessionRules,
    /// Where it came from.
    pub provenance: Provenance,
}

fn range_json(tz: Tz, r: &Resolved) -> Value {
    let mut out = json!({"from": time::rfc3339(tz, r.range.start_ms), "to": time::rfc3339(tz, r.range.end_ms)});
    if let Some((first, last)) = r.days {
        out["first_day"] = json!(first.format("%Y-%m-%d").to_string());
        out["last_day"] = json!(last.format("%Y-%m-%d").to_string());
    }
    out
}

/// Builds the response body (without `meta.elapsed_ms` and `meta.cache_hit`, which the
/// caller sets).
pub fn respond(c: &Computed<'_>) -> Value {
    let request = c.request;
    let tz = c.ranges.tz;
    let dims = &request.dimensions;
    let time_dim = request.time_dimension();

    let mut rows: Vec<Row> = c
        .rows
        .main
        .iter()
        .filter(|(_, acc)| !acc.is_empty())
        .map(|(key, _)| {
            let exact = row_values(request, &c.row_specs, &c.rows, key, dims);
            let shown = request.metrics.iter().zip(&exact).map(|(m, v)| shown(*m, *v)).collect();
            Row { key: key.clone(), exact, shown }
        })
        .filter(|row| {
            request.having.iter().all(|h| {
                let i = request.metrics.iter().position(|m| *m == h.metric).unwrap_or(0);
                h.passes(row.shown[i])
            })
        })
        .collect();
    let order = request.effective_order();
    rows.sort_by(|a, b| {
        for o in &order {
            let ord = match o.key {
                OrderKey::Metric(i) => {
                    let ord = compare_metric(a.exact[i], b.exact[i]);
                    // Nulls stay last when descending.
                    match (a.exact[i].is_none(), b.exact[i].is_none()) {
                        (false, false) if o.descending => ord.reverse(),
                        _ => ord,
                    }
                }
                OrderKey::Dimension(i) => {
                    let ord = compare_keys(&a.key[i], &b.key[i]);
                    if o.descending { ord.reverse() } else { ord }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    let total_rows = rows.len();
    let page: Vec<&Row> = rows.iter().skip(request.offset).take(request.limit).collect();

    // Comparison rows are matched by their non-time labels and the time bucket's position.
    let main_buckets: Vec<i64> =
        time_dim.map(|(_, g)| time::buckets(g, tz, &c.ranges.main.range, MAX_BUCKETS)).unwrap_or_default();
    let compare_buckets: Vec<i64> = match (time_dim, &c.ranges.compare) {
        (Some((_, g)), Some(r)) => time::buckets(g, tz, &r.range, MAX_BUCKETS),
        _ => Vec::new(),
    };
    let bucket_index: HashMap<i64, usize> = main_buckets.iter().enumerate().map(|(i, b)| (*b, i)).collect();
    let compare_key = |key: &RowKey| -> Option<RowKey> {
        let mut k = key.clone();
        if let Some((i, _)) = time_dim
            && let KeyPart::Time(start) = key[i]
        {
            k[i] = KeyPart::Time(*compare_buckets.get(*bucket_index.get(&start)?)?);
        }
        Some(k)
    };

    let label_of = |i: usize, part: &KeyPart, range_start: i64| -> Value {
        match (part, dims[i].grain()) {
            (KeyPart::Time(start), Some(g)) => json!(time::label(g, tz, *start, range_start)),
            (KeyPart::Text(text), _) => json!(text.as_ref()),
            (KeyPart::Time(start), None) => json!(start),
        }
    };
    let metrics_json = |values: &[Option<f64>]| -> Value {
        Value::Array(request.metrics.iter().zip(values).map(|(m, v)| json_number(*m, *v)).collect())
    };
    let comparison_json = |exact: &[Option<Exact>], previous: &[Option<Exact>], dims_json: Option<Value>| -> Value {
        let shown_prev: Vec<Option<f64>> = request.metrics.iter().zip(previous).map(|(m, v)| shown(*m, *v)).collect();
        let changes: Vec<Value> = request
            .metrics
            .iter()
            .zip(exact.iter().zip(previous))
            .map(|(m, (cur, prev))| change(*m, *cur, *prev).map_or(Value::Null, |x| json!(x)))
            .collect();
        let mut out = json!({"metrics": metrics_json(&shown_prev), "change": changes});
        if let Some(d) = dims_json {
            out["dimensions"] = d;
        }
        out
    };

    let mut out_rows = Vec::with_capacity(page.len());
    for row in &page {
        let dims_json: Vec<Value> =
            row.key.iter().enumerate().map(|(i, p)| label_of(i, p, c.ranges.main.range.start_ms)).collect();
        let mut item = json!({"dimensions": dims_json, "metrics": metrics_json(&row.shown)});
        if let (Some((rows_prev, _)), Some(range)) = (&c.compare, &c.ranges.compare) {
            let previous: Vec<Option<Exact>> = match compare_key(&row.key) {
                Some(k) => row_values(request, &c.row_specs, rows_prev, &k, dims),
                None => vec![None; request.metrics.len()],
            };
            let previous_dims = compare_key(&row.key).map(|k| {
                Value::Array(k.iter().enumerate().map(|(i, p)| label_of(i, p, range.range.start_ms)).collect())
            });
            item["comparison"] = comparison_json(&row.exact, &previous, previous_dims);
        }
        out_rows.push(item);
    }

    let goal_filtered = request.filter.as_ref().is_some_and(|f| f.leaves().iter().any(|l| l.dimension == goal()));
    let totals_of = |answer: &Answer| -> Vec<Option<Exact>> {
        let mut values = row_values(request, &c.total_specs, answer, &Vec::new(), &[]);
        for (m, v) in request.metrics.iter().zip(values.iter_mut()) {
            if *m == Metric::ConversionRate && !goal_filtered {
                *v = None;
            }
        }
        values
    };
    let mut body = json!({
        "columns": columns(request),
        "rows": out_rows,
    });
    if request.include.totals {
        let exact = totals_of(&c.totals);
        let shown_totals: Vec<Option<f64>> = request.metrics.iter().zip(&exact).map(|(m, v)| shown(*m, *v)).collect();
        let mut totals = json!({"metrics": metrics_json(&shown_totals)});
        if let Some((_, totals_prev)) = &c.compare {
            totals["comparison"] = comparison_json(&exact, &totals_of(totals_prev), None);
        }
        body["totals"] = totals;
    }

    let mut meta = json!({
        "timezone": tz.name(),
        "date_range": range_json(tz, &c.ranges.main),
        "accuracy": if c.provenance.approximate.is_some() { "fast" } else { "exact" },
        "path": c.provenance.path,
        "rollup_hours": c.provenance.rollup_hours,
        "raw_spans": c.provenance.raw_spans,
        "freshness": {"complete_through": time::rfc3339(tz, c.provenance.fresh_through_ms)},
        "warnings": c.provenance.warnings,
    });
    if let Some(bound) = c.provenance.approximate {
        // Visitor counts (and conversion rates) are HyperLogLog estimates; everything else
        // stays exact.
        meta["error_bound"] = json!({"visitors_relative": bound, "confidence": 0.95});
    }
    if let Some(r) = &c.ranges.compare {
        meta["comparison_range"] = range_json(tz, r);
    }
    if request.include.time_labels
        && let Some((_, grain)) = time_dim
    {
        let labels: Vec<String> =
            main_buckets.iter().map(|b| time::label(grain, tz, *b, c.ranges.main.range.start_ms)).collect();
        meta["time_labels"] = json!(labels);
        if let Some(r) = &c.ranges.compare {
            let labels: Vec<String> =
                compare_buckets.iter().map(|b| time::label(grain, tz, *b, r.range.start_ms)).collect();
            meta["comparison_time_labels"] = json!(labels);
        }
    }
    if request.include.total_rows {
        meta["total_rows"] = json!(total_rows);
    }
    body["meta"] = meta;
    body
}

fn columns(request: &ReportRequest) -> Value {
    let mut out: Vec<Value> = request
        .dimensions
        .iter()
        .map(|d| json!({"name": d.to_string(), "kind": "dimension", "type": if d.grain().is_some() { "time" } else { "string" }}))
        .collect();
    out.extend(request.metrics.iter().map(|m| json!({"name": m.name(), "kind": "metric", "type": m.value_type()})));
    Value::Array(out)
}

/// The request's dimension of time, if any.
pub fn grain(request: &ReportRequest) -> Option<Grain> {
    request.time_dimension().map(|(_, g)| g)
}

/// Whether `filter` has a leaf on `dimension`.
pub fn has_leaf(filter: Option<&Filter>, dimension: &Dimension) -> bool {
    filter.is_some_and(|f| f.leaves().iter().any(|l| l.dimension == *dimension))
}
