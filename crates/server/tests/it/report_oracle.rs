//! An independent computation of report answers, written from ANALYTICS.md for the report
//! tests: plain loops over the events the test generated, with its own sessions, ranges,
//! buckets, filters, rounding and ordering. It shares no code with the server.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;
use serde_json::{Value, json};

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// One event as the oracle sees it: what the test sent, plus the processor's derived labels
/// (source, channel, device...) read back per event id.
#[derive(Debug, Clone)]
pub struct Ev {
    pub id: String,
    pub ts: i64,
    pub name: String,
    pub path: String,
    pub host: String,
    pub props: BTreeMap<String, String>,
    /// Amount and currency.
    pub revenue: Option<(f64, String)>,
    pub interactive: bool,
    /// The browser behind the visitor, across days (a cookie, or address + agent + site).
    pub browser_key: String,
    /// The visitor by ANALYTICS.md's rules (cookieless visitors change at UTC midnight).
    pub visitor: String,
    pub session_id: Option<String>,
    /// Visit-dimension labels if this event starts a session (`source`, `device`...).
    pub attrs: BTreeMap<String, String>,
}

/// The tenant settings answers depend on.
#[derive(Debug, Clone)]
pub struct Rules {
    pub timeout: i64,
    pub key_events: Vec<String>,
    pub currency: String,
}

#[derive(Debug, Clone)]
pub struct Sess {
    pub events: Vec<usize>,
    pub start: i64,
    pub visitor: String,
    pub pageviews: i64,
    pub bounce: bool,
    pub duration: i64,
    pub engaged: bool,
    pub entry: String,
    pub exit: String,
}

/// Events and their sessions.
pub struct Data {
    pub events: Vec<Ev>,
    pub sessions: Vec<Sess>,
    pub session_of: Vec<usize>,
    pub rules: Rules,
}

impl Data {
    /// Sessions by the batch definition: per browser and client session id (or none), split
    /// where a gap exceeds the timeout; duplicates by event id count once.
    pub fn new(events: &[Ev], rules: Rules) -> Self {
        let mut unique: BTreeMap<String, Ev> = BTreeMap::new();
        for e in events {
            unique.entry(e.id.clone()).or_insert_with(|| e.clone());
        }
        let events: Vec<Ev> = unique.into_values().collect();
        let mut streams: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            streams.entry((e.browser_key.clone(), e.session_id.clone())).or_default().push(i);
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (_, mut list) in streams {
            list.sort_by(|a, b| (events[*a].ts, &events[*a].id).cmp(&(events[*b].ts, &events[*b].id)));
            let mut current: Vec<usize> = Vec::new();
            for i in list {
                if let Some(&last) = current.last()
                    && events[i].ts - events[last].ts > rules.timeout
                {
                    groups.push(std::mem::take(&mut current));
                }
                current.push(i);
            }
            groups.push(current);
        }
        let mut session_of = vec![0; events.len()];
        let mut sessions = Vec::new();
        for (n, g) in groups.into_iter().enumerate() {
            for &i in &g {
                session_of[i] = n;
            }
            let first = &events[g[0]];
            let last = &events[g[g.len() - 1]];
            let pageviews: Vec<&Ev> = g.iter().map(|&i| &events[i]).filter(|e| e.name == "pageview").collect();
            let interacted = g.iter().any(|&i| events[i].name != "pageview" && events[i].interactive);
            let bounce = pageviews.len() < 2 && !interacted;
            let span = (last.ts - first.ts).div_euclid(1000);
            let keys = g.iter().filter(|&&i| rules.key_events.contains(&events[i].name)).count();
            sessions.push(Sess {
                start: first.ts,
                visitor: first.visitor.clone(),
                pageviews: pageviews.len() as i64,
                bounce,
                duration: if bounce { 0 } else { span },
                engaged: span > 10 || pageviews.len() >= 2 || keys > 0,
                entry: pageviews.first().map_or("(none)".to_string(), |e| e.path.clone()),
                exit: pageviews.last().map_or("(none)".to_string(), |e| e.path.clone()),
                events: g,
            });
        }
        Self { events, sessions, session_of, rules }
    }

