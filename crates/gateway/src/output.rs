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
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
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
    pub(crate) fn encode(
        self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Vec<u8>, ArrowError> {
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
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    writer.write(&RecordBatch::new_empty(schema.clone()))?;
                }
                for batch in batches {
                    writer.write(batch)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        assert_eq!(Format::from_accept(None), Some(Format::Json));
        assert_eq!(Format::from_accept(Some("text/csv")), Some(Format::Csv));
        assert_eq!(
            Format::from_accept(Some("application/vnd.apache.arrow.stream")),
            Some(Format::Arrow)
        );
        assert_eq!(
            Format::from_accept(Some("image/png, text/csv;q=0.9")),
            Some(Format::Csv)
        );
        assert_eq!(Format::from_accept(Some("*/*")), Some(Format::Json));
        assert_eq!(Format::from_accept(Some("image/png")), None);
    }
}
