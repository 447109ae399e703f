//! Encoding query results as JSON, CSV or an Arrow IPC stream.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

/// Media type of Arrow IPC streams.
pub(crate) const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// A result encoding chosen from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    /// The first supported type in `Accept`; JSON when absent or `*/*`.
    pub(crate) fn from_accept(accept: Option<&str>) -> Option<Self> {
        let Some(accept) = accept else {
            return Some(Self::Json);
        };
        for part in accept.split(',') {
            let media = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match media.as_str() {
                "application/json" | "*/*" | "application/*" | "" => return Some(Self::Json),
                "text/csv" | "text/*" => return Some(Self::Csv),
                ARROW_STREAM => return Some(Self::Arrow),
                _ => {}
            }
        }
        None
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => ARROW_STREAM,
        }
    }

    /// Encodes the result. JSON is an array of objects with explicit nulls; CSV has a header
    /// row even when there are no rows.
    pub(crate) fn encode(self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
        let mut out = Vec::new();
        match self {
            Self::Json => {
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            Self::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                if batches.is_empty() {
                    writer.write(&nested_as_json(&RecordBatch::new_empty(schema.clone()))?)?;
                }
                for batch in batches {
                    writer.write(&nested_as_json(batch)?)?;
                }
            }
            Self::Arrow => {
                let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
        }
        Ok(out)
    }
}

/// CSV has no nested values: maps, lists and structs become their JSON text.
fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        // Encode the column alone as JSON lines, one object per row, and take its value.
        let single = RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(vec![field.as_ref().clone().with_name("v")])),
            vec![column.clone()],
        )?;
        let mut lines = Vec::new();
        {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut lines);
            writer.write(&single)?;
            writer.finish()?;
        }
        let mut text = arrow::array::StringBuilder::new();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let row: serde_json::Value =
                serde_json::from_slice(line).map_err(|e| ArrowError::JsonError(e.to_string()))?;
            match row.get("v") {
                None | Some(serde_json::Value::Null) => text.append_null(),
                Some(v) => text.append_value(v.to_string()),
            }
        }
        fields.push(arrow::datatypes::Field::new(field.name(), arrow::datatypes::DataType::Utf8, true));
        columns.push(std::sync::Arc::new(text.finish()) as arrow::array::ArrayRef);
    }
    RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        assert_eq!(Format::from_accept(None), Some(Format::Json));
        assert_eq!(Format::from_accept(Some("text/csv")), Some(Format::Csv));
        assert_eq!(Format::from_accept(Some("application/vnd.apache.arrow.stream")), Some(Format::Arrow));
        assert_eq!(Format::from_accept(Some("image/png, text/csv;q=0.9")), Some(Format::Csv));
        assert_eq!(Format::from_accept(Some("*/*")), Some(Format::Json));
        assert_eq!(Format::from_accept(Some("image/png")), None);
    }

    #[test]
    fn csv_writes_maps_as_json() {
        use arrow::array::{Array, Int32Array, MapBuilder, StringBuilder};
        let mut props = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        props.keys().append_value("plan");
        props.values().append_value("pro");
        props.append(true).expect("row");
        props.append(false).expect("null row");
        let props = props.finish();
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int32, false),
            arrow::datatypes::Field::new("props", props.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(Int32Array::from(vec![1, 2])), std::sync::Arc::new(props)],
        )
        .expect("batch");
        let csv = Format::Csv.encode(&schema, &[batch]).expect("csv");
        assert_eq!(String::from_utf8(csv).expect("utf8"), "n,props\n1,\"{\"\"plan\"\":\"\"pro\"\"}\"\n2,\n");
    }
}
