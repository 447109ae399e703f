//! Sessions by the definition in ANALYTICS.md, computed from a tenant's `events` rows.
//!
//! A session is a run of one visitor's events, in time order, with no gap over the tenant's
//! timeout (compared in milliseconds); events that carry a client `session_id` are grouped by
//! (visitor, session id) instead, and the visitor's other events are sessionized by the gap
//! rule on their own. A cookieless session that crosses midnight continues: a session whose
//! first event has a `prev_visitor_id` (the same browser under the previous day's salt) joins
//! that visitor's session when the gap to its last event is within the timeout (for client
//! session ids: when that visitor has a session with the same id). A session takes its
//! `visitor_id` and its attributes from its first event.
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

/// Splits `points` into sessions: each session is a list of indices into `points`, in time
/// order (ties by event id); duplicates of an event id are left out. Sessions come in the
/// order of their first event's (visitor, time).
pub fn group(points: &[Point<'_>], timeout_ms: i64) -> Vec<Vec<usize>> {
    let key = |i: usize| (points[i].visitor_id, points[i].timestamp_ms, points[i].event_id);
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_unstable_by_key(|&i| key(i));
    let mut seen: HashSet<&str> = HashSet::with_capacity(points.len());
    order.retain(|&i| seen.insert(points[i].event_id));

    // Visitors some later session may continue from: only theirs need remembering.
    let continued: HashSet<u64> = order.iter().filter_map(|&i| points[i].prev_visitor_id).collect();

    let mut members: Vec<Vec<usize>> = Vec::new();
    // For continued visitors: (time, session) of each gap-rule event, in time order, and
    // the session of each client session id.
    let mut gap_events: HashMap<u64, Vec<(i64, usize)>> = HashMap::new();
    let mut by_session_id: HashMap<(u64, &str), usize> = HashMap::new();

    let mut current_visitor = None;
    let mut last_gap: Option<(i64, usize)> = None;
    for &i in &order {
        let p = points[i];
        if current_visitor != Some(p.visitor_id) {
            current_visitor = Some(p.visitor_id);
            last_gap = None;
        }
        let session = match p.session_id.filter(|s| !s.is_empty()) {
            Some(sid) => *by_session_id.entry((p.visitor_id, sid)).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            }),
            None => {
                let session = match last_gap {
                    Some((t, s)) if p.timestamp_ms - t <= timeout_ms => s,
                    _ => {
                        members.push(Vec::new());
                        members.len() - 1
                    }
                };
                last_gap = Some((p.timestamp_ms, session));
                if continued.contains(&p.visitor_id) {
                    gap_events.entry(p.visitor_id).or_default().push((p.timestamp_ms, session));
                }
                session
            }
        };
        members[session].push(i);
    }

    let mut unions = Unions((0..members.len()).collect());
    for session in 0..members.len() {
        let first = points[members[session][0]];
        let Some(previous) = first.prev_visitor_id.filter(|&v| v != first.visitor_id) else {
            continue;
        };
        let target = match first.session_id.filter(|s| !s.is_empty()) {
            Some(sid) => by_session_id.get(&(previous, sid)).copied(),
            None => gap_events.get(&previous).and_then(|events| {
                let before = events.partition_point(|&(t, _)| t <= first.timestamp_ms);
                let (t, s) = *events.get(before.checked_sub(1)?)?;
                (first.timestamp_ms - t <= timeout_ms).then_some(s)
            }),
        };
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
        let (start, end) = (times.value(first), times.value(last));
        start_b.append_value(start);
        end_b.append_value(end);
        let duration = (end - start).div_euclid(1000);

        let mut pageviews = 0i64;
        let mut key_events = 0i64;
        let mut interacted = false;
        let mut sum = 0.0f64;
        let (mut entry, mut exit) = (None, None);
        for &i in rows {
            let name = names.value(i);
            if name == PAGEVIEW {
                pageviews += 1;
                let path = paths.is_valid(i).then(|| paths.value(i));
                if entry.is_none() {
                    entry = Some(path);
                }
                exit = Some(path);
            } else if interactive.value(i) {
                interacted = true;
            }
            if rules.key_events.iter().any(|k| k == name) {
                key_events += 1;
            }
            if revenue.is_valid(i) {
                let currency = opt(currencies, i);
                if currency.is_none_or(|c| c.eq_ignore_ascii_case(&rules.reporting_currency)) {
                    sum += revenue.value(i);
                }
            }
        }
        let bounce = pageviews < 2 && !interacted;
        duration_b.append_value(if bounce { 0 } else { duration });
        events_b.append_value(rows.len() as i64);
        pageviews_b.append_value(pageviews);
        key_events_b.append_value(key_events);
        bounce_b.append_value(bounce);
        engaged_b.append_value(duration > ENGAGED_AFTER_SECS || pageviews >= 2 || key_events > 0);
        revenue_b.append_value(sum);
        entry_b.append_option(entry.flatten());
        exit_b.append_option(exit.flatten());
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
