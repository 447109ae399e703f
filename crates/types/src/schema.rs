//! The Arrow schemas of the stored tables.
//!
//! `raw_events` keeps what was received (less the IP address, which is only kept as a salted
//! hash); `events` is `raw_events` passed through the processor and adds derived columns.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Column names shared by code that builds or reads batches.
pub mod col {
    /// Tenant the event belongs to; taken from the write key, never from the body.
    pub const TENANT_ID: &str = "tenant_id";
    /// Client-chosen or assigned event id, used for de-duplication.
    pub const EVENT_ID: &str = "event_id";
    /// When the event happened (UTC, milliseconds).
    pub const TIMESTAMP: &str = "timestamp";
    /// When the ingester received it (UTC, milliseconds).
    pub const RECEIVED_AT: &str = "received_at";
    /// Event name, such as `pageview`.
    pub const NAME: &str = "name";
    /// Anonymous visitor cookie or app instance id.
    pub const CLIENT_ID: &str = "client_id";
    /// The merchant's own user id.
    pub const USER_ID: &str = "user_id";
    /// Client-provided session id.
    pub const SESSION_ID: &str = "session_id";
    /// Page URL.
    pub const URL: &str = "url";
    /// Referrer URL.
    pub const REFERRER: &str = "referrer";
    /// Page title.
    pub const TITLE: &str = "title";
    /// User-agent string.
    pub const USER_AGENT: &str = "user_agent";
    /// Salted hash of the client IP address (the raw address is never stored).
    pub const IP_HASH: &str = "ip_hash";
    /// ISO 3166 alpha-2 country code.
    pub const COUNTRY: &str = "country";
    /// Language tag.
    pub const LANGUAGE: &str = "language";
    /// Screen width in pixels.
    pub const SCREEN_WIDTH: &str = "screen_width";
    /// Revenue amount.
    pub const REVENUE: &str = "revenue";
    /// ISO 4217 currency of `revenue`.
    pub const CURRENCY: &str = "currency";
    /// Whether the event counts as an interaction (ends a bounce).
    pub const INTERACTIVE: &str = "interactive";
    /// Custom string properties.
    pub const PROPS: &str = "props";
    /// The client address hashed with the previous UTC day's salt, kept only for events in the
    /// first hours of their day (up to the longest session timeout), so that a cookieless
    /// session can continue across midnight.
    pub const IP_HASH_PREV: &str = "ip_hash_prev";
    /// Lower-case page host without a leading `www.` (events only).
    pub const HOSTNAME: &str = "hostname";
    /// Percent-decoded URL path (events only).
    pub const PATH: &str = "path";
    /// `utm_source` query parameter of the page URL (events only).
    pub const UTM_SOURCE: &str = "utm_source";
    /// `utm_medium` query parameter (events only).
    pub const UTM_MEDIUM: &str = "utm_medium";
    /// `utm_campaign` query parameter (events only).
    pub const UTM_CAMPAIGN: &str = "utm_campaign";
    /// `utm_content` query parameter (events only).
    pub const UTM_CONTENT: &str = "utm_content";
    /// `utm_term` query parameter (events only).
    pub const UTM_TERM: &str = "utm_term";
    /// Click-id query parameter of the page URL, such as `gclid` (events only).
    pub const CLICK_ID: &str = "click_id";
    /// The referrer URL without query and fragment; empty for self-referrals (events only).
    pub const REFERRER_PAGE: &str = "referrer_page";
    /// Named source: `utm_source` through the source table, else the referrer (events only).
    pub const SOURCE: &str = "source";
    /// GA4-style default channel group (events only).
    pub const CHANNEL: &str = "channel";
    /// Browser family from the user agent (events only).
    pub const BROWSER: &str = "browser";
    /// Browser version, major.minor (events only).
    pub const BROWSER_VERSION: &str = "browser_version";
    /// Operating system from the user agent (events only).
    pub const OS: &str = "os";
    /// Operating system version, major.minor (events only).
    pub const OS_VERSION: &str = "os_version";
    /// Device class: Desktop, Mobile or Tablet (events only).
    pub const DEVICE: &str = "device";
    /// Visitor id by the rules of ANALYTICS.md (events only).
    pub const VISITOR_ID: &str = "visitor_id";
    /// The cookieless visitor id under the previous UTC day's salt, where `ip_hash_prev` is set
    /// and the cookieless rule applies (events only).
    pub const PREV_VISITOR_ID: &str = "prev_visitor_id";
    /// Version of the processor that derived the row (events only).
    pub const PROCESSOR_VERSION: &str = "processor_version";
    /// Which rollup a row of `rollups` belongs to (`pages`, `sources`...).
    pub const ROLLUP_NAME: &str = "rollup_name";
}

