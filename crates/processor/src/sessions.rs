//! Sessions by the definition in ANALYTICS.md, computed from a tenant's `events` rows.
//!
//! A session is a run of one visitor's events, in time order, with no gap over the tenant's
//! timeout (compared in milliseconds). Events that carry a client `session_id` form a run of
//! their own per (visitor, session id), so two client sessions never merge, and the visitor's
//! events without one are sessionized apart from them; the gap rule cuts every run (decision
//! 43). A cookieless session that crosses midnight continues: a session whose first event has
//! a `prev_visitor_id` (the same browser under the previous day's salt) joins that visitor's
//! session of the same run when the gap to its last event is within the timeout. A session
//! takes its `visitor_id` and its attributes from its first event.
//!
//! This is a batch computation: given every event of a tenant it returns every session, so
//! out-of-order, late and duplicated events make no difference to the answer. Duplicate
//! `event_id`s (possible before compaction) count once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int32Type, Schema, SchemaRef, TimestampMillisecondType, UInt64Type,
};
use hourglass_types::schema::{col, timestamp_type};

use crate::ProcessError;

/// The tenant settings sessions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRules {
    /// Largest gap, in milliseconds, between two events of one session.
    pub timeout_ms: i64,
    /// Event names that make a session engaged.
    pub key_events: Vec<String>,
    /// Only revenue in this currency (or with no currency) is summed.
    pub reporting_currency: String,
}

impl From<&hourglass_types::TenantSettings> for SessionRules {
    fn from(settings: &hourglass_types::TenantSettings) -> Self {
        Self {
            timeout_ms: settings.session_timeout_ms,
            key_events: settings.key_events.clone(),
            reporting_currency: settings.reporting_currency.clone(),
        }
    }
}

impl Default for SessionRules {
    fn default() -> Self {
        Self::from(&hourglass_types::TenantSettings::default())
    }
}

/// One event as the grouping sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point<'a> {
    /// Event time, epoch ms.
    pub timestamp_ms: i64,
    /// Event id; events with the same id are one event.
    pub event_id: &'a str,
    /// The event's visitor.
    pub visitor_id: u64,
    /// The event's cookieless visitor under the previous day's salt.
    pub prev_visitor_id: Option<u64>,
    /// The client's session id.
    pub session_id: Option<&'a str>,
}

/// Minimal union-find over session numbers, merging into the smaller number so that a
/// session keeps the number of its earliest part.
struct Unions(Vec<usize>);

impl Unions {
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            self.0[high] = low;
        }
    }
}

/// A visitor's run of events: those with one client session id, or those with none.
type Stream<'a> = (u64, Option<&'a str>);