    fn event_label(&self, dim: &str, i: usize) -> String {
        let e = &self.events[i];
        match dim {
            "event:name" => e.name.clone(),
            "event:page" => e.path.clone(),
            "event:hostname" => e.host.clone(),
            _ => {
                let key = dim.strip_prefix("event:props:").expect("a prop dimension");
                e.props.get(key).cloned().unwrap_or_else(|| "(none)".to_string())
            }
        }
    }

    fn visit_label(&self, dim: &str, s: &Sess) -> String {
        match dim {
            "visit:entry_page" => s.entry.clone(),
            "visit:exit_page" => s.exit.clone(),
            _ => {
                let first = &self.events[s.events[0]];
                first.attrs.get(dim.strip_prefix("visit:").expect("visit")).cloned().expect("every visit label")
            }
        }
    }
}

fn leaf_positive(leaf: &[Value], label: &str) -> bool {
    let op = leaf[0].as_str().expect("op");
    let insensitive = leaf.get(3).and_then(|m| m["case_sensitive"].as_bool()) == Some(false);
    let values: Vec<String> =
        leaf[2].as_array().expect("values").iter().map(|v| v.as_str().expect("str").to_string()).collect();
    let fold = |s: &str| if insensitive { s.to_lowercase() } else { s.to_string() };
    let label = fold(label);
    values.iter().any(|v| match op {
        "is" | "is_not" => label == fold(v),
        "contains" | "contains_not" => label.contains(&fold(v)),
        "starts_with" => label.starts_with(&fold(v)),
        "ends_with" => label.ends_with(&fold(v)),
        "matches" | "matches_not" => {
            let pattern = if insensitive { format!("(?i){v}") } else { v.clone() };
            regex::Regex::new(&pattern).expect("regex").is_match(&label)
        }
        other => panic!("operator {other}"),
    })
}

fn negative(leaf: &[Value]) -> bool {
    matches!(leaf[0].as_str(), Some("is_not" | "contains_not" | "matches_not"))
}

/// A filter expression decided by `leaf`.
fn eval(f: &Value, leaf: &mut dyn FnMut(&[Value]) -> bool) -> bool {
    let items = f.as_array().expect("filter");
    match items[0].as_str().expect("op") {
        "and" => items[1].as_array().expect("list").iter().all(|c| eval(c, leaf)),
        "or" => items[1].as_array().expect("list").iter().any(|c| eval(c, leaf)),
        "not" => !eval(&items[1], leaf),
        _ => leaf(items),
    }
}

/// A report query: what to group and filter by.
#[derive(Debug, Clone)]
struct Query {
    dims: Vec<String>,
    filters: Vec<Value>,
}

impl Query {
    fn event_passes(&self, d: &Data, i: usize) -> bool {
        let s = &d.sessions[d.session_of[i]];
        self.filters.iter().all(|f| {
            eval(f, &mut |leaf| {
                let dim = leaf[1].as_str().expect("dim");
                let label = if dim.starts_with("event:") { d.event_label(dim, i) } else { d.visit_label(dim, s) };
                leaf_positive(leaf, &label) != negative(leaf)
            })
        })
    }

    fn session_passes(&self, d: &Data, s: &Sess) -> bool {
        self.filters.iter().all(|f| {
            eval(f, &mut |leaf| {
                let dim = leaf[1].as_str().expect("dim");
                let any = if dim.starts_with("event:") {
                    s.events.iter().any(|&i| leaf_positive(leaf, &d.event_label(dim, i)))
                } else {
                    leaf_positive(leaf, &d.visit_label(dim, s))
                };
                any != negative(leaf)
            })
        })
    }
}

/// One row's sums.
#[derive(Debug, Clone, Default)]
struct Sums {
    events: i128,
    pageviews: i128,
    revenue: f64,
    visits: i128,
    bounces: i128,
    duration: i128,
    session_pageviews: i128,
    engaged: i128,
    visitors: BTreeSet<String>,
}

