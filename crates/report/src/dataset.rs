//! A tenant's events of a time window, sessionized, with the labels reports group and filter
//! by.
//!
//! The window is the report's range widened by the session timeout on each side and widened
//! again while a session that touches the range might continue past the window's edge: every
//! session is a chain of events at most one timeout apart (decision 43), so a session whose
//! first event is at least a timeout after the window's start cannot have an earlier event
//! outside it, and likewise at the end. The sessions found are then exactly those the whole
//! history would give.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int32Array, MapArray, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt64Array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use hourglass_processor::sessions::{self, Point, SessionRules, Summary, SummaryColumns};
use hourglass_types::schema::col;

use crate::dimension::{DIRECT, EventDim, NONE, NOT_SET, VisitDim, screen_class};
use crate::error::{Error, Result};
use crate::time::TimeRange;

/// Where a report reads a tenant's events from.
#[async_trait]
pub trait EventSource: Send + Sync {
    /// The tenant's events with timestamps in `range`, with at least `columns`.
    async fn read(&self, columns: &[&str], range: TimeRange) -> Result<Vec<RecordBatch>>;
}

/// The columns a report reads: what the sessionizer needs, and `props` when asked for.
pub fn columns(with_props: bool) -> Vec<&'static str> {
    let mut columns: Vec<&'static str> = sessions::INPUT_COLUMNS.to_vec();
    if with_props {
        columns.push(col::PROPS);
    }
    columns
}

/// One session of the window.
#[derive(Debug, Clone)]
pub struct Session {
    /// Rows of its events, in time order.
    pub rows: Vec<usize>,
    /// Its first event's time.
    pub start_ms: i64,
    /// Its last event's time.
    pub end_ms: i64,
    /// The visitor of its first event.
    pub visitor: u64,
    /// What the metrics need.
    pub summary: Summary,
}

impl Session {
    /// Row of the first event, whose attributes the session takes.
    pub fn first(&self) -> usize {
        self.rows[0]
    }
}

/// The loaded events, as plain arrays.
pub struct Events {
    batch: RecordBatch,
    times: TimestampMillisecondArray,
    names: StringArray,
    visitors: UInt64Array,
    revenue: Float64Array,
    currencies: StringArray,
    interactive: BooleanArray,
    screen: Int32Array,
    text: HashMap<&'static str, StringArray>,
    props: Option<MapArray>,
}

/// Text columns labels are read from.
const TEXT_COLUMNS: [&str; 19] = [
    col::EVENT_ID,
    col::SESSION_ID,
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
    col::COUNTRY,
    col::LANGUAGE,
    col::DEVICE,
    col::BROWSER,
    col::BROWSER_VERSION,
    col::OS,
    col::OS_VERSION,
];

fn plain(field: &Field) -> Field {
    match field.data_type() {
        DataType::Utf8View | DataType::LargeUtf8 => field.clone().with_data_type(DataType::Utf8),
        _ => field.clone(),
    }
}

/// Casts `batches` to one batch whose string columns are plain `Utf8`.
fn to_plain(batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else { return Ok(None) };
    let schema: SchemaRef = Arc::new(Schema::new(first.schema().fields().iter().map(|f| plain(f)).collect::<Vec<_>>()));
    let converted = batches
        .iter()
        .map(|b| hourglass_query::to_query_schema(b, &schema).map_err(hourglass_query::Error::from))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Some(concat_batches(&schema, &converted)?))
}

fn column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a Arc<dyn Array>> {
    batch.column_by_name(name).ok_or(Error::MissingColumn(name))
}