/// Splits `points` into sessions: each session is a list of indices into `points`, in time
/// order (ties by event id); duplicates of an event id are left out. Sessions come in the
/// order of their first event's (visitor, time).
///
/// A visitor's events fall into streams: one per client session id, and one for the events
/// without. Each stream is cut where the gap between two events exceeds `timeout_ms`, so
/// every session is a chain of events no further apart than the timeout; that bound is what
/// lets a report compute the sessions of a range from a window of events around it.
pub fn group(points: &[Point<'_>], timeout_ms: i64) -> Vec<Vec<usize>> {
    let key = |i: usize| (points[i].visitor_id, points[i].timestamp_ms, points[i].event_id);
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_unstable_by_key(|&i| key(i));
    let mut seen: HashSet<&str> = HashSet::with_capacity(points.len());
    order.retain(|&i| seen.insert(points[i].event_id));

    // Visitors some later session may continue from: only their streams need remembering.
    let continued: HashSet<u64> = order.iter().filter_map(|&i| points[i].prev_visitor_id).collect();

    let mut members: Vec<Vec<usize>> = Vec::new();
    // The last (time, session) of each stream of the visitor being read.
    let mut open: HashMap<Option<&str>, (i64, usize)> = HashMap::new();
    // For continued visitors: (time, session) of every event of each stream, in time order.
    let mut remembered: HashMap<Stream<'_>, Vec<(i64, usize)>> = HashMap::new();

    let mut current_visitor = None;
    for &i in &order {
        let p = points[i];
        if current_visitor != Some(p.visitor_id) {
            current_visitor = Some(p.visitor_id);
            open.clear();
        }
        let stream = p.session_id.filter(|s| !s.is_empty());
        let session = match open.get(&stream) {
            Some(&(t, s)) if p.timestamp_ms - t <= timeout_ms => s,
            _ => {
                members.push(Vec::new());
                members.len() - 1
            }
        };
        open.insert(stream, (p.timestamp_ms, session));
        if continued.contains(&p.visitor_id) {
            remembered.entry((p.visitor_id, stream)).or_default().push((p.timestamp_ms, session));
        }
        members[session].push(i);
    }

    // A session whose first event has a previous-day visitor joins that visitor's session of
    // the same stream when the gap to it is within the timeout.
    let mut unions = Unions((0..members.len()).collect());
    for session in 0..members.len() {
        let first = points[members[session][0]];
        let Some(previous) = first.prev_visitor_id.filter(|&v| v != first.visitor_id) else {
            continue;
        };
        let stream = first.session_id.filter(|s| !s.is_empty());
        let target = remembered.get(&(previous, stream)).and_then(|events| {
            let before = events.partition_point(|&(t, _)| t <= first.timestamp_ms);
            let (t, s) = *events.get(before.checked_sub(1)?)?;
            (first.timestamp_ms - t <= timeout_ms).then_some(s)
        });
        if let Some(target) = target {
            unions.union(session, target);
        }
    }

    let mut merged: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    for (session, list) in members.into_iter().enumerate() {
        let root = unions.find(session);
        merged[root].extend(list);
    }
    let mut sessions: Vec<Vec<usize>> = merged.into_iter().filter(|m| !m.is_empty()).collect();
    for session in &mut sessions {
        session.sort_unstable_by_key(|&i| (points[i].timestamp_ms, points[i].event_id));
    }
    sessions.sort_unstable_by_key(|s| key(s[0]));
    sessions
}

/// Columns of `events` that [`build`] reads.
pub const INPUT_COLUMNS: [&str; 29] = [
    col::TENANT_ID,
    col::EVENT_ID,
    col::TIMESTAMP,
    col::NAME,
    col::SESSION_ID,
    col::VISITOR_ID,
    col::PREV_VISITOR_ID,
    col::INTERACTIVE,
    col::REVENUE,
    col::CURRENCY,
    col::PATH,
    col::HOSTNAME,
    col::REFERRER_PAGE,
    col::SOURCE,
    col::CHANNEL,
    col::UTM_SOURCE,
    col::UTM_MEDIUM,
    col::UTM_CAMPAIGN,
    col::UTM_CONTENT,
    col::UTM_TERM,
    col::CLICK_ID,
    col::COUNTRY,
    col::LANGUAGE,
    col::SCREEN_WIDTH,
    col::DEVICE,
    col::BROWSER,
    col::BROWSER_VERSION,
    col::OS,
    col::OS_VERSION,
];

/// Session attributes copied from the session's first event, in output order.
const FIRST_EVENT_TEXT: [(&str, &str); 15] = [
    ("hostname", col::HOSTNAME),
    ("referrer", col::REFERRER_PAGE),
    ("source", col::SOURCE),
    ("utm_source", col::UTM_SOURCE),
    ("utm_medium", col::UTM_MEDIUM),
    ("utm_campaign", col::UTM_CAMPAIGN),
    ("utm_content", col::UTM_CONTENT),
    ("utm_term", col::UTM_TERM),
    ("click_id", col::CLICK_ID),
    ("country", col::COUNTRY),
    ("device", col::DEVICE),
    ("browser", col::BROWSER),
    ("browser_version", col::BROWSER_VERSION),
    ("os", col::OS),
    ("os_version", col::OS_VERSION),
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("session_key", DataType::Utf8, false),
        Field::new("visitor_id", DataType::UInt64, false),
        Field::new("client_session_id", DataType::Utf8, true),
        Field::new("started_at", timestamp_type(), false),
        Field::new("ended_at", timestamp_type(), false),
        Field::new("duration", DataType::Int64, false),
        Field::new("events", DataType::Int64, false),
        Field::new("pageviews", DataType::Int64, false),
        Field::new("key_events", DataType::Int64, false),
        Field::new("is_bounce", DataType::Boolean, false),
        Field::new("is_engaged", DataType::Boolean, false),
        Field::new("revenue", DataType::Float64, false),
        Field::new("entry_page", DataType::Utf8, true),
        Field::new("exit_page", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, false),
        Field::new("language", DataType::Utf8, true),
        Field::new("screen_width", DataType::Int32, true),
    ];
    for (name, _) in FIRST_EVENT_TEXT {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
});

/// Schema of the `sessions` table.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Name of the event that counts as a pageview.
pub const PAGEVIEW: &str = "pageview";

/// Seconds a session must last to be engaged without a second pageview or a key event.
const ENGAGED_AFTER_SECS: i64 = 10;

/// The primary language subtag, lower-case (`en-US` -> `en`); `None` when empty.
pub fn primary_language(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    (!primary.is_empty()).then_some(primary)
}

/// The input columns of one batch, looked up once.
struct Input<'a> {
    strings: HashMap<&'static str, &'a StringArray>,
    batch: &'a RecordBatch,
}