/// A row key part: a time bucket start or a label.
type Key = Vec<(i64, String)>;

struct Ctx<'a> {
    d: &'a Data,
    tz: Tz,
    start: i64,
    end: i64,
}

impl Ctx<'_> {
    fn bucket(&self, grain: &str, t: i64) -> i64 {
        let local = self.tz.timestamp_millis_opt(t).single().expect("instant");
        match grain {
            "hour" => {
                t - i64::from(local.minute()) * MIN
                    - i64::from(local.second()) * 1000
                    - i64::from(local.timestamp_subsec_millis())
            }
            "day" => midnight(self.tz, local.date_naive()),
            "week" => midnight(
                self.tz,
                local.date_naive() - Duration::days(i64::from(local.weekday().num_days_from_monday())),
            ),
            "month" => midnight(self.tz, local.date_naive().with_day(1).expect("day 1")),
            other => panic!("grain {other}"),
        }
    }

    fn keys_of_event(&self, q: &Query, i: usize) -> Key {
        let s = &self.d.sessions[self.d.session_of[i]];
        q.dims
            .iter()
            .map(|dim| match dim.strip_prefix("time:") {
                Some(g) => (self.bucket(g, self.d.events[i].ts), String::new()),
                None if dim.starts_with("event:") => (0, self.d.event_label(dim, i)),
                None => (0, self.d.visit_label(dim, s)),
            })
            .collect()
    }

    fn keys_of_session(&self, q: &Query, s: &Sess) -> Vec<Key> {
        let mut keys: Vec<Key> = vec![Vec::new()];
        for dim in &q.dims {
            let parts: Vec<(i64, String)> = match dim.strip_prefix("time:") {
                Some(g) => vec![(self.bucket(g, s.start), String::new())],
                None if dim.starts_with("event:") => {
                    let set: BTreeSet<String> = s.events.iter().map(|&i| self.d.event_label(dim, i)).collect();
                    set.into_iter().map(|l| (0, l)).collect()
                }
                None => vec![(0, self.d.visit_label(dim, s))],
            };
            keys = keys
                .into_iter()
                .flat_map(|k| parts.iter().map(move |p| [k.clone(), vec![p.clone()]].concat()))
                .collect();
        }
        keys
    }

    fn sums(&self, q: &Query) -> BTreeMap<Key, Sums> {
        let d = self.d;
        let mut rows: BTreeMap<Key, Sums> = BTreeMap::new();
        for i in 0..d.events.len() {
            let e = &d.events[i];
            if e.ts < self.start || e.ts >= self.end || !q.event_passes(d, i) {
                continue;
            }
            let row = rows.entry(self.keys_of_event(q, i)).or_default();
            row.events += 1;
            row.pageviews += i128::from(e.name == "pageview");
            if let Some((amount, currency)) = &e.revenue
                && *currency == d.rules.currency
            {
                row.revenue += amount;
            }
        }
        for s in &d.sessions {
            if s.start < self.start || s.start >= self.end || !q.session_passes(d, s) {
                continue;
            }
            for key in self.keys_of_session(q, s) {
                let row = rows.entry(key).or_default();
                row.visits += 1;
                row.bounces += i128::from(s.bounce);
                row.duration += i128::from(s.duration);
                row.session_pageviews += i128::from(s.pageviews);
                row.engaged += i128::from(s.engaged);
                row.visitors.insert(s.visitor.clone());
            }
        }
        rows
    }
}

fn midnight(tz: Tz, day: NaiveDate) -> i64 {
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .expect("a midnight")
        .timestamp_millis()
}

/// An exact value: a ratio of integers, or a float sum.
#[derive(Debug, Clone, Copy)]
enum V {
    R(i128, i128),
    F(f64),
}

fn ratio(n: i128, d: i128) -> Option<V> {
    (d != 0).then_some(V::R(n, d))
}

