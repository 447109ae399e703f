//! Partial aggregates: for a sub-range of a report, each row's event counts (events by their
//! own time) and session sums (sessions by their start), with the exact set of visitors.
//! Partials of adjacent sub-ranges merge by adding counts and uniting sets, which is how
//! rollup hours and raw hours combine into one answer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono_tz::Tz;
use hourglass_processor::sessions::{PAGEVIEW, SessionRules};

use crate::dataset::{Dataset, NO_SESSION, Session};
use crate::dimension::{Dimension, EventDim};
use crate::filter::{Filter, Leaf};
use crate::time::{TimeRange, bucket_start};

/// One part of a row key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    /// A time bucket, by the instant it starts.
    Time(i64),
    /// A text label.
    Text(Arc<str>),
}

/// A row key: one part per dimension, in the request's order.
pub type RowKey = Vec<KeyPart>;

/// What one query of a report asks of the data.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Dimensions grouped by.
    pub dimensions: Vec<Dimension>,
    /// The filter tree.
    pub filter: Option<Filter>,
    /// The zone of time buckets.
    pub tz: Tz,
    /// Whether event counts are needed.
    pub events: bool,
    /// Whether session sums are needed.
    pub sessions: bool,
    /// Count visitors with a pageview at or after this instant (`current_visitors`).
    pub current_since: Option<i64>,
}

/// Counts and sums of one row in one sub-range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acc {
    /// Events.
    pub events: u64,
    /// Events named `pageview`.
    pub pageviews: u64,
    /// Revenue of the events in the reporting currency.
    pub revenue: f64,
    /// Sessions.
    pub visits: u64,
    /// Sessions that bounced.
    pub bounces: u64,
    /// Sum of session durations, whole seconds (bounces count 0).
    pub duration: u64,
    /// Sum of the sessions' pageviews.
    pub session_pageviews: u64,
    /// Sessions that were engaged.
    pub engaged: u64,
    /// Distinct visitors of the sessions.
    pub visitors: HashSet<u64>,
    /// Distinct visitors with a pageview since `Spec::current_since`.
    pub current: HashSet<u64>,
    /// With `"accuracy": "fast"`: a sketch of visitors from rollups, to be united with
    /// `visitors` (the ids from raw hours).
    pub sketch: Option<crate::sketch::Hll>,
}

impl Acc {
    /// Adds `other` into this one.
    pub fn merge(&mut self, other: &Acc) {
        self.events += other.events;
        self.pageviews += other.pageviews;
        self.revenue += other.revenue;
        self.visits += other.visits;
        self.bounces += other.bounces;
        self.duration += other.duration;
        self.session_pageviews += other.session_pageviews;
        self.engaged += other.engaged;
        self.visitors.extend(other.visitors.iter().copied());
        self.current.extend(other.current.iter().copied());
        if let Some(theirs) = &other.sketch {
            self.sketch.get_or_insert_with(Default::default).merge(theirs);
        }
    }

    /// Distinct visitors: exact, or estimated when a sketch is involved.
    pub fn visitor_count(&self) -> u64 {
        match &self.sketch {
            Some(sketch) => crate::planner::union_estimate(sketch, &self.visitors).round() as u64,
            None => self.visitors.len() as u64,
        }
    }

    /// Whether any event, session or current visitor belongs to the row.
    pub fn is_empty(&self) -> bool {
        self.events == 0 && self.visits == 0 && self.current.is_empty()
    }
}

/// Rows of one sub-range.
pub type Partial = HashMap<RowKey, Acc>;

/// Adds `part` into `into`.
pub fn merge_into(into: &mut Partial, part: Partial) {
    for (key, acc) in part {
        match into.get_mut(&key) {
            Some(existing) => existing.merge(&acc),
            None => {
                into.insert(key, acc);
            }
        }
    }
}

/// Turns labels into shared strings, so that equal labels share one allocation.
#[derive(Default)]
struct Interner(HashMap<Box<str>, Arc<str>>);

impl Interner {
    fn get(&mut self, label: &str) -> Arc<str> {
        if let Some(found) = self.0.get(label) {
            return Arc::clone(found);
        }
        let shared: Arc<str> = Arc::from(label);
        self.0.insert(Box::from(label), Arc::clone(&shared));
        shared
    }
}

/// Whether `leaf` holds for event row `i` of session `s` (event metrics: each event on its
/// own; visit leaves read the session).
fn event_leaf(data: &Dataset, leaf: &Leaf, i: usize, s: &Session) -> bool {
    match &leaf.dimension {
        Dimension::Event(dim) => leaf.matches(data.events.event_label(dim, i)),
        Dimension::Visit(dim) => leaf.matches(&data.visit_label(*dim, s)),
        Dimension::Time(_) => true,
    }
}

/// Whether `leaf` holds for session `s` (session metrics: an event leaf's positive form
/// holds when any event of the session matches; a negative operator when none does).
pub(crate) fn session_leaf(data: &Dataset, leaf: &Leaf, s: &Session) -> bool {
    match &leaf.dimension {
        Dimension::Event(dim) => {
            let any = s.rows.iter().any(|&r| leaf.matches_positive(data.events.event_label(dim, r)));
            any != leaf.op.is_negative()
        }
        Dimension::Visit(dim) => leaf.matches(&data.visit_label(*dim, s)),
        Dimension::Time(_) => true,
    }
}

