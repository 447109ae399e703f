//! Hourglass processor: the versioned, pure function from `raw_events` rows to `events` rows.
//!
//! The processor has no IO and no state: the same raw batch and the same [`PROCESSOR_VERSION`]
//! always give the same events batch. That is what lets reprocessing rebuild `events` from the
//! immutable raw files for any time range. Every change to what it derives must bump
//! [`PROCESSOR_VERSION`], which is stored in each row and in the catalog for each file.

mod url_parts;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, RecordBatch, StringArray, StringBuilder};
use arrow::error::ArrowError;
use hourglass_types::schema::{self, col};

pub use url_parts::UrlParts;

/// Version of the derivation rules. Bump it whenever any derived value could change.
pub const PROCESSOR_VERSION: i32 = 1;

/// Why a raw batch could not be processed; always a bug upstream, since raw batches are built
/// by the ingester against the raw schema.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The input batch does not have the `raw_events` schema.
    #[error("input batch does not have the raw_events schema: missing or mistyped column {column}")]
    BadInput {
        /// The column that is missing or has the wrong type.
        column: &'static str,
    },
    /// Arrow refused to assemble the output batch.
    #[error("assembling the events batch")]
    Arrow(#[from] ArrowError),
}

/// Derives an `events` batch from a `raw_events` batch, row for row.
pub fn process(raw: &RecordBatch) -> Result<RecordBatch, ProcessError> {
    let raw_schema = schema::raw_events();
    if raw.schema().fields() != raw_schema.fields() {
        return Err(ProcessError::BadInput { column: "(schema)" });
    }
    let urls = raw
        .column_by_name(col::URL)
        .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        .ok_or(ProcessError::BadInput { column: col::URL })?;

    let rows = raw.num_rows();
    let mut hostname = StringBuilder::with_capacity(rows, rows * 16);
    let mut path = StringBuilder::with_capacity(rows, rows * 16);
    let mut utm: [StringBuilder; 5] = std::array::from_fn(|_| StringBuilder::new());
    // Pages repeat within a batch (many pageviews of the same URL), so each distinct URL is
    // parsed once per batch.
    let mut parsed: HashMap<&str, UrlParts> = HashMap::new();
    let none = UrlParts::default();
    for i in 0..rows {
        let parts = if urls.is_valid(i) {
            let url = urls.value(i);
            parsed.entry(url).or_insert_with(|| UrlParts::parse(url))
        } else {
            &none
        };
        hostname.append_option(parts.hostname.as_deref());
        path.append_option(parts.path.as_deref());
        for (builder, value) in utm.iter_mut().zip(parts.utm.iter()) {
            builder.append_option(value.as_deref());
        }
    }

    let mut columns: Vec<ArrayRef> = raw.columns().to_vec();
    columns.push(Arc::new(hostname.finish()));
    columns.push(Arc::new(path.finish()));
    for mut builder in utm {
        columns.push(Arc::new(builder.finish()));
    }
    columns.push(Arc::new(Int32Array::from(vec![PROCESSOR_VERSION; rows])));
    Ok(RecordBatch::try_new(schema::events(), columns)?)
}

#[cfg(test)]
mod tests;