/// Half away from zero, in integers.
fn round_r(n: i128, d: i128, decimals: u32) -> f64 {
    let scale = 10i128.pow(decimals);
    let twice = 2 * n.abs() * scale;
    let q = (twice + d.abs()) / (2 * d.abs());
    let signed = if (n < 0) != (d < 0) { -q } else { q };
    signed as f64 / scale as f64
}

fn decimals(metric: &str) -> u32 {
    match metric {
        "engagement_rate" => 1,
        "views_per_visit" | "conversion_rate" | "revenue" => 2,
        _ => 0,
    }
}

fn shown(metric: &str, v: Option<V>) -> Option<f64> {
    v.map(|v| match v {
        V::R(n, d) => round_r(n, d, decimals(metric)),
        V::F(f) => (f * 100.0).round() / 100.0,
    })
}

fn as_f64(v: V) -> f64 {
    match v {
        V::R(n, d) => n as f64 / d as f64,
        V::F(f) => f,
    }
}

fn cmp_v(a: Option<V>, b: Option<V>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Greater,
        (_, None) => Ordering::Less,
        (Some(V::R(a, b)), Some(V::R(c, d))) => (a * d).cmp(&(c * b)),
        (Some(x), Some(y)) => as_f64(x).total_cmp(&as_f64(y)),
    }
}

fn is_rate(metric: &str) -> bool {
    matches!(metric, "bounce_rate" | "engagement_rate" | "conversion_rate")
}

fn change(metric: &str, cur: Option<V>, prev: Option<V>) -> Value {
    let (Some(cur), Some(prev)) = (cur, prev) else { return Value::Null };
    match (cur, prev) {
        (V::R(a, b), V::R(c, d)) => {
            if is_rate(metric) {
                json!(round_r(a * d - c * b, b * d, 1))
            } else if c == 0 {
                Value::Null
            } else {
                json!(round_r((a * d - c * b) * 100, c * b, 1))
            }
        }
        _ => {
            let (x, y) = (as_f64(cur), as_f64(prev));
            if is_rate(metric) {
                json!(((x - y) * 10.0).round() / 10.0)
            } else if y == 0.0 {
                Value::Null
            } else {
                json!(((x - y) / y * 1000.0).round() / 10.0)
            }
        }
    }
}

/// Whole report answers: rows (with comparison) and totals.
pub struct Oracle<'a> {
    pub data: &'a Data,
    pub tz: Tz,
}

/// The sums of a request's queries for one range.
struct Tables {
    main: BTreeMap<Key, Sums>,
    bounce: Option<BTreeMap<Key, Sums>>,
    conversion: Option<BTreeMap<Key, Sums>>,
    name_pos: Option<usize>,
    metrics: Vec<String>,
}

impl Tables {
    /// The keys of rows that hold an event or a session.
    fn keys(&self) -> Vec<Key> {
        self.main.iter().filter(|(_, s)| s.events > 0 || s.visits > 0).map(|(k, _)| k.clone()).collect()
    }

    /// The exact metric values of row `key` (a missing row has no events or sessions).
    fn row(&self, key: &Key) -> Vec<Option<V>> {
        let empty = Sums::default();
        let s = self.main.get(key).unwrap_or(&empty);
        self.metrics
            .iter()
            .map(|m| match m.as_str() {
                "visitors" => Some(V::R(s.visitors.len() as i128, 1)),
                "visits" => Some(V::R(s.visits, 1)),
                "pageviews" => Some(V::R(s.pageviews, 1)),
                "events" => Some(V::R(s.events, 1)),
                "views_per_visit" => ratio(s.session_pageviews, s.visits),
                "bounce_rate" => {
                    let b = match &self.bounce {
                        Some(rows) => rows.get(key),
                        None => Some(s),
                    };
                    b.and_then(|b| ratio(100 * b.bounces, b.visits))
                }
                "visit_duration" => ratio(s.duration, s.visits),
                "engagement_rate" => ratio(100 * s.engaged, s.visits),
                "conversion_rate" => {
                    let mut k = key.clone();
                    if let Some(p) = self.name_pos {
                        k.remove(p);
                    }
                    let den = self.conversion.as_ref().and_then(|rows| rows.get(&k)).map_or(0, |r| r.visitors.len());
                    ratio(100 * s.visitors.len() as i128, den as i128)
                }
                "revenue" => Some(V::F(s.revenue)),
                other => panic!("metric {other}"),
            })
            .collect()
    }
}