/// Aggregates `spec` over the events and sessions of `data` that fall in `range`.
pub fn aggregate(data: &Dataset, spec: &Spec, range: &TimeRange, rules: &SessionRules) -> Partial {
    let mut rows: Partial = HashMap::new();
    let mut interner = Interner::default();
    if spec.events || spec.current_since.is_some() {
        aggregate_events(data, spec, range, rules, &mut rows, &mut interner);
    }
    if spec.sessions {
        aggregate_sessions(data, spec, range, &mut rows, &mut interner);
    }
    rows
}

fn aggregate_events(
    data: &Dataset,
    spec: &Spec,
    range: &TimeRange,
    rules: &SessionRules,
    rows: &mut Partial,
    interner: &mut Interner,
) {
    let events = &data.events;
    let mut key: RowKey = Vec::with_capacity(spec.dimensions.len());
    for i in 0..events.len() {
        let t = events.time(i);
        if !range.contains(t) || data.session_of[i] == NO_SESSION {
            continue;
        }
        let s = &data.sessions[data.session_of[i] as usize];
        if let Some(filter) = &spec.filter
            && !filter.eval(&mut |leaf| event_leaf(data, leaf, i, s))
        {
            continue;
        }
        key.clear();
        for dim in &spec.dimensions {
            key.push(match dim {
                Dimension::Event(e) => KeyPart::Text(interner.get(events.event_label(e, i))),
                Dimension::Visit(v) => KeyPart::Text(interner.get(&data.visit_label(*v, s))),
                Dimension::Time(g) => KeyPart::Time(bucket_start(*g, spec.tz, t)),
            });
        }
        let acc = match rows.get_mut(&key) {
            Some(acc) => acc,
            None => rows.entry(key.clone()).or_default(),
        };
        let is_pageview = events.name(i) == PAGEVIEW;
        if spec.events {
            acc.events += 1;
            acc.pageviews += u64::from(is_pageview);
            acc.revenue += events.revenue(i, rules);
        }
        if let Some(since) = spec.current_since
            && is_pageview
            && t >= since
        {
            acc.current.insert(events.visitor_of(i));
        }
    }
}

fn aggregate_sessions(data: &Dataset, spec: &Spec, range: &TimeRange, rows: &mut Partial, interner: &mut Interner) {
    let events = &data.events;
    // For each event dimension, the distinct labels of the session's events.
    let event_dims: Vec<(usize, &EventDim)> = spec
        .dimensions
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Dimension::Event(e) => Some((i, e)),
            _ => None,
        })
        .collect();
    for s in &data.sessions {
        if !range.contains(s.start_ms) {
            continue;
        }
        if let Some(filter) = &spec.filter
            && !filter.eval(&mut |leaf| session_leaf(data, leaf, s))
        {
            continue;
        }
        let mut base: RowKey = Vec::with_capacity(spec.dimensions.len());
        for dim in &spec.dimensions {
            base.push(match dim {
                Dimension::Event(_) => KeyPart::Time(0),
                Dimension::Visit(v) => KeyPart::Text(interner.get(&data.visit_label(*v, s))),
                Dimension::Time(g) => KeyPart::Time(bucket_start(*g, spec.tz, s.start_ms)),
            });
        }
        // The session counts once in every combination of its event-dimension values.
        let mut keys = vec![base];
        for (position, dim) in &event_dims {
            let mut labels: Vec<&str> = s.rows.iter().map(|&r| events.event_label(dim, r)).collect();
            labels.sort_unstable();
            labels.dedup();
            let mut expanded = Vec::with_capacity(keys.len() * labels.len());
            for key in &keys {
                for label in &labels {
                    let mut k = key.clone();
                    k[*position] = KeyPart::Text(interner.get(label));
                    expanded.push(k);
                }
            }
            keys = expanded;
        }
        for key in keys {
            let acc = rows.entry(key).or_default();
            acc.visits += 1;
            acc.bounces += u64::from(s.summary.is_bounce);
            acc.duration += s.summary.duration_secs.max(0) as u64;
            acc.session_pageviews += s.summary.pageviews.max(0) as u64;
            acc.engaged += u64::from(s.summary.is_engaged);
            acc.visitors.insert(s.visitor);
        }
    }
}

/// The filter with every leaf on `from` made a leaf on `to` (same operator and values).
pub fn retarget(filter: &Filter, from: &Dimension, to: &Dimension) -> Filter {
    filter.map_leaves(&|leaf| {
        (leaf.dimension == *from).then(|| {
            let mut moved = leaf.clone();
            moved.dimension = to.clone();
            Filter::Leaf(moved)
        })
    })
}

/// The filter with every leaf on `dimension` replaced by "true".
pub fn without(filter: &Filter, dimension: &Dimension) -> Filter {
    filter.map_leaves(&|leaf| (leaf.dimension == *dimension).then(Filter::always))
}
