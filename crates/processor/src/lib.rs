//! Hourglass processor: the versioned, pure function from `raw_events` rows to `events` rows.
//!
//! The processor has no IO and no state that changes its answers: the same raw batch, the
//! same [`Options`] (which name the processor version to run) always give the same events
//! batch (the user-agent cache only saves work). That is what lets reprocessing rebuild
//! `events` from the immutable raw files for any time range. Every change to what it derives
//! must bump [`PROCESSOR_VERSION`] and keep the older versions in [`SUPPORTED_VERSIONS`]
//! deriving what they did, so a deployment can move history to the new version with a
//! backfill, or pin ingest to the old one while it rolls out. The version is stored in each
//! row and in the catalog for each file.
//!
//! [`process`] keeps one output row per input row, with a trailing [`BOT_FLAG`] column, so
//! that the ingester can de-duplicate and partition raw and processed rows together; [`humans`]
//! then drops the bots and the flag, giving `events` rows.

pub mod channel;
pub mod sessions;
pub mod sources;
mod url_parts;
pub mod user_agent;
pub mod visitor;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int32Array, RecordBatch, StringArray, StringBuilder,
    UInt64Builder,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use hourglass_types::schema::{self, col};

pub use url_parts::{CLICK_ID_KEYS, ReferrerParts, UTM_KEYS, UrlParts};

/// The newest version of the derivation rules: what new data is processed with by default.
/// Bump it whenever any derived value could change.
///
/// 1: host, path and UTM values. 2: click id, referrer page, source, channel, user agent,
/// device, bots left out, visitor id. 3: the previous day's visitor id for cookieless
/// events early in their UTC day. 4: Meta AI, Qwen, Kimi and Microsoft 365 Copilot are
/// AI assistants (version 3 took their visits for referrals).
pub const PROCESSOR_VERSION: i32 = 4;

/// The versions this build can run. Versions 1 and 2 predate `prev_visitor_id` and are not
/// kept: data they produced is rebuilt with a supported version by a backfill.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<i32> = 3..=PROCESSOR_VERSION;

/// `version` if this build can run it.
pub fn supported(version: i32) -> Result<i32, UnsupportedVersion> {
    if SUPPORTED_VERSIONS.contains(&version) { Ok(version) } else { Err(UnsupportedVersion { version }) }
}

/// A processor version this build cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "processor version {version} is not supported by this build (it runs versions {first} to {last})",
    first = SUPPORTED_VERSIONS.start(),
    last = SUPPORTED_VERSIONS.end()
)]
pub struct UnsupportedVersion {
    /// The version asked for.
    pub version: i32,
}

/// Name of the trailing column of [`process`]'s output that marks bots.
pub const BOT_FLAG: &str = "__is_bot";

/// Why a raw batch could not be processed; always a bug upstream, since raw batches are built
/// by the ingester against the raw schema.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The input batch does not have the `raw_events` schema.
    #[error("input batch does not have the expected schema: missing or mistyped column {column}")]
    BadInput {
        /// The column that is missing or has the wrong type.
        column: &'static str,
    },
    /// Arrow refused to assemble the output batch.
    #[error("assembling the events batch")]
    Arrow(#[from] ArrowError),
    /// The options name a version this build cannot run.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedVersion),
}

/// What the derivation depends on besides the raw rows: the tenant's settings and the
/// processor version to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Identified mode: a `user_id` identifies the visitor (rule 1 of `visitor_id`).
    pub identified_mode: bool,
    /// The processor version to run, one of [`SUPPORTED_VERSIONS`] (see [`supported`]); it is
    /// also what the rows' `processor_version` says.
    pub version: i32,
}

impl Options {
    /// The options of a tenant with `settings` (the defaults for none), running `version`.
    pub fn for_tenant(settings: Option<&hourglass_types::TenantSettings>, version: i32) -> Self {
        Self { identified_mode: settings.is_some_and(|s| s.identified_mode), version }
    }
}

impl Default for Options {
    /// Anonymous visitors, the newest version.
    fn default() -> Self {
        Self { identified_mode: false, version: PROCESSOR_VERSION }
    }
}

static STAGED: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = schema::events().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(BOT_FLAG, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
});

/// The schema of [`process`]'s output: `events` and the [`BOT_FLAG`] column.
pub fn staged_schema() -> SchemaRef {
    Arc::clone(&STAGED)
}

fn strings<'a>(raw: &'a RecordBatch, column: &'static str) -> Result<&'a StringArray, ProcessError> {
    raw.column_by_name(column)
        .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        .ok_or(ProcessError::BadInput { column })
}

fn value(array: &StringArray, i: usize) -> Option<&str> {
    array.is_valid(i).then(|| array.value(i))
}

/// What is derived once per distinct (page URL, referrer) pair of a batch: pages and their
/// referrers repeat, and parsing them dominates the processor's cost.
struct Traffic {
    page: UrlParts,
    referrer_page: Option<String>,
    source: Option<String>,
    channel: &'static str,
}

fn traffic_of(url: Option<&str>, referrer: Option<&str>, version: i32) -> Traffic {
    let page = url.map(UrlParts::parse).unwrap_or_default();
    let referrer = referrer.and_then(ReferrerParts::parse);
    let source = channel::source_of(&page, referrer.as_ref(), version);
    let lower = |v: &Option<String>| v.as_deref().unwrap_or("").to_lowercase();
    let source_key = source.as_ref().map(|s| s.name.to_lowercase()).unwrap_or_default();
    let channel = channel::channel_of(&channel::ChannelInput {
        source: &source_key,
        category: source.as_ref().and_then(|s| s.category),
        medium: &lower(&page.utm[1]),
        campaign: &lower(&page.utm[2]),
        paid_click: matches!(page.click_id, Some("gclid" | "msclkid")),
    });
    let referrer_page = referrer.filter(|r| !channel::is_self_referral(r, &page)).map(|r| r.page);
    Traffic { page, referrer_page, source: source.map(|s| s.name), channel }
}