/// Computed rows of one range.
struct Computed {
    rows: Tables,
    totals: Vec<Option<V>>,
}

impl Oracle<'_> {
    fn range(&self, dates: (NaiveDate, NaiveDate)) -> (i64, i64) {
        (midnight(self.tz, dates.0), midnight(self.tz, dates.1 + Duration::days(1)))
    }

    fn sums(&self, metrics: &[String], ctx: &Ctx<'_>, q: &Query) -> Tables {
        let main = ctx.sums(q);
        let page_involved = q.dims.iter().any(|d| d == "event:page")
            || q.filters.iter().any(|f| filter_dims(f).iter().any(|d| d == "event:page"));
        let bounce = (metrics.iter().any(|m| m == "bounce_rate") && page_involved).then(|| {
            let retarget =
                |f: &Value| map_dims(f, &|dim| if dim == "event:page" { Some("visit:entry_page") } else { None });
            let bq = Query {
                dims: q
                    .dims
                    .iter()
                    .map(|d| if d == "event:page" { "visit:entry_page".to_string() } else { d.clone() })
                    .collect(),
                filters: q.filters.iter().map(retarget).collect(),
            };
            ctx.sums(&bq)
        });
        let conversion = metrics.iter().any(|m| m == "conversion_rate").then(|| {
            let cq = Query {
                dims: q.dims.iter().filter(|d| *d != "event:name").cloned().collect(),
                filters: q.filters.iter().map(|f| replace_true(f, "event:name")).collect(),
            };
            ctx.sums(&cq)
        });
        Tables {
            main,
            bounce,
            conversion,
            name_pos: q.dims.iter().position(|d| d == "event:name"),
            metrics: metrics.to_vec(),
        }
    }

    fn compute(&self, request: &Value, dates: (NaiveDate, NaiveDate)) -> Computed {
        let metrics: Vec<String> = strings(&request["metrics"]);
        let dims: Vec<String> = strings(&request["dimensions"]);
        let filters: Vec<Value> = request["filters"].as_array().cloned().unwrap_or_default();
        let (start, end) = self.range(dates);
        let ctx = Ctx { d: self.data, tz: self.tz, start, end };
        let rows = self.sums(&metrics, &ctx, &Query { dims, filters: filters.clone() });
        let totals_tables = self.sums(&metrics, &ctx, &Query { dims: Vec::new(), filters: filters.clone() });
        let mut totals = totals_tables.row(&Vec::new());
        let goal_filtered = filters.iter().any(|f| filter_dims(f).iter().any(|d| d == "event:name"));
        for (m, v) in metrics.iter().zip(totals.iter_mut()) {
            if m == "conversion_rate" && !goal_filtered {
                *v = None;
            }
        }
        Computed { rows, totals }
    }

    /// The expected `rows` and `totals` (and `meta.total_rows`, `meta.time_labels`) of a
    /// request over local days `dates`, with `previous` the comparison days if any.
    pub fn answer(
        &self,
        request: &Value,
        dates: (NaiveDate, NaiveDate),
        previous: Option<(NaiveDate, NaiveDate)>,
    ) -> Value {
        let metrics: Vec<String> = strings(&request["metrics"]);
        let dims: Vec<String> = strings(&request["dimensions"]);
        let time_pos = dims.iter().position(|d| d.starts_with("time:"));
        let grain = time_pos.map(|p| dims[p].trim_start_matches("time:").to_string());
        let main = self.compute(request, dates);
        let prev = previous.map(|p| self.compute(request, p));
        let (start, end) = self.range(dates);

        // Having on shown values, then the order, then the page.
        let having = request["having"].as_array().cloned().unwrap_or_default();
        let all: Vec<(Key, Vec<Option<V>>)> = main
            .rows
            .keys()
            .into_iter()
            .map(|k| {
                let v = main.rows.row(&k);
                (k, v)
            })
            .collect();
        let mut rows: Vec<&(Key, Vec<Option<V>>)> = all
            .iter()
            .filter(|(_, values)| {
                having.iter().all(|h| {
                    let i = metrics.iter().position(|m| m == h[1].as_str().expect("metric")).expect("metric");
                    let Some(v) = shown(&metrics[i], values[i]) else { return h[0] == "neq" };
                    let x = h[2].as_f64().unwrap_or(0.0);
                    match h[0].as_str().expect("op") {
                        "eq" => v == x,
                        "neq" => v != x,
                        "gt" => v > x,
                        "gte" => v >= x,
                        "lt" => v < x,
                        "lte" => v <= x,
                        "between" => h[2][0].as_f64().expect("low") <= v && v <= h[2][1].as_f64().expect("high"),
                        other => panic!("having {other}"),
                    }
                })
            })
            .collect();
        let mut order: Vec<(Result<usize, usize>, bool)> = Vec::new();
        for o in request["order_by"].as_array().cloned().unwrap_or_default() {
            let name = o[0].as_str().expect("name");
            let key = match metrics.iter().position(|m| m == name) {
                Some(i) => Ok(i),
                None => Err(dims.iter().position(|d| d == name).expect("dimension")),
            };
            order.push((key, o[1] == "desc"));
        }
        if order.is_empty() {
            order.push(match time_pos {
                Some(p) => (Err(p), false),
                None => (Ok(0), true),
            });
        }
        for i in 0..dims.len() {
            if !order.iter().any(|(k, _)| *k == Err(i)) {
                order.push((Err(i), false));
            }
        }
        rows.sort_by(|a, b| {
            for (key, desc) in &order {
                let ord = match key {
                    Ok(m) => {
                        let ord = cmp_v(a.1[*m], b.1[*m]);
                        if *desc && a.1[*m].is_some() && b.1[*m].is_some() { ord.reverse() } else { ord }
                    }
                    Err(d) => {
                        let ord = a.0[*d].cmp(&b.0[*d]);
                        if *desc { ord.reverse() } else { ord }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        let total_rows = rows.len();
        let offset = request["offset"].as_u64().unwrap_or(0) as usize;
        let limit = request["limit"].as_u64().unwrap_or(1000) as usize;

        let labels = |grain: &str, s: i64, e: i64| -> Vec<i64> {
            let ctx = Ctx { d: self.data, tz: self.tz, start: s, end: e };
            let mut out = Vec::new();
            let mut t = s;
            while t < e {
                let b = ctx.bucket(grain, t);
                if out.last() != Some(&b) {
                    out.push(b);
                }
                t += 15 * MIN;
            }
            out
        };
        let main_buckets = grain.as_ref().map(|g| labels(g, start, end)).unwrap_or_default();
        let prev_buckets = match (&grain, previous) {
            (Some(g), Some(p)) => {
                let (s, e) = self.range(p);
                labels(g, s, e)
            }
            _ => Vec::new(),
        };
        let label = |part: &(i64, String), is_time: bool, range_start: i64| -> Value {
            if is_time {
                json!(self.label(grain.as_deref().expect("grain"), part.0, range_start))
            } else {
                json!(part.1)
            }
        };
        let metric_json = |values: &[Option<V>]| -> Value {
            Value::Array(
                metrics.iter().zip(values).map(|(m, v)| shown(m, *v).map_or(Value::Null, |x| json!(x))).collect(),
            )
        };
        let mut out_rows = Vec::new();
        for (key, values) in rows.iter().skip(offset).take(limit) {
            let dims_json: Vec<Value> =
                key.iter().enumerate().map(|(i, p)| label(p, Some(i) == time_pos, start)).collect();
            let mut row = json!({"dimensions": dims_json, "metrics": metric_json(values)});
            if let (Some(prev), Some(p)) = (&prev, previous) {
                let mut k = key.clone();
                let mut found = true;
                if let Some(tp) = time_pos {
                    match main_buckets.iter().position(|b| *b == key[tp].0).and_then(|i| prev_buckets.get(i)) {
                        Some(b) => k[tp].0 = *b,
                        None => found = false,
                    }
                }
                // A bucket past the end of a shorter comparison range has no values at all.
                let pv: Vec<Option<V>> = if found { prev.rows.row(&k) } else { vec![None; metrics.len()] };
                let changes: Vec<Value> =
                    metrics.iter().zip(values.iter().zip(&pv)).map(|(m, (c, p))| change(m, *c, *p)).collect();
                let mut comparison = json!({"metrics": metric_json(&pv), "change": changes});
                if found {
                    let prev_start = self.range(p).0;
                    comparison["dimensions"] = Value::Array(
                        k.iter().enumerate().map(|(i, part)| label(part, Some(i) == time_pos, prev_start)).collect(),
                    );
                }
                row["comparison"] = comparison;
            }
            out_rows.push(row);
        }
        let mut totals = json!({"metrics": metric_json(&main.totals)});
        if let Some(prev) = &prev {
            let changes: Vec<Value> =
                metrics.iter().zip(main.totals.iter().zip(&prev.totals)).map(|(m, (c, p))| change(m, *c, *p)).collect();
            totals["comparison"] = json!({"metrics": metric_json(&prev.totals), "change": changes});
        }
        let mut answer = json!({"rows": out_rows, "totals": totals, "total_rows": total_rows});
        if let Some(g) = &grain {
            answer["time_labels"] = json!(main_buckets.iter().map(|b| self.label(g, *b, start)).collect::<Vec<_>>());
        }
        answer
    }

    fn label(&self, grain: &str, bucket: i64, range_start: i64) -> String {
        let local = self
            .tz
            .timestamp_millis_opt(bucket.max(if grain == "week" { range_start } else { i64::MIN }))
            .single()
            .expect("t");
        let fixed = self.tz.timestamp_millis_opt(bucket).single().expect("t");
        match grain {
            "hour" => fixed.format("%Y-%m-%dT%H:00:00%:z").to_string(),
            "day" | "week" => local.format("%Y-%m-%d").to_string(),
            "month" => fixed.format("%Y-%m").to_string(),
            other => panic!("grain {other}"),
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().expect("string").to_string()).collect()).unwrap_or_default()
}

fn filter_dims(f: &Value) -> Vec<String> {
    let items = f.as_array().expect("filter");
    match items[0].as_str().expect("op") {
        "and" | "or" => items[1].as_array().expect("list").iter().flat_map(filter_dims).collect(),
        "not" => filter_dims(&items[1]),
        _ => vec![items[1].as_str().expect("dim").to_string()],
    }
}

fn map_dims(f: &Value, to: &dyn Fn(&str) -> Option<&'static str>) -> Value {
    let items = f.as_array().expect("filter");
    match items[0].as_str().expect("op") {
        "and" | "or" => {
            json!([items[0], items[1].as_array().expect("list").iter().map(|c| map_dims(c, to)).collect::<Vec<_>>()])
        }
        "not" => json!(["not", map_dims(&items[1], to)]),
        _ => {
            let mut leaf = items.clone();
            if let Some(dim) = to(items[1].as_str().expect("dim")) {
                leaf[1] = json!(dim);
            }
            Value::Array(leaf)
        }
    }
}

fn replace_true(f: &Value, dim: &str) -> Value {
    let items = f.as_array().expect("filter");
    match items[0].as_str().expect("op") {
        "and" | "or" => json!([
            items[0],
            items[1].as_array().expect("list").iter().map(|c| replace_true(c, dim)).collect::<Vec<_>>()
        ]),
        "not" => json!(["not", replace_true(&items[1], dim)]),
        _ if items[1] == dim => json!(["and", []]),
        _ => f.clone(),
    }
}

/// The local date of an instant.
pub fn local_day(tz: Tz, t: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(t).expect("t").with_timezone(&tz).date_naive()
}
