//! The report engine: a request in, a response body out, for one tenant.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use async_trait::async_trait;
use chrono_tz::Tz;
use hourglass_catalog::SettingsCache;
use hourglass_processor::sessions::SessionRules;
use hourglass_query::Querier;
use hourglass_types::settings::parse_timezone;
use hourglass_types::{Clock, TenantId, TenantSettings};
use serde_json::Value;

use crate::aggregate::aggregate;
use crate::dataset::{self, Dataset, EventSource};
use crate::error::Result;
use crate::report::{Answer, Computed, Provenance, Specs, needs_props, ranges, respond, specs};
use crate::request::{ReportKind, ReportRequest};
use crate::time::{Preset, RangeSpec, TimeRange};

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

/// Answers report requests from the querier's view of a tenant's events.
#[derive(Debug)]
pub struct Engine {
    querier: Arc<Querier>,
    settings: SettingsCache,
    clock: Arc<dyn Clock>,
}

fn answer(data: &Dataset, specs: &Specs, range: &TimeRange, rules: &SessionRules) -> Answer {
    Answer {
        main: aggregate(data, &specs.main, range, rules),
        bounce: specs.bounce.as_ref().map(|s| aggregate(data, s, range, rules)),
        conversion: specs.conversion.as_ref().map(|s| aggregate(data, s, range, rules)),
    }
}

impl Engine {
    /// An engine over `querier`, reading tenant settings from `settings` and the time from
    /// `clock`.
    pub fn new(querier: Arc<Querier>, settings: SettingsCache, clock: Arc<dyn Clock>) -> Self {
        Self { querier, settings, clock }
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

    /// Answers `request` for `tenant` with the response body (`meta.elapsed_ms` and
    /// `meta.cache_hit` are the caller's).
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
        let row_specs = specs(request, &request.dimensions, tz, now);
        let total_specs = specs(request, &[], tz, now);
        let props = needs_props(request);
        let source = QuerierSource { querier: &self.querier, tenant };

        let data = dataset::load(&source, ranges.main.range, &rules, props).await?;
        let rows = answer(&data, &row_specs, &ranges.main.range, &rules);
        let totals = answer(&data, &total_specs, &ranges.main.range, &rules);
        drop(data);
        let compare = match &ranges.compare {
            Some(r) => {
                let data = dataset::load(&source, r.range, &rules, props).await?;
                Some((answer(&data, &row_specs, &r.range, &rules), answer(&data, &total_specs, &r.range, &rules)))
            }
            None => None,
        };
        crate::metrics::REPORTS_RAW.inc();
        let provenance =
            Provenance { path: "raw".into(), fresh_through_ms: now, approximate: None, warnings: Vec::new() };
        let computed =
            Computed { request, ranges, row_specs, total_specs, rows, totals, compare, rules: &rules, provenance };
        Ok(respond(&computed))
    }
}