impl<'a> Input<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, ProcessError> {
        let mut strings = HashMap::new();
        for name in INPUT_COLUMNS {
            let column = batch.column_by_name(name).ok_or(ProcessError::BadInput { column: name })?;
            if let Some(s) = column.as_any().downcast_ref::<StringArray>() {
                strings.insert(name, s);
            }
        }
        Ok(Self { strings, batch })
    }

    fn text(&self, name: &'static str) -> Result<&'a StringArray, ProcessError> {
        self.strings.get(name).copied().ok_or(ProcessError::BadInput { column: name })
    }

    fn column(&self, name: &'static str) -> Result<&'a ArrayRef, ProcessError> {
        self.batch.column_by_name(name).ok_or(ProcessError::BadInput { column: name })
    }
}

fn opt(array: &StringArray, i: usize) -> Option<&str> {
    array.is_valid(i).then(|| array.value(i)).filter(|v| !v.is_empty())
}

/// The columns [`summarize`] reads, by row.
pub struct SummaryColumns<'a> {
    /// Event times, epoch ms.
    pub times: &'a arrow::array::TimestampMillisecondArray,
    /// Event names.
    pub names: &'a StringArray,
    /// Whether each event ends a bounce (when it is not a pageview).
    pub interactive: &'a arrow::array::BooleanArray,
    /// Revenue amounts.
    pub revenue: &'a arrow::array::Float64Array,
    /// Revenue currencies.
    pub currencies: &'a StringArray,
}

/// What the metrics of ANALYTICS.md need of one session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Events named `pageview`.
    pub pageviews: i64,
    /// Events named as one of the tenant's key events.
    pub key_events: i64,
    /// Fewer than 2 pageviews and no interactive event that is not a pageview.
    pub is_bounce: bool,
    /// Whole seconds from the first event to the last, 0 for a bounce.
    pub duration_secs: i64,
    /// Lasted over 10 seconds, had 2 or more pageviews, or had a key event.
    pub is_engaged: bool,
    /// Revenue in the reporting currency (or with no currency).
    pub revenue: f64,
    /// Row of the first pageview (the entry page), if any.
    pub entry: Option<usize>,
    /// Row of the last pageview (the exit page), if any.
    pub exit: Option<usize>,
}

/// Summarizes the session made of `rows` (in time order, as [`group`] returns them).
pub fn summarize(rows: &[usize], columns: &SummaryColumns<'_>, rules: &SessionRules) -> Summary {
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return Summary {
            pageviews: 0,
            key_events: 0,
            is_bounce: true,
            duration_secs: 0,
            is_engaged: false,
            revenue: 0.0,
            entry: None,
            exit: None,
        };
    };
    let span_secs = (columns.times.value(last) - columns.times.value(first)).div_euclid(1000);
    let mut pageviews = 0i64;
    let mut key_events = 0i64;
    let mut interacted = false;
    let mut revenue = 0.0f64;
    let (mut entry, mut exit) = (None, None);
    for &i in rows {
        let name = columns.names.value(i);
        if name == PAGEVIEW {
            pageviews += 1;
            entry.get_or_insert(i);
            exit = Some(i);
        } else if columns.interactive.value(i) {
            interacted = true;
        }
        if rules.key_events.iter().any(|k| k == name) {
            key_events += 1;
        }
        if columns.revenue.is_valid(i) && counts_revenue(opt(columns.currencies, i), rules) {
            revenue += columns.revenue.value(i);
        }
    }
    let is_bounce = pageviews < 2 && !interacted;
    Summary {
        pageviews,
        key_events,
        is_bounce,
        duration_secs: if is_bounce { 0 } else { span_secs },
        is_engaged: span_secs > ENGAGED_AFTER_SECS || pageviews >= 2 || key_events > 0,
        revenue,
        entry,
        exit,
    }
}

/// Whether revenue in `currency` counts: it is the reporting currency, or none is given.
pub fn counts_revenue(currency: Option<&str>, rules: &SessionRules) -> bool {
    currency.is_none_or(|c| c.eq_ignore_ascii_case(&rules.reporting_currency))
}

