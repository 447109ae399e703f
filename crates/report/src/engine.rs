//! The report engine: a request in, a response body out, for one tenant.
//!
//! Each range of a request (the report's, the comparison's) is split into the whole UTC
//! hours a fresh rollup can answer and the spans around them (edges of the range, hours not
//! rolled up yet, hours whose window still has buffered events, hours computed under other
//! tenant settings), which are answered from events. Both give partial aggregates of the
//! same queries, which add up.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use async_trait::async_trait;
use chrono_tz::Tz;
use hourglass_catalog::{Catalog, RollupHour, SettingsCache};
use hourglass_processor::sessions::SessionRules;
use hourglass_query::{Buffered, Querier};
use hourglass_types::settings::parse_timezone;
use hourglass_types::{Clock, TenantId, TenantSettings};
use serde_json::Value;

use crate::aggregate::{Spec, aggregate, merge_into};
use crate::cache::{Caches, Entry, Validators};
use crate::dataset::{self, Dataset, EventSource};
use crate::error::{Error, Result};
use crate::facts::rules_hash;
use crate::planner;
use crate::report::{Answer, Computed, Provenance, Specs, needs_props, ranges, respond, specs};
use crate::request::{Accuracy, ReportKind, ReportRequest};
use crate::rollups::{self, Rollup, definitions_version};
use crate::sketch::HLL_STANDARD_ERROR;
use crate::time::{Preset, RangeSpec, TimeRange, whole_hour_offsets};

const HOUR_MS: i64 = 3_600_000;
/// The longest span of events the raw path holds at once.
const RAW_PIECE_MS: i64 = 24 * HOUR_MS;

/// Reads a tenant's events through the querier (admitted, memory-bounded, cancellable).
struct QuerierSource<'a> {
    querier: &'a Querier,
    tenant: &'a TenantId,
}

#[async_trait]
impl EventSource for QuerierSource<'_> {
    async fn read(&self, columns: &[&str], range: TimeRange) -> Result<Vec<RecordBatch>> {
        Ok(self.querier.read_events(self.tenant, columns, range.start_ms, range.end_ms).await?.batches)
    }
}

/// Answers report requests from rollups where they can, and from the querier's view of a
/// tenant's events for the rest, keeping recent answers (see [`crate::cache`]).
#[derive(Debug)]
pub struct Engine {
    querier: Arc<Querier>,
    catalog: Arc<dyn Catalog>,
    settings: SettingsCache,
    clock: Arc<dyn Clock>,
    use_rollups: bool,
    caches: Caches,
}

fn answer(data: &Dataset, specs: &Specs, range: &TimeRange, rules: &SessionRules) -> Answer {
    Answer {
        main: aggregate(data, &specs.main, range, rules),
        bounce: specs.bounce.as_ref().map(|s| aggregate(data, s, range, rules)),
        conversion: specs.conversion.as_ref().map(|s| aggregate(data, s, range, rules)),
    }
}

/// Adds `part` into `into`, query by query.
fn merge_answer(into: &mut Answer, part: Answer) {
    merge_into(&mut into.main, part.main);
    if let Some(p) = part.bounce {
        merge_into(into.bounce.get_or_insert_with(Default::default), p);
    }
    if let Some(p) = part.conversion {
        merge_into(into.conversion.get_or_insert_with(Default::default), p);
    }
}

/// How one range was answered.
#[derive(Debug, Default)]
struct RangeOutcome {
    rows: Answer,
    totals: Answer,
    rollups: BTreeSet<&'static str>,
    rollup_hours: usize,
    raw_spans: usize,
    approximate: bool,
    /// The hours (first, last) of each window events were read from.
    windows: Vec<(i64, i64)>,
    /// The hours a rollup could answer before settings were checked, with their files (-1
    /// for hours without events).
    clean_files: BTreeSet<(i64, i64)>,
}

/// The settings and sources a request is answered with.
struct Job<'a> {
    request: &'a ReportRequest,
    tenant: &'a TenantId,
    source: QuerierSource<'a>,
    rules: SessionRules,
    row_specs: Specs,
    total_specs: Specs,
    props: bool,
    fast: bool,
    /// The tenant's buffered events, read before any events were.
    buffered: Buffered,
}

/// A hash of a value's debug form, for cache keys within this process.
fn token(value: &impl std::fmt::Debug) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{value:?}").hash(&mut h);
    h.finish()
}

