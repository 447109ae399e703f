//! The facts rollup SQL reads for one UTC hour: the hour's events with their sessions' labels,
//! and the sessions that start in the hour, built from sessionized windows with the same labels
//! the raw report path uses, so rollups and raw answers agree by construction of their inputs.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use hourglass_processor::sessions::{PAGEVIEW, SessionRules};
use hourglass_types::schema::timestamp_type;

use crate::dataset::{Dataset, NO_SESSION};
use crate::dimension::{EventDim, VISIT_DIMS};
use crate::time::TimeRange;

/// FNV-1a over `bytes`, continuing from `h`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A hash of the tenant settings sessions and metrics depend on: rollup rows computed under
/// other settings are not used.
pub fn rules_hash(rules: &SessionRules) -> u64 {
    let mut h = fnv(FNV_OFFSET, &rules.timeout_ms.to_le_bytes());
    for k in &rules.key_events {
        h = fnv(h, k.as_bytes());
        h = fnv(h, &[0]);
    }
    fnv(h, rules.reporting_currency.as_bytes())
}

/// A session's key in sketches: a hash of its first event's id.
fn session_key(event_id: &str) -> u64 {
    fnv(FNV_OFFSET, event_id.as_bytes())
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

fn head() -> Vec<Field> {
    vec![text("tenant_id"), Field::new("hour", timestamp_type(), false), Field::new("rules", DataType::UInt64, false)]
}

fn labels() -> Vec<Field> {
    VISIT_DIMS.iter().map(|(_, name)| text(name)).collect()
}

fn list(name: &str) -> Field {
    Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false)
}

static EVENT_FACTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = head();
    f.extend([
        text("name"),
        text("page"),
        text("hostname"),
        int("is_pageview"),
        Field::new("revenue", DataType::Float64, false),
    ]);
    f.extend(labels());
    Arc::new(Schema::new(f))
});

static SESSION_FACTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = head();
    f.extend([
        Field::new("visitor_id", DataType::UInt64, false),
        Field::new("session_key", DataType::UInt64, false),
        int("is_bounce"),
        int("duration"),
        int("pageviews"),
        int("is_engaged"),
    ]);
    f.extend(labels());
    f.extend([list("pages"), list("names"), list("hostnames")]);
    Arc::new(Schema::new(f))
});

static EVENT_PROP_FACTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = head();
    f.extend([
        text("name"),
        text("prop_key"),
        text("prop_value"),
        int("is_pageview"),
        Field::new("revenue", DataType::Float64, false),
    ]);
    Arc::new(Schema::new(f))
});

static SESSION_PROP_FACTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut f = head();
    f.extend([
        text("name"),
        text("prop_key"),
        text("prop_value"),
        Field::new("visitor_id", DataType::UInt64, false),
        Field::new("session_key", DataType::UInt64, false),
        int("is_bounce"),
        int("duration"),
        int("pageviews"),
        int("is_engaged"),
    ]);
    Arc::new(Schema::new(f))
});

/// The four relations rollup SQL reads, by name.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Each event of the hour with its session's labels.
    pub event_facts: RecordBatch,
    /// Each session starting in the hour, with the values its events had.
    pub session_facts: RecordBatch,
    /// Each prop of each event of the hour.
    pub event_prop_facts: RecordBatch,
    /// Each distinct (name, key, value) of each session starting in the hour.
    pub session_prop_facts: RecordBatch,
}

impl Facts {
    /// The relations with their SQL names.
    pub fn tables(&self) -> [(&'static str, &RecordBatch); 4] {
        [
            ("event_facts", &self.event_facts),
            ("session_facts", &self.session_facts),
            ("event_prop_facts", &self.event_prop_facts),
            ("session_prop_facts", &self.session_prop_facts),
        ]
    }
}

/// The common first columns of every relation.
#[derive(Default)]
struct Head {
    tenant: StringBuilder,
    hour: TimestampMillisecondBuilder,
    rules: UInt64Builder,
}

impl Head {
    fn push(&mut self, tenant: &str, hour: i64, rules: u64) {
        self.tenant.append_value(tenant);
        self.hour.append_value(hour);
        self.rules.append_value(rules);
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.tenant.finish()),
            Arc::new(self.hour.finish().with_timezone("UTC")),
            Arc::new(self.rules.finish()),
        ]
    }
}

/// Session sums shared by session relations.
#[derive(Default)]
struct SessionSums {
    visitor: UInt64Builder,
    key: UInt64Builder,
    bounce: Int64Builder,
    duration: Int64Builder,
    pageviews: Int64Builder,
    engaged: Int64Builder,
}

impl SessionSums {
    fn push(&mut self, visitor: u64, key: u64, s: &hourglass_processor::sessions::Summary) {
        self.visitor.append_value(visitor);
        self.key.append_value(key);
        self.bounce.append_value(i64::from(s.is_bounce));
        self.duration.append_value(s.duration_secs.max(0));
        self.pageviews.append_value(s.pageviews.max(0));
        self.engaged.append_value(i64::from(s.is_engaged));
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.visitor.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.bounce.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.pageviews.finish()),
            Arc::new(self.engaged.finish()),
        ]
    }
}

fn string_builders(n: usize) -> Vec<StringBuilder> {
    (0..n).map(|_| StringBuilder::new()).collect()
}

fn finish_strings(builders: &mut [StringBuilder]) -> Vec<ArrayRef> {
    builders.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect()
}