/// The `sessions` rows of a tenant's `events` rows (one batch holding at least
/// [`INPUT_COLUMNS`], in any order).
pub fn build(events: &RecordBatch, rules: &SessionRules) -> Result<RecordBatch, ProcessError> {
    let input = Input::new(events)?;
    let bad = |column: &'static str| ProcessError::BadInput { column };
    let times =
        input.column(col::TIMESTAMP)?.as_primitive_opt::<TimestampMillisecondType>().ok_or(bad(col::TIMESTAMP))?;
    let visitors = input.column(col::VISITOR_ID)?.as_primitive_opt::<UInt64Type>().ok_or(bad(col::VISITOR_ID))?;
    let previous =
        input.column(col::PREV_VISITOR_ID)?.as_primitive_opt::<UInt64Type>().ok_or(bad(col::PREV_VISITOR_ID))?;
    let interactive = input.column(col::INTERACTIVE)?.as_boolean_opt().ok_or(bad(col::INTERACTIVE))?;
    let revenue = input.column(col::REVENUE)?.as_primitive_opt::<Float64Type>().ok_or(bad(col::REVENUE))?;
    let screen = input.column(col::SCREEN_WIDTH)?.as_primitive_opt::<Int32Type>().ok_or(bad(col::SCREEN_WIDTH))?;
    let (tenants, ids, names) = (input.text(col::TENANT_ID)?, input.text(col::EVENT_ID)?, input.text(col::NAME)?);
    let (session_ids, paths, currencies) =
        (input.text(col::SESSION_ID)?, input.text(col::PATH)?, input.text(col::CURRENCY)?);
    let (channels, languages) = (input.text(col::CHANNEL)?, input.text(col::LANGUAGE)?);

    let points: Vec<Point<'_>> = (0..events.num_rows())
        .map(|i| Point {
            timestamp_ms: times.value(i),
            event_id: ids.value(i),
            visitor_id: visitors.value(i),
            prev_visitor_id: previous.is_valid(i).then(|| previous.value(i)),
            session_id: opt(session_ids, i),
        })
        .collect();
    let sessions = group(&points, rules.timeout_ms);
    let columns = SummaryColumns { times, names, interactive, revenue, currencies };

    let n = sessions.len();
    let mut tenant_b = StringBuilder::with_capacity(n, n * 8);
    let mut key_b = StringBuilder::with_capacity(n, n * 36);
    let mut visitor_b = UInt64Builder::with_capacity(n);
    let mut client_session_b = StringBuilder::new();
    let mut start_b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end_b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut duration_b, mut events_b, mut pageviews_b, mut key_events_b) = (
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    let (mut bounce_b, mut engaged_b) = (BooleanBuilder::with_capacity(n), BooleanBuilder::with_capacity(n));
    let mut revenue_b = Float64Builder::with_capacity(n);
    let (mut entry_b, mut exit_b, mut channel_b, mut language_b) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    let mut screen_b = Int32Builder::with_capacity(n);
    let mut first_text: Vec<(&StringArray, StringBuilder)> = FIRST_EVENT_TEXT
        .iter()
        .map(|(_, source)| Ok((input.text(source)?, StringBuilder::new())))
        .collect::<Result<_, ProcessError>>()?;

    for rows in &sessions {
        let (first, last) = (rows[0], rows[rows.len() - 1]);
        tenant_b.append_value(tenants.value(first));
        key_b.append_value(ids.value(first));
        visitor_b.append_value(visitors.value(first));
        client_session_b.append_option(opt(session_ids, first));
        start_b.append_value(times.value(first));
        end_b.append_value(times.value(last));

        let summary = summarize(rows, &columns, rules);
        let path_of = |row: usize| paths.is_valid(row).then(|| paths.value(row));
        duration_b.append_value(summary.duration_secs);
        events_b.append_value(rows.len() as i64);
        pageviews_b.append_value(summary.pageviews);
        key_events_b.append_value(summary.key_events);
        bounce_b.append_value(summary.is_bounce);
        engaged_b.append_value(summary.is_engaged);
        revenue_b.append_value(summary.revenue);
        entry_b.append_option(summary.entry.and_then(path_of));
        exit_b.append_option(summary.exit.and_then(path_of));
        channel_b.append_value(channels.value(first));
        language_b.append_option(opt(languages, first).and_then(primary_language));
        screen_b.append_option(screen.is_valid(first).then(|| screen.value(first)));
        for (source, builder) in &mut first_text {
            builder.append_option(opt(source, first));
        }
    }

    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(tenant_b.finish()),
        Arc::new(key_b.finish()),
        Arc::new(visitor_b.finish()),
        Arc::new(client_session_b.finish()),
        Arc::new(start_b.finish()),
        Arc::new(end_b.finish()),
        Arc::new(duration_b.finish()),
        Arc::new(events_b.finish()),
        Arc::new(pageviews_b.finish()),
        Arc::new(key_events_b.finish()),
        Arc::new(bounce_b.finish()),
        Arc::new(engaged_b.finish()),
        Arc::new(revenue_b.finish()),
        Arc::new(entry_b.finish()),
        Arc::new(exit_b.finish()),
        Arc::new(channel_b.finish()),
        Arc::new(language_b.finish()),
        Arc::new(screen_b.finish()),
    ];
    for (_, mut builder) in first_text {
        columns.push(Arc::new(builder.finish()));
    }
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests;