/// Derives the processed rows of a `raw_events` batch, row for row, with the [`BOT_FLAG`]
/// column last; see [`humans`].
pub fn process(raw: &RecordBatch, options: &Options) -> Result<RecordBatch, ProcessError> {
    let version = supported(options.version)?;
    let raw_schema = schema::raw_events();
    if raw.schema().fields() != raw_schema.fields() {
        return Err(ProcessError::BadInput { column: "(schema)" });
    }
    let tenants = strings(raw, col::TENANT_ID)?;
    let event_ids = strings(raw, col::EVENT_ID)?;
    let urls = strings(raw, col::URL)?;
    let referrers = strings(raw, col::REFERRER)?;
    let agents = strings(raw, col::USER_AGENT)?;
    let user_ids = strings(raw, col::USER_ID)?;
    let client_ids = strings(raw, col::CLIENT_ID)?;
    let ip_hashes = strings(raw, col::IP_HASH)?;
    let ip_hashes_prev = strings(raw, col::IP_HASH_PREV)?;

    let rows = raw.num_rows();
    let text = || StringBuilder::with_capacity(rows, rows * 8);
    let mut hostname = text();
    let mut path = text();
    let mut utm: [StringBuilder; 5] = std::array::from_fn(|_| text());
    let (mut click_id, mut referrer_page, mut source, mut channel) = (text(), text(), text(), text());
    let (mut browser, mut browser_version, mut os, mut os_version, mut device) =
        (text(), text(), text(), text(), text());
    let mut visitor = UInt64Builder::with_capacity(rows);
    let mut prev_visitor = UInt64Builder::with_capacity(rows);
    let mut bots = BooleanBuilder::with_capacity(rows);

    let mut traffic: HashMap<(Option<&str>, Option<&str>), Traffic> = HashMap::new();
    let mut agents_seen: HashMap<&str, Arc<user_agent::Agent>> = HashMap::new();
    let no_agent = Arc::new(user_agent::Agent::default());
    for i in 0..rows {
        let (url, referrer) = (value(urls, i), value(referrers, i));
        let t = traffic.entry((url, referrer)).or_insert_with(|| traffic_of(url, referrer, version));
        hostname.append_option(t.page.hostname.as_deref());
        path.append_option(t.page.path.as_deref());
        for (builder, value) in utm.iter_mut().zip(t.page.utm.iter()) {
            builder.append_option(value.as_deref());
        }
        click_id.append_option(t.page.click_id);
        referrer_page.append_option(t.referrer_page.as_deref());
        source.append_option(t.source.as_deref());
        channel.append_value(t.channel);

        let ua = value(agents, i);
        let agent = match ua {
            Some(ua) => agents_seen.entry(ua).or_insert_with(|| user_agent::parse_cached(ua)),
            None => &no_agent,
        };
        browser.append_option(agent.browser.as_deref());
        browser_version.append_option(agent.browser_version.as_deref());
        os.append_option(agent.os.as_deref());
        os_version.append_option(agent.os_version.as_deref());
        device.append_option(agent.device.map(user_agent::Device::label));
        bots.append_value(agent.is_bot);

        let who = visitor::Identity {
            tenant: tenants.value(i),
            user_id: value(user_ids, i),
            client_id: value(client_ids, i),
            ip_hash: value(ip_hashes, i),
            user_agent: ua,
            hostname: t.page.hostname.as_deref(),
            event_id: event_ids.value(i),
        };
        visitor.append_value(visitor::visitor_id(&who, options.identified_mode));
        let previous = value(ip_hashes_prev, i);
        prev_visitor.append_option(visitor::previous_day_visitor_id(&who, options.identified_mode, previous));
    }

    let mut columns: Vec<ArrayRef> = raw.columns().to_vec();
    columns.push(Arc::new(hostname.finish()));
    columns.push(Arc::new(path.finish()));
    for mut builder in utm {
        columns.push(Arc::new(builder.finish()));
    }
    for mut builder in [click_id, referrer_page, source, channel, browser, browser_version, os, os_version, device] {
        columns.push(Arc::new(builder.finish()));
    }
    columns.push(Arc::new(visitor.finish()));
    columns.push(Arc::new(prev_visitor.finish()));
    columns.push(Arc::new(Int32Array::from(vec![version; rows])));
    columns.push(Arc::new(bots.finish()));
    Ok(RecordBatch::try_new(staged_schema(), columns)?)
}

/// The `events` rows of processed rows: bots dropped, the [`BOT_FLAG`] column removed.
pub fn humans(staged: &RecordBatch) -> Result<RecordBatch, ProcessError> {
    let flag = staged
        .column_by_name(BOT_FLAG)
        .and_then(|a| a.as_boolean_opt())
        .ok_or(ProcessError::BadInput { column: BOT_FLAG })?;
    let events = schema::events();
    if staged.num_columns() != events.fields().len() + 1 {
        return Err(ProcessError::BadInput { column: "(schema)" });
    }
    let columns: Vec<ArrayRef> = staged.columns()[..events.fields().len()].to_vec();
    let batch = RecordBatch::try_new(events, columns)?;
    if flag.true_count() == 0 {
        return Ok(batch);
    }
    let keep: BooleanArray = flag.iter().map(|bot| Some(bot != Some(true))).collect();
    Ok(filter_record_batch(&batch, &keep)?)
}

#[cfg(test)]
mod tests;
