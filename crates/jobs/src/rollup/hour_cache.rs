//! Every tenant's persisted events of the hours a rollup job reads, each hour read once and
//! kept for the job, served per tenant as the report engine's [`EventSource`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use async_trait::async_trait;
use bytes::Bytes;
use hourglass_catalog::{Catalog, FileFilter};
use hourglass_report::dataset::EventSource;
use hourglass_report::time::TimeRange;
use hourglass_types::TableName;
use hourglass_types::schema::{self, col};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::Mutex;

use crate::{Error, Result};

const HOUR_MS: i64 = 3_600_000;

/// Persisted events by UTC hour, all tenants.
#[derive(Debug)]
pub(crate) struct HourCache {
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    columns: Vec<&'static str>,
    hours: Mutex<HashMap<i64, Arc<Vec<RecordBatch>>>>,
}

impl HourCache {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, catalog: Arc<dyn Catalog>, columns: Vec<&'static str>) -> Self {
        Self { store, catalog, columns, hours: Mutex::new(HashMap::new()) }
    }

    /// Every tenant's events of `hour` (hours since the epoch), read on first use.
    pub(crate) async fn hour(&self, hour: i64) -> Result<Arc<Vec<RecordBatch>>> {
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
            batches.extend(self.read(&f.file.path).await?);
        }
        let batches = Arc::new(batches);
        hours.insert(hour, Arc::clone(&batches));
        Ok(batches)
    }

    async fn read(&self, path: &str) -> Result<Vec<RecordBatch>> {
        let object = |source| Error::Object { path: path.to_string(), source };
        let bytes: Bytes = self.store.get(&Path::from(path)).await.map_err(object)?.bytes().await.map_err(object)?;
        let parquet = |source| Error::ReadParquet { path: path.to_string(), source };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet)?;
        let roots: Vec<usize> = self.columns.iter().filter_map(|c| builder.schema().index_of(c).ok()).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder.with_projection(mask).build().map_err(parquet)?;
        let events = schema::events();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch?;
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

    /// The tenants with events in `hour`.
    pub(crate) async fn tenants(&self, hour: i64) -> Result<Vec<String>> {
        let mut tenants: Vec<String> = Vec::new();
        for batch in self.hour(hour).await?.iter() {
            let Some(column) = batch.column_by_name(col::TENANT_ID).and_then(|c| c.as_string_opt::<i32>()) else {
                continue;
            };
            tenants.extend(column.iter().flatten().map(str::to_string));
        }
        tenants.sort_unstable();
        tenants.dedup();
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
            let batches = self.cache.hour(hour).await.map_err(|e| hourglass_report::Error::Source(Box::new(e)))?;
            for batch in batches.iter() {
                let (Some(tenants), Some(times)) = (
                    batch.column_by_name(col::TENANT_ID).and_then(|c| c.as_string_opt::<i32>()),
                    batch
                        .column_by_name(col::TIMESTAMP)
                        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>()),
                ) else {
                    continue;
                };
                let keep: BooleanArray = (0..batch.num_rows())
                    .map(|i| Some(tenants.value(i) == self.tenant && range.contains(times.value(i))))
                    .collect();
                if keep.true_count() > 0 {
                    out.push(filter_record_batch(batch, &keep)?);
                }
            }
        }
        Ok(out)
    }
}