/// The Arrow type of all timestamps: milliseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
}

/// The Arrow type of `props`: a map from string keys to string values, laid out exactly as
/// arrow's `MapBuilder` builds it with default field names.
pub fn props_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn raw_fields() -> Vec<Field> {
    use col::*;
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    vec![
        Field::new(TENANT_ID, DataType::Utf8, false),
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new(TIMESTAMP, timestamp_type(), false),
        Field::new(RECEIVED_AT, timestamp_type(), false),
        Field::new(NAME, DataType::Utf8, false),
        text(CLIENT_ID),
        text(USER_ID),
        text(SESSION_ID),
        text(URL),
        text(REFERRER),
        text(TITLE),
        text(USER_AGENT),
        text(IP_HASH),
        text(COUNTRY),
        text(LANGUAGE),
        Field::new(SCREEN_WIDTH, DataType::Int32, true),
        Field::new(REVENUE, DataType::Float64, true),
        text(CURRENCY),
        Field::new(INTERACTIVE, DataType::Boolean, false),
        Field::new(PROPS, props_type(), true),
        text(IP_HASH_PREV),
    ]
}

static RAW_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| Arc::new(Schema::new(raw_fields())));

static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use col::*;
    let mut fields = raw_fields();
    for name in
        [HOSTNAME, PATH, UTM_SOURCE, UTM_MEDIUM, UTM_CAMPAIGN, UTM_CONTENT, UTM_TERM, CLICK_ID, REFERRER_PAGE, SOURCE]
    {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    fields.push(Field::new(CHANNEL, DataType::Utf8, false));
    for name in [BROWSER, BROWSER_VERSION, OS, OS_VERSION, DEVICE] {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    fields.push(Field::new(VISITOR_ID, DataType::UInt64, false));
    fields.push(Field::new(PREV_VISITOR_ID, DataType::UInt64, true));
    fields.push(Field::new(PROCESSOR_VERSION, DataType::Int32, false));
    Arc::new(Schema::new(fields))
});

/// Schema of `raw_events`.
pub fn raw_events() -> SchemaRef {
    Arc::clone(&RAW_EVENTS)
}

/// Schema of `events`.
pub fn events() -> SchemaRef {
    Arc::clone(&EVENTS)
}

/// The dimension columns of `rollups`, each filled only by the rollups that group by it.
pub const ROLLUP_DIMENSIONS: [&str; 23] = [
    "name",
    "page",
    "hostname",
    "prop_key",
    "prop_value",
    "source",
    "channel",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "entry_page",
    "exit_page",
    "device",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "country",
    "screen",
    "language",
];

/// The count columns of `rollups`.
pub const ROLLUP_COUNTS: [&str; 7] =
    ["events", "pageviews", "visits", "bounces", "duration", "session_pageviews", "engaged"];

static ROLLUPS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new(col::TENANT_ID, DataType::Utf8, false),
        Field::new(col::ROLLUP_NAME, DataType::Utf8, false),
        // The UTC hour the row covers (its first millisecond).
        Field::new(col::TIMESTAMP, timestamp_type(), false),
        // A hash of the tenant settings the row was computed under.
        Field::new("rules", DataType::UInt64, false),
    ];
    for name in ROLLUP_DIMENSIONS {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    for name in ROLLUP_COUNTS {
        fields.push(Field::new(name, DataType::Int64, false));
    }
    fields.push(Field::new("revenue", DataType::Float64, false));
    for name in ["visitors", "visitors_hll", "sessions_hll"] {
        fields.push(Field::new(name, DataType::Binary, true));
    }
    Arc::new(Schema::new(fields))
});

/// Schema of `rollups`: one row per (tenant, rollup, UTC hour, dimension values), with event
/// counts (events in the hour), session sums (sessions starting in the hour), the exact set of
/// visitors and HyperLogLog sketches of visitors and sessions.
pub fn rollups() -> SchemaRef {
    Arc::clone(&ROLLUPS)
}

/// Schema of a stored table.
pub fn of(table: crate::TableName) -> SchemaRef {
    match table {
        crate::TableName::RawEvents => raw_events(),
        crate::TableName::Events => events(),
        crate::TableName::Rollups => rollups(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use arrow::array::{MapBuilder, StringBuilder};

    #[test]
    fn props_type_matches_map_builder() {
        let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        builder.keys().append_value("k");
        builder.values().append_value("v");
        builder.append(true).expect("append");
        assert_eq!(builder.finish().data_type(), &props_type());
    }

    #[test]
    fn events_extends_raw_events() {
        let raw = raw_events();
        let events = events();
        for (i, field) in raw.fields().iter().enumerate() {
            assert_eq!(events.field(i), field.as_ref());
        }
        assert!(events.index_of(col::PATH).is_ok());
    }
}