impl Events {
    fn new(batch: RecordBatch) -> Result<Self> {
        let bad = |name: &'static str| Error::MissingColumn(name);
        let times = column(&batch, col::TIMESTAMP)?
            .as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>()
            .ok_or(bad(col::TIMESTAMP))?
            .clone();
        let visitors = column(&batch, col::VISITOR_ID)?
            .as_primitive_opt::<arrow::datatypes::UInt64Type>()
            .ok_or(bad(col::VISITOR_ID))?
            .clone();
        let revenue = column(&batch, col::REVENUE)?
            .as_primitive_opt::<arrow::datatypes::Float64Type>()
            .ok_or(bad(col::REVENUE))?
            .clone();
        let screen = column(&batch, col::SCREEN_WIDTH)?
            .as_primitive_opt::<arrow::datatypes::Int32Type>()
            .ok_or(bad(col::SCREEN_WIDTH))?
            .clone();
        let interactive = column(&batch, col::INTERACTIVE)?.as_boolean_opt().ok_or(bad(col::INTERACTIVE))?.clone();
        let string = |name: &'static str| -> Result<StringArray> {
            Ok(column(&batch, name)?.as_string_opt::<i32>().ok_or(bad(name))?.clone())
        };
        let names = string(col::NAME)?;
        let currencies = string(col::CURRENCY)?;
        let mut text = HashMap::new();
        for name in TEXT_COLUMNS {
            text.insert(name, string(name)?);
        }
        let props = batch.column_by_name(col::PROPS).and_then(|c| c.as_map_opt().cloned());
        Ok(Self { times, names, visitors, revenue, currencies, interactive, screen, text, props, batch })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Event time of row `i`.
    pub fn time(&self, i: usize) -> i64 {
        self.times.value(i)
    }

    /// Visitor of row `i`.
    pub fn visitor_of(&self, i: usize) -> u64 {
        self.visitors.value(i)
    }

    /// Event name of row `i`.
    pub fn name(&self, i: usize) -> &str {
        self.names.value(i)
    }

    /// Whether row `i`'s revenue counts in the reporting currency, and how much.
    pub fn revenue(&self, i: usize, rules: &SessionRules) -> f64 {
        if self.revenue.is_valid(i) {
            let currency = self.currencies.is_valid(i).then(|| self.currencies.value(i)).filter(|c| !c.is_empty());
            if sessions::counts_revenue(currency, rules) {
                return self.revenue.value(i);
            }
        }
        0.0
    }

    fn text(&self, name: &'static str, i: usize) -> Option<&str> {
        let array = self.text.get(name)?;
        array.is_valid(i).then(|| array.value(i)).filter(|v| !v.is_empty())
    }

    /// The value of prop `key` on row `i`.
    pub fn prop(&self, key: &str, i: usize) -> Option<&str> {
        let props = self.props.as_ref()?;
        if !props.is_valid(i) {
            return None;
        }
        let offsets = props.value_offsets();
        let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
        let keys = props.keys().as_string_opt::<i32>()?;
        let values = props.values().as_string_opt::<i32>()?;
        (start..end).find(|&j| keys.value(j) == key).and_then(|j| values.is_valid(j).then(|| values.value(j)))
    }

    /// Every (key, value) prop of row `i` with a non-empty value.
    pub fn props_of(&self, i: usize) -> Vec<(&str, &str)> {
        let Some(props) = self.props.as_ref().filter(|p| p.is_valid(i)) else { return Vec::new() };
        let (Some(keys), Some(values)) = (props.keys().as_string_opt::<i32>(), props.values().as_string_opt::<i32>())
        else {
            return Vec::new();
        };
        let offsets = props.value_offsets();
        (offsets[i] as usize..offsets[i + 1] as usize)
            .filter(|&j| values.is_valid(j) && !values.value(j).is_empty())
            .map(|j| (keys.value(j), values.value(j)))
            .collect()
    }

    /// Row `i`'s event id.
    pub fn event_id(&self, i: usize) -> &str {
        self.text.get(col::EVENT_ID).map_or("", |a| a.value(i))
    }

    /// Row `i`'s label for an event dimension.
    pub fn event_label<'a>(&'a self, dim: &EventDim, i: usize) -> &'a str {
        match dim {
            EventDim::Name => self.name(i),
            EventDim::Page => self.text(col::PATH, i).unwrap_or(NONE),
            EventDim::Hostname => self.text(col::HOSTNAME, i).unwrap_or(NONE),
            EventDim::Prop(key) => self.prop(key, i).filter(|v| !v.is_empty()).unwrap_or(NONE),
        }
    }
}

