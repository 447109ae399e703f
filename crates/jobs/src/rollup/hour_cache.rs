//! Every tenant's persisted events of the hours a rollup job reads, each hour read once and
//! kept for the job, served per tenant as the report engine's [`EventSource`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use async_trait::async_trait;
use futures::TryStreamExt;
use hourglass_catalog::{Catalog, FileFilter, NewFile};
use hourglass_report::dataset::EventSource;
use hourglass_report::time::TimeRange;
use hourglass_types::TableName;
use hourglass_types::schema::{self, col};
use object_store::ObjectStore;
use tokio::sync::Mutex;

use crate::objects::open_file;
use crate::{Error, Result};

const HOUR_MS: i64 = 3_600_000;

/// One hour's events, every tenant's, indexed by tenant.
#[derive(Debug, Default)]
pub(crate) struct Hour {
    /// Each tenant's rows, as slices of the batches read (files are sorted by tenant, so a
    /// tenant's rows are a few contiguous runs).
    by_tenant: HashMap<String, Vec<RecordBatch>>,
}

impl Hour {
    fn index(batches: Vec<RecordBatch>) -> Result<Self> {
        let mut by_tenant: HashMap<String, Vec<RecordBatch>> = HashMap::new();
        for batch in batches {
            let tenants = batch
                .column_by_name(col::TENANT_ID)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or(Error::Shape("tenant_id as Utf8"))?;
            let mut start = 0;
            while start < batch.num_rows() {
                let tenant = tenants.value(start);
                let mut end = start + 1;
                while end < batch.num_rows() && tenants.value(end) == tenant {
                    end += 1;
                }
                by_tenant.entry(tenant.to_string()).or_default().push(batch.slice(start, end - start));
                start = end;
            }
        }
        Ok(Self { by_tenant })
    }
}

/// Persisted events by UTC hour, all tenants.
#[derive(Debug)]
pub(crate) struct HourCache {
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    columns: Vec<&'static str>,
    hours: Mutex<HashMap<i64, Arc<Hour>>>,
}

impl HourCache {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, catalog: Arc<dyn Catalog>, columns: Vec<&'static str>) -> Self {
        Self { store, catalog, columns, hours: Mutex::new(HashMap::new()) }
    }

    /// Every tenant's events of `hour` (hours since the epoch), read on first use.
    pub(crate) async fn hour(&self, hour: i64) -> Result<Arc<Hour>> {
        let mut hours = self.hours.lock().await;
        if let Some(found) = hours.get(&hour) {
            return Ok(Arc::clone(found));
        }
        let filter = FileFilter {
            table: TableName::Events,
            tenant: None,
            min_time_ms: Some(hour * HOUR_MS),
            max_time_ms: Some((hour + 1) * HOUR_MS),
        };
        let listing = self.catalog.list_files(&filter).await?;
        let mut batches = Vec::new();
        for f in listing.files.iter().filter(|f| f.file.hour == hour) {
            batches.extend(self.read(&f.file).await?);
        }
        let indexed = Arc::new(Hour::index(batches)?);
        hours.insert(hour, Arc::clone(&indexed));
        Ok(indexed)
    }

    async fn read(&self, file: &NewFile) -> Result<Vec<RecordBatch>> {
        let stream = open_file(&self.store, file, 8192, Some(self.columns.as_slice())).await?;
        let read: Vec<RecordBatch> =
            stream.try_collect().await.map_err(|source| Error::ReadParquet { path: file.path.clone(), source })?;
        let events = schema::events();
        let mut out = Vec::new();
        for batch in read {
            // Files written before a column existed lack it: it reads as nulls, as in queries.
            let mut fields = Vec::with_capacity(self.columns.len());
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
            for name in &self.columns {
                let field = events.field_with_name(name)?.clone();
                columns.push(match batch.column_by_name(name) {
                    Some(c) => Arc::clone(c),
                    None => new_null_array(field.data_type(), batch.num_rows()),
                });
                fields.push(field.with_nullable(true));
            }
            out.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?);
        }
        Ok(out)
    }

    /// Drops the hours after `hour` (a pass going back in time no longer needs them).
    pub(crate) async fn forget_after(&self, hour: i64) {
        self.hours.lock().await.retain(|h, _| *h <= hour);
    }

    /// The tenants with events in `hour`.
    pub(crate) async fn tenants(&self, hour: i64) -> Result<Vec<String>> {
        let mut tenants: Vec<String> = self.hour(hour).await?.by_tenant.keys().cloned().collect();
        tenants.sort_unstable();
        Ok(tenants)
    }

    /// One tenant's view.
    pub(crate) fn tenant<'a>(&'a self, tenant: &'a str) -> TenantEvents<'a> {
        TenantEvents { cache: self, tenant }
    }
}

/// One tenant's events from a [`HourCache`].
pub(crate) struct TenantEvents<'a> {
    cache: &'a HourCache,
    tenant: &'a str,
}

#[async_trait]
impl EventSource for TenantEvents<'_> {
    async fn read(&self, _columns: &[&str], range: TimeRange) -> hourglass_report::Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let first = range.start_ms.div_euclid(HOUR_MS);
        let last = (range.end_ms - 1).div_euclid(HOUR_MS);
        for hour in first..=last {
            let data = self.cache.hour(hour).await.map_err(|e| hourglass_report::Error::Source(Box::new(e)))?;
            let Some(batches) = data.by_tenant.get(self.tenant) else { continue };
            let whole = range.start_ms <= hour * HOUR_MS && (hour + 1) * HOUR_MS <= range.end_ms;
            for batch in batches {
                if whole {
                    out.push(batch.clone());
                    continue;
                }
                let Some(times) = batch
                    .column_by_name(col::TIMESTAMP)
                    .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>())
                else {
                    continue;
                };
                let keep: BooleanArray = times.iter().map(|t| Some(t.is_some_and(|t| range.contains(t)))).collect();
                if keep.true_count() > 0 {
                    out.push(filter_record_batch(batch, &keep)?);
                }
            }
        }
        Ok(out)
    }
}
