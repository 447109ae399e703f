//! Turns an uploaded file into the Parquet object of an imported table: reads CSV, NDJSON or
//! Parquet in batches (inferring the schema unless the request gave one), gives columns plain
//! SQL names and UTC millisecond timestamps, and writes zstd Parquet to a temporary file.
//! Runs on a blocking thread: everything here is synchronous file IO and decoding.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use hourglass_types::ErrorKind;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tempfile::NamedTempFile;

use super::options::{Format, ImportOptions, normalize_column};
use crate::error::ApiError;

/// Rows per batch read from the upload.
const BATCH_ROWS: usize = 8192;

/// The Parquet file of an imported table, before it is uploaded.
pub(crate) struct Converted {
    /// The Parquet file.
    pub parquet: NamedTempFile,
    /// The table's schema.
    pub schema: SchemaRef,
    /// Rows written.
    pub rows: u64,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, message)
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, format!("{what}: {e}"))
}

/// How to find each table column in a batch read from the file.
enum Columns {
    /// The file's columns, in order, are the table's.
    ByPosition,
    /// The table's columns are picked from the file's by name.
    ByName,
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

/// Converts the upload at `input` to Parquet as `options` say.
pub(crate) fn convert(input: &Path, options: &ImportOptions) -> Result<Converted, ApiError> {
    let open = || File::open(input).map_err(|e| internal("opening the upload", e));
    let (batches, source, columns): (Batches, SchemaRef, Columns) = match options.format {
        Format::Csv => {
            let schema = match &options.schema {
                Some(given) => Arc::clone(given),
                None => {
                    let format = arrow::csv::reader::Format::default()
                        .with_header(options.header)
                        .with_delimiter(options.delimiter);
                    let (inferred, _) = format
                        .infer_schema(BufReader::new(open()?), None)
                        .map_err(|e| invalid(format!("reading the CSV: {e}")))?;
                    Arc::new(readable(&inferred))
                }
            };
            let reader = arrow::csv::ReaderBuilder::new(Arc::clone(&schema))
                .with_header(options.header)
                .with_delimiter(options.delimiter)
                .with_batch_size(BATCH_ROWS)
                .build(BufReader::new(open()?))
                .map_err(|e| invalid(format!("reading the CSV: {e}")))?;
            (Box::new(reader), schema, Columns::ByPosition)
        }
        Format::Ndjson => {
            let schema = match &options.schema {
                Some(given) => Arc::clone(given),
                None => {
                    let mut file = BufReader::new(open()?);
                    let (inferred, _) = arrow::json::reader::infer_json_schema_from_seekable(&mut file, None)
                        .map_err(|e| invalid(format!("reading the NDJSON: {e}")))?;
                    file.seek(SeekFrom::Start(0)).map_err(|e| internal("rewinding the upload", e))?;
                    Arc::new(readable(&inferred))
                }
            };
            let reader = arrow::json::ReaderBuilder::new(Arc::clone(&schema))
                .with_batch_size(BATCH_ROWS)
                .build(BufReader::new(open()?))
                .map_err(|e| invalid(format!("reading the NDJSON: {e}")))?;
            let columns = if options.schema.is_some() { Columns::ByName } else { Columns::ByPosition };
            (Box::new(reader), schema, columns)
        }
        Format::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(open()?)
                .map_err(|e| invalid(format!("the upload is not a readable Parquet file: {e}")))?;
            let schema = Arc::clone(builder.schema());
            let reader = builder
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| invalid(format!("reading the Parquet: {e}")))?;
            let columns = if options.schema.is_some() { Columns::ByName } else { Columns::ByPosition };
            (Box::new(reader), schema, columns)
        }
    };
    let target = match &options.schema {
        Some(given) => Arc::clone(given),
        None => table_schema(&source)?,
    };
    if let (Columns::ByName, Format::Parquet) = (&columns, options.format) {
        for field in target.fields() {
            if source.index_of(field.name()).is_err() {
                return Err(invalid(format!("the Parquet file has no column {}", field.name())));
            }
        }
    }

    let parquet = NamedTempFile::new().map_err(|e| internal("creating a temporary file", e))?;
    let file = parquet.reopen().map_err(|e| internal("opening the temporary file", e))?;
    let properties = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&target), Some(properties))
        .map_err(|e| internal("starting the Parquet file", e))?;
    let mut rows = 0u64;
    for batch in batches {
        let batch = batch.map_err(|e| invalid(format!("reading the file after {rows} rows: {e}")))?;
        let batch = conform(&batch, &target, &columns).map_err(|e| invalid(format!("near row {}: {e}", rows + 1)))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| internal("writing the Parquet file", e))?;
    }
    writer.close().map_err(|e| internal("finishing the Parquet file", e))?;
    Ok(Converted { parquet, schema: target, rows })
}

/// The schema to read a file with: columns inferred as all-null are read as text.
fn readable(inferred: &Schema) -> Schema {
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => f.as_ref().clone().with_data_type(DataType::Utf8).with_nullable(true),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

/// The table's schema for a file read with `source`: plain SQL column names, UTC millisecond
/// timestamps (as `events.timestamp`, so that they compare without casts), everything nullable.
fn table_schema(source: &Schema) -> Result<SchemaRef, ApiError> {
    if source.fields().is_empty() {
        return Err(invalid("the file has no columns"));
    }
    let mut fields: Vec<Field> = Vec::with_capacity(source.fields().len());
    for (position, field) in source.fields().iter().enumerate() {
        let name = normalize_column(field.name(), position);
        if let Some(clash) = fields.iter().position(|f| f.name() == &name) {
            return Err(invalid(format!(
                "columns {:?} and {:?} would both be named {name}; rename one or give a schema",
                source.field(clash).name(),
                field.name()
            )));
        }
        let data_type = match field.data_type() {
            DataType::Timestamp(..) => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            DataType::Null => DataType::Utf8,
            other => other.clone(),
        };
        fields.push(Field::new(name, data_type, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// A batch as the table stores it: columns found by position or name, cast to the table's
/// types (failing on values that do not convert rather than turning them into nulls).
fn conform(batch: &RecordBatch, target: &SchemaRef, columns: &Columns) -> Result<RecordBatch, ArrowError> {
    let strict = CastOptions { safe: false, ..CastOptions::default() };
    let mut out: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for (position, field) in target.fields().iter().enumerate() {
        let column = match columns {
            Columns::ByPosition => Arc::clone(batch.column(position)),
            Columns::ByName => Arc::clone(batch.column(batch.schema().index_of(field.name())?)),
        };
        let column = if column.data_type() == field.data_type() {
            column
        } else {
            cast_with_options(&column, field.data_type(), &strict)
                .map_err(|e| ArrowError::CastError(format!("column {}: {e}", field.name())))?
        };
        out.push(column);
    }
    RecordBatch::try_new(Arc::clone(target), out)
}