/// A sessionized window.
pub struct Dataset {
    /// The events.
    pub events: Events,
    /// The sessions, in order of (visitor, start).
    pub sessions: Vec<Session>,
    /// The session of each row; `u32::MAX` for a duplicate of another row's event id.
    pub session_of: Vec<u32>,
    /// The window the events were read from.
    pub window: TimeRange,
}

/// The session a duplicate row belongs to: none.
pub const NO_SESSION: u32 = u32::MAX;

impl Dataset {
    /// Sessionizes `batches` (read from `window`) by `rules`.
    pub fn build(batches: &[RecordBatch], window: TimeRange, rules: &SessionRules) -> Result<Self> {
        let batch = match to_plain(batches)? {
            Some(b) => b,
            None => RecordBatch::new_empty(Arc::new(Schema::new(Vec::<Field>::new()))),
        };
        if batch.num_columns() == 0 {
            return Ok(Self { events: Events::empty()?, sessions: Vec::new(), session_of: Vec::new(), window });
        }
        let events = Events::new(batch)?;
        let previous = column(&events.batch, col::PREV_VISITOR_ID)?
            .as_primitive_opt::<arrow::datatypes::UInt64Type>()
            .ok_or(Error::MissingColumn(col::PREV_VISITOR_ID))?;
        let ids = events.text.get(col::EVENT_ID).ok_or(Error::MissingColumn(col::EVENT_ID))?;
        let session_ids = events.text.get(col::SESSION_ID).ok_or(Error::MissingColumn(col::SESSION_ID))?;
        let points: Vec<Point<'_>> = (0..events.len())
            .map(|i| Point {
                timestamp_ms: events.times.value(i),
                event_id: ids.value(i),
                visitor_id: events.visitors.value(i),
                prev_visitor_id: previous.is_valid(i).then(|| previous.value(i)),
                session_id: session_ids.is_valid(i).then(|| session_ids.value(i)).filter(|s| !s.is_empty()),
            })
            .collect();
        let groups = sessions::group(&points, rules.timeout_ms);
        let columns = SummaryColumns {
            times: &events.times,
            names: &events.names,
            interactive: &events.interactive,
            revenue: &events.revenue,
            currencies: &events.currencies,
        };
        let mut session_of = vec![NO_SESSION; events.len()];
        let mut list = Vec::with_capacity(groups.len());
        for (n, rows) in groups.into_iter().enumerate() {
            let summary = sessions::summarize(&rows, &columns, rules);
            for &r in &rows {
                session_of[r] = n as u32;
            }
            let (first, last) = (rows[0], rows[rows.len() - 1]);
            list.push(Session {
                start_ms: events.times.value(first),
                end_ms: events.times.value(last),
                visitor: events.visitors.value(first),
                summary,
                rows,
            });
        }
        Ok(Self { events, sessions: list, session_of, window })
    }