impl Engine {
    /// An engine over `querier` and `catalog` (rollup state and tenant settings), reading the
    /// time from `clock`.
    pub fn new(querier: Arc<Querier>, catalog: Arc<dyn Catalog>, clock: Arc<dyn Clock>) -> Self {
        let settings = SettingsCache::new(Arc::clone(&catalog));
        let caches = Caches::new(64 << 20, 256 << 20);
        Self { querier, catalog, settings, clock, use_rollups: true, caches }
    }

    /// The same engine answering every report from events only.
    pub fn without_rollups(mut self) -> Self {
        self.use_rollups = false;
        self
    }

    /// The same engine with caches of about `response_bytes` of responses and `rollup_bytes`
    /// of rollup aggregates.
    pub fn with_cache_sizes(mut self, response_bytes: u64, rollup_bytes: u64) -> Self {
        self.caches = Caches::new(response_bytes, rollup_bytes);
        self
    }

    /// The tenant's settings (the defaults for a tenant the catalog does not know).
    async fn settings_of(&self, tenant: &TenantId) -> Result<TenantSettings> {
        Ok(self.settings.get(tenant).await?.map(|c| c.settings.clone()).unwrap_or_default())
    }

    /// The zone a request uses: its own, else the tenant's.
    fn zone(request: &ReportRequest, settings: &TenantSettings) -> Tz {
        request.timezone.or_else(|| parse_timezone(&settings.timezone)).unwrap_or(Tz::UTC)
    }