/// Accumulates the facts of one hour over many tenants.
pub struct FactsBuilder {
    hour: TimeRange,
    events_head: Head,
    events_text: Vec<StringBuilder>,
    events_pageview: Int64Builder,
    events_revenue: Float64Builder,
    events_labels: Vec<StringBuilder>,
    sessions_head: Head,
    sessions_sums: SessionSums,
    sessions_labels: Vec<StringBuilder>,
    sessions_lists: Vec<ListBuilder<StringBuilder>>,
    event_props_head: Head,
    event_props_text: Vec<StringBuilder>,
    event_props_pageview: Int64Builder,
    event_props_revenue: Float64Builder,
    session_props_head: Head,
    session_props_text: Vec<StringBuilder>,
    session_props_sums: SessionSums,
}

impl FactsBuilder {
    /// Facts of the UTC hour `hour`.
    pub fn new(hour: TimeRange) -> Self {
        Self {
            hour,
            events_head: Head::default(),
            events_text: string_builders(3),
            events_pageview: Int64Builder::new(),
            events_revenue: Float64Builder::new(),
            events_labels: string_builders(VISIT_DIMS.len()),
            sessions_head: Head::default(),
            sessions_sums: SessionSums::default(),
            sessions_labels: string_builders(VISIT_DIMS.len()),
            sessions_lists: (0..3).map(|_| ListBuilder::new(StringBuilder::new())).collect(),
            event_props_head: Head::default(),
            event_props_text: string_builders(3),
            event_props_pageview: Int64Builder::new(),
            event_props_revenue: Float64Builder::new(),
            session_props_head: Head::default(),
            session_props_text: string_builders(3),
            session_props_sums: SessionSums::default(),
        }
    }

    /// Adds `tenant`'s facts from `data`, a window sessionized under `rules`.
    pub fn add(&mut self, tenant: &str, data: &Dataset, rules: &SessionRules) {
        let hour = self.hour.start_ms;
        let rules_id = rules_hash(rules);
        let events = &data.events;
        for i in 0..events.len() {
            if !self.hour.contains(events.time(i)) || data.session_of[i] == NO_SESSION {
                continue;
            }
            let s = &data.sessions[data.session_of[i] as usize];
            let is_pageview = i64::from(events.name(i) == PAGEVIEW);
            let revenue = events.revenue(i, rules);
            self.events_head.push(tenant, hour, rules_id);
            for (b, dim) in self.events_text.iter_mut().zip([EventDim::Name, EventDim::Page, EventDim::Hostname]) {
                b.append_value(events.event_label(&dim, i));
            }
            self.events_pageview.append_value(is_pageview);
            self.events_revenue.append_value(revenue);
            for (b, (dim, _)) in self.events_labels.iter_mut().zip(VISIT_DIMS) {
                b.append_value(data.visit_label(dim, s));
            }
            for (key, value) in events.props_of(i) {
                self.event_props_head.push(tenant, hour, rules_id);
                for (b, v) in self.event_props_text.iter_mut().zip([events.name(i), key, value]) {
                    b.append_value(v);
                }
                self.event_props_pageview.append_value(is_pageview);
                self.event_props_revenue.append_value(revenue);
            }
        }
        for s in &data.sessions {
            if !self.hour.contains(s.start_ms) {
                continue;
            }
            let key = session_key(events.event_id(s.first()));
            self.sessions_head.push(tenant, hour, rules_id);
            self.sessions_sums.push(s.visitor, key, &s.summary);
            for (b, (dim, _)) in self.sessions_labels.iter_mut().zip(VISIT_DIMS) {
                b.append_value(data.visit_label(dim, s));
            }
            for (b, dim) in self.sessions_lists.iter_mut().zip([EventDim::Page, EventDim::Name, EventDim::Hostname]) {
                let values: BTreeSet<&str> = s.rows.iter().map(|&r| events.event_label(&dim, r)).collect();
                for v in values {
                    b.values().append_value(v);
                }
                b.append(true);
            }
            let triples: BTreeSet<(&str, &str, &str)> = s
                .rows
                .iter()
                .flat_map(|&r| events.props_of(r).into_iter().map(move |(k, v)| (events.name(r), k, v)))
                .collect();
            for (name, k, v) in triples {
                self.session_props_head.push(tenant, hour, rules_id);
                for (b, x) in self.session_props_text.iter_mut().zip([name, k, v]) {
                    b.append_value(x);
                }
                self.session_props_sums.push(s.visitor, key, &s.summary);
            }
        }
    }

    /// The relations.
    pub fn finish(mut self) -> Result<Facts, arrow::error::ArrowError> {
        let mut columns = self.events_head.finish();
        columns.extend(finish_strings(&mut self.events_text));
        columns.push(Arc::new(self.events_pageview.finish()));
        columns.push(Arc::new(self.events_revenue.finish()));
        columns.extend(finish_strings(&mut self.events_labels));
        let event_facts = RecordBatch::try_new(Arc::clone(&EVENT_FACTS), columns)?;

        let mut columns = self.sessions_head.finish();
        columns.extend(self.sessions_sums.finish());
        columns.extend(finish_strings(&mut self.sessions_labels));
        for b in &mut self.sessions_lists {
            columns.push(Arc::new(b.finish()));
        }
        let session_facts = RecordBatch::try_new(Arc::clone(&SESSION_FACTS), columns)?;

        let mut columns = self.event_props_head.finish();
        columns.extend(finish_strings(&mut self.event_props_text));
        columns.push(Arc::new(self.event_props_pageview.finish()));
        columns.push(Arc::new(self.event_props_revenue.finish()));
        let event_prop_facts = RecordBatch::try_new(Arc::clone(&EVENT_PROP_FACTS), columns)?;

        let mut columns = self.session_props_head.finish();
        columns.extend(finish_strings(&mut self.session_props_text));
        columns.extend(self.session_props_sums.finish());
        let session_prop_facts = RecordBatch::try_new(Arc::clone(&SESSION_PROP_FACTS), columns)?;
        Ok(Facts { event_facts, session_facts, event_prop_facts, session_prop_facts })
    }
}