    /// Session `s`'s label for a visit dimension.
    pub fn visit_label(&self, dim: VisitDim, s: &Session) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        let e = &self.events;
        let first = s.first();
        let text = |name: &'static str, empty: &'static str| Cow::Borrowed(e.text(name, first).unwrap_or(empty));
        match dim {
            VisitDim::Source => text(col::SOURCE, DIRECT),
            VisitDim::Channel => text(col::CHANNEL, NOT_SET),
            VisitDim::Referrer => text(col::REFERRER_PAGE, DIRECT),
            VisitDim::UtmSource => text(col::UTM_SOURCE, NOT_SET),
            VisitDim::UtmMedium => text(col::UTM_MEDIUM, NOT_SET),
            VisitDim::UtmCampaign => text(col::UTM_CAMPAIGN, NOT_SET),
            VisitDim::UtmContent => text(col::UTM_CONTENT, NOT_SET),
            VisitDim::UtmTerm => text(col::UTM_TERM, NOT_SET),
            VisitDim::EntryPage => Cow::Borrowed(s.summary.entry.and_then(|r| e.text(col::PATH, r)).unwrap_or(NONE)),
            VisitDim::ExitPage => Cow::Borrowed(s.summary.exit.and_then(|r| e.text(col::PATH, r)).unwrap_or(NONE)),
            VisitDim::Device => text(col::DEVICE, NOT_SET),
            VisitDim::Browser => text(col::BROWSER, NOT_SET),
            VisitDim::BrowserVersion => text(col::BROWSER_VERSION, NOT_SET),
            VisitDim::Os => text(col::OS, NOT_SET),
            VisitDim::OsVersion => text(col::OS_VERSION, NOT_SET),
            VisitDim::Country => text(col::COUNTRY, NOT_SET),
            VisitDim::Screen => {
                Cow::Borrowed(if e.screen.is_valid(first) { screen_class(e.screen.value(first)) } else { NOT_SET })
            }
            VisitDim::Language => match e.text(col::LANGUAGE, first).and_then(sessions::primary_language) {
                Some(lang) => Cow::Owned(lang),
                None => Cow::Borrowed(NOT_SET),
            },
        }
    }

    /// Sessions touching `range` (starting in it, or holding an event in it) whose first event
    /// is closer than `timeout_ms` after the window's start, or whose last is no more than
    /// `timeout_ms` before its end: they might continue outside the window.
    pub fn open_edges(&self, range: &TimeRange, timeout_ms: i64) -> (bool, bool) {
        let (mut low, mut high) = (false, false);
        for s in &self.sessions {
            let touches = range.contains(s.start_ms)
                || (s.start_ms < range.end_ms
                    && s.end_ms >= range.start_ms
                    && s.rows.iter().any(|&r| range.contains(self.events.time(r))));
            if !touches {
                continue;
            }
            low |= s.start_ms - self.window.start_ms < timeout_ms;
            high |= self.window.end_ms - s.end_ms <= timeout_ms;
            if low && high {
                break;
            }
        }
        (low, high)
    }
}

impl Events {
    fn empty() -> Result<Self> {
        let schema = Arc::new(Schema::new(Vec::<Field>::new()));
        let batch = RecordBatch::new_empty(schema);
        Ok(Self {
            batch,
            times: TimestampMillisecondArray::from(Vec::<i64>::new()),
            names: StringArray::from(Vec::<String>::new()),
            visitors: UInt64Array::from(Vec::<u64>::new()),
            revenue: Float64Array::from(Vec::<f64>::new()),
            currencies: StringArray::from(Vec::<String>::new()),
            interactive: BooleanArray::from(Vec::<bool>::new()),
            screen: Int32Array::from(Vec::<i32>::new()),
            text: HashMap::new(),
            props: None,
        })
    }
}

/// Reads the window of `range` from `source` and sessionizes it, widening the window while a
/// session touching the range may continue past its edge (see the module docs).
pub async fn load(
    source: &dyn EventSource,
    range: TimeRange,
    rules: &SessionRules,
    with_props: bool,
) -> Result<Dataset> {
    let timeout = rules.timeout_ms;
    let columns = columns(with_props);
    let mut window = TimeRange { start_ms: range.start_ms - timeout, end_ms: range.end_ms + timeout + 1 };
    let mut batches = source.read(&columns, window).await?;
    let mut step = timeout.max(1);
    loop {
        let dataset = Dataset::build(&batches, window, rules)?;
        let (low, high) = dataset.open_edges(&range, timeout);
        if !low && !high {
            return Ok(dataset);
        }
        drop(dataset);
        // Each widening is at least a timeout, so a session whose first (last) event stays
        // put is complete after it; doubling bounds the reads for long chains.
        if low {
            let earlier = TimeRange { start_ms: window.start_ms - step, end_ms: window.start_ms };
            batches.extend(source.read(&columns, earlier).await?);
            window.start_ms = earlier.start_ms;
        }
        if high {
            let later = TimeRange { start_ms: window.end_ms, end_ms: window.end_ms + step };
            batches.extend(source.read(&columns, later).await?);
            window.end_ms = later.end_ms;
        }
        step = step.saturating_mul(2);
    }
}