    /// The time of the tenant's first event, for the `all` preset.
    async fn first_event(&self, tenant: &TenantId) -> Result<Option<i64>> {
        let result = self.querier.query(tenant, "SELECT CAST(min(timestamp) AS BIGINT) AS first FROM events").await?;
        Ok(result.batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
            let column = b.column(0).as_primitive_opt::<arrow::datatypes::Int64Type>()?;
            column.is_valid(0).then(|| column.value(0))
        }))
    }

    /// The metadata document for `tenant`: dimensions, metrics, and the prop keys of its
    /// events of the last 30 days.
    pub async fn metadata(&self, tenant: &TenantId) -> Result<Value> {
        let since = self.clock.now_ms() - crate::metadata::PROP_KEY_DAYS * 86_400_000;
        let sql = format!(
            "SELECT DISTINCT key FROM (SELECT unnest(map_keys(props)) AS key FROM events \
             WHERE timestamp >= to_timestamp_millis({since})) ORDER BY key LIMIT 1000"
        );
        let result = self.querier.query(tenant, &sql).await?;
        let mut keys = Vec::new();
        for batch in &result.batches {
            let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
            let strings = column.as_string::<i32>();
            keys.extend((0..strings.len()).filter(|i| strings.is_valid(*i)).map(|i| strings.value(i).to_string()));
        }
        Ok(crate::metadata::document(&keys))
    }

    /// Answers `request` for `tenant` with the response body (`meta.elapsed_ms` is the
    /// caller's).
    pub async fn report(&self, tenant: &TenantId, request: &ReportRequest) -> Result<Value> {
        let settings = self.settings_of(tenant).await?;
        let rules = SessionRules::from(&settings);
        let tz = Self::zone(request, &settings);
        let now = self.clock.now_ms();
        let first = match &request.range {
            Some(RangeSpec::Preset(Preset::All)) if request.kind == ReportKind::Standard => {
                self.first_event(tenant).await?
            }
            _ => None,
        };
        let ranges = ranges(request, tz, now, first)?;
        let buffered = self.querier.buffered(tenant).await?;
        // Realtime answers move with the clock: never cached.
        let key = (request.kind == ReportKind::Standard).then(|| {
            format!(
                "{tenant}\u{1f}{request:?}\u{1f}{ranges:?}\u{1f}{rules:?}\u{1f}{}\u{1f}{}",
                definitions_version(),
                self.use_rollups
            )
        });
        if let Some(key) = &key
            && let Some(entry) = self.caches.response(key)
            && self.still_valid(&buffered, &entry.validators, &ranges).await?
        {
            crate::cache::RESPONSE_HITS.inc();
            let mut body = (*entry.body).clone();
            body["meta"]["cache_hit"] = Value::Bool(true);
            return Ok(body);
        }
        crate::cache::RESPONSE_MISSES.inc();
        // Read before any events: an events file that lands later is newer than this.
        let high_water = self.catalog.events_high_water(i64::MIN / HOUR_MS, i64::MAX / HOUR_MS).await?;
        let retention_epoch = self.catalog.retention_epoch().await?;
        let job = Job {
            request,
            tenant,
            source: QuerierSource { querier: &self.querier, tenant },
            rules,
            row_specs: specs(request, &request.dimensions, tz, now),
            total_specs: specs(request, &[], tz, now),
            props: needs_props(request),
            fast: request.accuracy == Accuracy::Fast,
            buffered,
        };
        let main = self.answer_range(&job, ranges.main.range).await?;
        let compare = match &ranges.compare {
            Some(r) => Some(self.answer_range(&job, r.range).await?),
            None => None,
        };

        let mut used: BTreeSet<&str> = main.rollups.clone();
        let (mut rollup_hours, mut raw_spans, mut approximate) = (main.rollup_hours, main.raw_spans, main.approximate);
        let mut validators = Validators {
            rollup_hours: vec![main.clean_files.clone()],
            high_water,
            retention_epoch,
            windows: main.windows.clone(),
            buffered: job.buffered.clone(),
        };
        if let Some(c) = &compare {
            used.extend(c.rollups.iter());
            rollup_hours += c.rollup_hours;
            raw_spans += c.raw_spans;
            approximate |= c.approximate;
            validators.rollup_hours.push(c.clean_files.clone());
            validators.windows.extend(c.windows.iter().copied());
        }
        let names = used.iter().copied().collect::<Vec<_>>().join(",");
        let path = match (used.is_empty(), raw_spans) {
            (true, _) => "raw".to_string(),
            (false, 0) => format!("rollup:{names}"),
            (false, _) => format!("rollup:{names}+raw"),
        };
        if used.is_empty() {
            crate::metrics::REPORTS_RAW.inc();
        } else {
            crate::metrics::REPORTS_ROLLUP.inc();
        }
        let mut warnings = Vec::new();
        if job.fast && !approximate {
            warnings.push("fast accuracy was asked for, but no rollup answered: the counts are exact".to_string());
        }
        let provenance = Provenance {
            path,
            fresh_through_ms: now,
            approximate: approximate.then_some(2.0 * HLL_STANDARD_ERROR),
            warnings,
            rollup_hours,
            raw_spans,
        };
        let computed = Computed {
            request,
            ranges,
            row_specs: job.row_specs.clone(),
            total_specs: job.total_specs.clone(),
            rows: main.rows,
            totals: main.totals,
            compare: compare.map(|c| (c.rows, c.totals)),
            rules: &job.rules,
            provenance,
        };
        let mut body = respond(&computed);
        body["meta"]["cache_hit"] = Value::Bool(false);
        if let Some(key) = key {
            self.caches.keep_response(key, Entry { body: Arc::new(body.clone()), validators: Arc::new(validators) });
        }
        Ok(body)
    }

    /// Whether a cached answer still holds: the tenant's buffer, the rollup hours it used and
    /// the events files of the windows it read are as they were.
    async fn still_valid(
        &self,
        buffered: &Buffered,
        validators: &Validators,
        ranges: &crate::report::Ranges,
    ) -> Result<bool> {
        if *buffered != validators.buffered || self.catalog.retention_epoch().await? != validators.retention_epoch {
            return Ok(false);
        }
        for (first, last) in &validators.windows {
            if self.catalog.events_high_water(*first, *last).await? > validators.high_water {
                return Ok(false);
            }
        }
        let all = std::iter::once(&ranges.main).chain(ranges.compare.iter());
        for (range, recorded) in all.zip(&validators.rollup_hours) {
            if recorded.is_empty() {
                continue;
            }
            let (first_hour, end_hour) = hour_bounds(&range.range);
            let (_, files) = self.clean_hours(buffered, first_hour, end_hour).await?;
            if files != *recorded {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The whole hours of `[first_hour, end_hour)` a rollup can answer: fresh, of the current
    /// definitions, with none of the tenant's events buffered in their window; and hours with
    /// no events at all. Returns them, and them with their rollup files (-1 where there is
    /// none to read).
    async fn clean_hours(
        &self,
        buffered: &Buffered,
        first_hour: i64,
        end_hour: i64,
    ) -> Result<(BTreeSet<i64>, BTreeSet<(i64, i64)>)> {
        let version = definitions_version();
        let states = self.catalog.rollup_hours(first_hour, end_hour).await?;
        let fresh: HashMap<i64, &RollupHour> =
            states.iter().filter(|s| s.fresh && s.definitions == version).map(|s| (s.hour, s)).collect();
        let with_events: BTreeSet<i64> = self.catalog.event_hours(first_hour, end_hour).await?.into_iter().collect();
        let buffered_in = |lo: i64, hi: i64| buffered.hours.range(lo..=hi).next().is_some();
        let mut clean = BTreeSet::new();
        let mut files = BTreeSet::new();
        for hour in first_hour..end_hour {
            match fresh.get(&hour) {
                Some(state) if !buffered_in(state.window_start_hour, state.window_end_hour) => {
                    clean.insert(hour);
                    files.insert((hour, state.file_id));
                }
                Some(_) => {}
                // No events at all: no session starts and nothing happens in the hour.
                None if !with_events.contains(&hour) && !buffered_in(hour, hour) => {
                    clean.insert(hour);
                    files.insert((hour, -1));
                }
                None => {}
            }
        }
        Ok((clean, files))
    }

    /// The rows of `rollup` in the hours of `files` that have a file, read once.
    async fn rollup_rows(
        &self,
        job: &Job<'_>,
        rollup: &Rollup,
        files: &BTreeSet<(i64, i64)>,
    ) -> Result<Vec<RecordBatch>> {
        let with_rows: Vec<i64> = files.iter().filter(|(_, f)| *f >= 0).map(|(h, _)| *h).collect();
        let (Some(lo), Some(hi)) = (with_rows.first(), with_rows.last()) else { return Ok(Vec::new()) };
        let columns = planner::columns(rollup, job.fast);
        Ok(self.querier.read_rollup(job.tenant, rollup.name, &columns, lo * HOUR_MS, (hi + 1) * HOUR_MS).await?.batches)
    }

    /// Answers the row and total queries over `range`.
    async fn answer_range(&self, job: &Job<'_>, range: TimeRange) -> Result<RangeOutcome> {
        let specs: Vec<&Spec> = [&job.row_specs, &job.total_specs]
            .into_iter()
            .flat_map(|s| std::iter::once(&s.main).chain(s.bounce.iter()).chain(s.conversion.iter()))
            .collect();
        let chosen: Option<Vec<&'static Rollup>> = specs.iter().map(|s| planner::choose(s)).collect();
        let (first_hour, end_hour) = hour_bounds(&range);
        let eligible = self.use_rollups
            && job.request.kind == ReportKind::Standard
            && end_hour > first_hour
            && whole_hour_offsets(job.row_specs.main.tz, &range);
        let chosen = match chosen {
            Some(c) if eligible => c,
            _ => return self.raw_range(job, range).await,
        };

        let (mut clean, files) = self.clean_hours(&job.buffered, first_hour, end_hour).await?;
        let files_token = token(&files);
        let rules_id = rules_hash(&job.rules);
        let tenant = job.tenant;
        let distinct: BTreeSet<&'static str> = chosen.iter().map(|r| r.name).collect();
        let mut read: HashMap<&'static str, Vec<RecordBatch>> = HashMap::new();
        for name in &distinct {
            let Some(rollup) = rollups::by_name(name) else { continue };
            // Hours computed under other settings are answered from events.
            let key = format!("m\u{1f}{tenant}\u{1f}{name}\u{1f}{files_token}\u{1f}{rules_id}");
            let mismatched = match self.caches.mismatches(&key) {
                Some(m) => m,
                None => {
                    let batches = self.rollup_rows(job, rollup, &files).await?;
                    let m = Arc::new(planner::mismatched_hours(&batches, rules_id)?);
                    self.caches.keep_mismatches(key, Arc::clone(&m));
                    read.insert(name, batches);
                    m
                }
            };
            for hour in mismatched.iter() {
                clean.remove(hour);
            }
        }

        let mut outcome = RangeOutcome { clean_files: files.clone(), ..RangeOutcome::default() };
        let spans = outside(range, &clean);
        for span in &spans {
            let part = self.raw_range(job, *span).await?;
            merge_answer(&mut outcome.rows, part.rows);
            merge_answer(&mut outcome.totals, part.totals);
            outcome.windows.extend(part.windows);
        }
        outcome.raw_spans = spans.len();
        outcome.rollup_hours = clean.len();

        let clean_token = token(&clean);
        let mut picks = chosen.iter();
        for (specs, rows) in [(&job.row_specs, true), (&job.total_specs, false)] {
            let mut part = Answer::default();
            for (slot, spec) in [(0, Some(&specs.main)), (1, specs.bounce.as_ref()), (2, specs.conversion.as_ref())] {
                let Some(spec) = spec else { continue };
                let rollup = picks.next().copied().ok_or(Error::MissingColumn("rollup choice"))?;
                let key = format!(
                    "p\u{1f}{tenant}\u{1f}{}\u{1f}{spec:?}\u{1f}{}\u{1f}{files_token}\u{1f}{clean_token}",
                    rollup.name, job.fast
                );
                let partial = match self.caches.partial(&key) {
                    Some(p) => p,
                    None => {
                        if !read.contains_key(rollup.name) {
                            read.insert(rollup.name, self.rollup_rows(job, rollup, &files).await?);
                        }
                        let rows_of = read.get(rollup.name).map(Vec::as_slice).unwrap_or_default();
                        let p = Arc::new(planner::aggregate(rows_of, rollup, spec, &clean, job.fast)?);
                        self.caches.keep_partial(key, Arc::clone(&p));
                        p
                    }
                };
                let partial = (*partial).clone();
                match slot {
                    0 => part.main = partial,
                    1 => part.bounce = Some(partial),
                    _ => part.conversion = Some(partial),
                }
            }
            merge_answer(if rows { &mut outcome.rows } else { &mut outcome.totals }, part);
        }
        if files.iter().any(|(h, f)| *f >= 0 && clean.contains(h)) {
            outcome.rollups = chosen.iter().map(|r| r.name).collect();
            outcome.approximate = job.fast;
        }
        Ok(outcome)
    }

    /// Answers the row and total queries over `range` from events, a day at a time: partials
    /// of adjacent spans add up (events by their time, sessions by their start), so a long
    /// range holds one day's events (and its window) in memory at once, not all of them.
    async fn raw_range(&self, job: &Job<'_>, range: TimeRange) -> Result<RangeOutcome> {
        let mut outcome = RangeOutcome { raw_spans: 1, ..RangeOutcome::default() };
        let mut start = range.start_ms;
        while start < range.end_ms {
            let piece = TimeRange { start_ms: start, end_ms: (start + RAW_PIECE_MS).min(range.end_ms) };
            let data = dataset::load(&job.source, piece, &job.rules, job.props).await?;
            merge_answer(&mut outcome.rows, answer(&data, &job.row_specs, &piece, &job.rules));
            merge_answer(&mut outcome.totals, answer(&data, &job.total_specs, &piece, &job.rules));
            outcome
                .windows
                .push((data.window.start_ms.div_euclid(HOUR_MS), (data.window.end_ms - 1).div_euclid(HOUR_MS)));
            start = piece.end_ms;
        }
        Ok(outcome)
    }
}

/// The whole UTC hours inside `range`: `[first, end)`, hours since the epoch.
fn hour_bounds(range: &TimeRange) -> (i64, i64) {
    ((range.start_ms + HOUR_MS - 1).div_euclid(HOUR_MS), range.end_ms.div_euclid(HOUR_MS))
}

/// The spans of `range` outside the whole hours of `hours`.
fn outside(range: TimeRange, hours: &BTreeSet<i64>) -> Vec<TimeRange> {
    let mut spans = Vec::new();
    let mut cursor = range.start_ms;
    for hour in hours {
        let (start, end) = (hour * HOUR_MS, (hour + 1) * HOUR_MS);
        if start > cursor {
            spans.push(TimeRange { start_ms: cursor, end_ms: start.min(range.end_ms) });
        }
        cursor = cursor.max(end);
    }
    if cursor < range.end_ms {
        spans.push(TimeRange { start_ms: cursor, end_ms: range.end_ms });
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_outside_clean_hours() {
        let range = TimeRange { start_ms: 30 * 60_000, end_ms: 5 * HOUR_MS };
        let clean: BTreeSet<i64> = [1, 2, 4].into_iter().collect();
        assert_eq!(
            outside(range, &clean),
            [
                TimeRange { start_ms: 30 * 60_000, end_ms: HOUR_MS },
                TimeRange { start_ms: 3 * HOUR_MS, end_ms: 4 * HOUR_MS }
            ]
        );
        assert_eq!(outside(range, &BTreeSet::new()), [range]);
    }
}
